"""The promises the fault suite finds broken today, by (scenario, check), with
the defect of issue 10 that breaks each. The tests mark these as strict xfails
(tests/integration/test_faults_quick.py, tests/faults/test_faults.py); whoever
fixes one sees its xfail turn into a failure: remove the entry here (and the
mark) then. The runner names the defect in the table's "holds" column."""

BROKEN = {
    ("malformed", "log_does_not_flood"):
        "issue 10 #5: rejections are counted per (topic, error text with numbers masked) "
        "(_node/_rejections.py reason_of), and random garbage yields a few distinct texts "
        "per kind: 400 records of 20 kinds still log about 40 lines in full",
}


def reason(scenario: str, check: str) -> str:
    return BROKEN[(scenario, check)]
