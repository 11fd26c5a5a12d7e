"""The promises the fault suite finds broken today, by (scenario, check), with
the defect of issue 10 that breaks each. The tests mark these as strict xfails
(tests/integration/test_faults_quick.py, tests/faults/test_faults.py); whoever
fixes one sees its xfail turn into a failure: remove the entry here (and the
mark) then. The runner names the defect in the table's "holds" column."""

BROKEN: dict[tuple[str, str], str] = {
    # (scenario, check): "issue N #k: why it breaks"; none today.
}


def reason(scenario: str, check: str) -> str:
    return BROKEN[(scenario, check)]
