"""The fault suite at full size, as tests (opt-in: tests/faults is outside the
default testpaths). Every promise of every scenario is one test; the ones
broken today (known.py) are strict xfails.

    .venv/bin/python -m pytest tests/faults -m faults          (about 20 minutes)
    ETHER_FAULTS_SOAK_S=60 .venv/bin/python -m pytest tests/faults -m faults

`python -m tests.faults` runs the same scenarios and prints their figures.
"""
import importlib
import os

import pytest

from faults import known, run

pytestmark = pytest.mark.faults

CHECKS = {
    "kill_instance": ("no_loss", "no_duplicates", "no_torn", "detected_within_1s",
                      "callers_released_within_1s", "blocked_publisher_released_within_1s",
                      "no_leaked_segments", "no_orphans", "survivors_log_no_errors"),
    "kill_main": ("idle_exits_within_1s", "idle_exits_by_itself", "backlog_exits_within_1s",
                  "looper_exits_within_1s"),
    "stop_subscriber": ("block_stall_within_timeout", "block_received_plus_refused_is_published",
                        "block_others_get_everything", "blocked_publisher_answers_requests",
                        "drop_never_waits", "drop_received_plus_dropped_is_published",
                        "drop_others_get_everything", "nothing_left_behind"),
    "stalled_claim": ("consumer_stall_within_1s", "healthy_stream_intact", "nothing_left_behind"),
    "malformed": ("all_rejected", "receiver_alive", "valid_all_delivered_in_order",
                  "log_does_not_flood", "nothing_left_behind"),
    "shutdown_backlog": ("every_message_handled", "save_all_ran", "cleanup_and_shutdown_ran",
                         "nothing_left_behind"),
    "cycles": ("descriptors_flat", "shared_memory_returned", "nothing_left_in_dev_shm"),
    "soak": ("no_loss", "no_duplicates_or_torn", "memory_flat", "descriptors_flat", "shm_flat",
             "nothing_left_behind", "no_errors_logged"),
}
TIMEOUTS = {"kill_main": 600, "soak": 1500}
_outcomes: dict = {}


def _outcome(name: str):
    """The scenario's Outcome: it runs once, for its first test (or its error, once)."""
    if name not in _outcomes:
        sizes = dict(run.FULL[name])
        if name == "soak" and os.environ.get("ETHER_FAULTS_SOAK_S"):
            sizes["seconds"] = float(os.environ["ETHER_FAULTS_SOAK_S"])
        try:
            _outcomes[name] = importlib.import_module(f"faults.{name}").run(**sizes)
        except Exception as exc:
            _outcomes[name] = exc
            raise
    outcome = _outcomes[name]
    if isinstance(outcome, Exception):
        pytest.fail(f"the scenario {name} could not run: {outcome!r}")
    return outcome


def _params():
    for name in run.ORDER:
        for check in CHECKS[name]:
            marks = [pytest.mark.timeout(TIMEOUTS.get(name, 400))]
            if (name, check) in known.BROKEN:
                marks.append(pytest.mark.xfail(strict=True, reason=known.reason(name, check)))
            yield pytest.param(name, check, marks=marks, id=f"{name}-{check}")


@pytest.mark.parametrize("name, check", list(_params()))
def test_promise(name, check):
    outcome = _outcome(name)
    assert set(outcome.checks) == set(CHECKS[name]), "the scenario's checks changed: update CHECKS"
    assert outcome.checks[check], f"{name}: {check} broken: {outcome.summary}"
