"""The fault suite: each scenario injects one fault (kill -9, SIGSTOP, garbage
records, a long backlog at shutdown, many sessions, a long run) and measures
what Ether's promises become under it. It reports figures, not just verdicts:
a row that shows a broken promise is a correct result.

Run it (from the repository root):

    .venv/bin/python -m tests.faults [--quick] [--json PATH] [--soak SECONDS]

which prints a Markdown table (promise, fault injected, figures, holds), or as
tests, which assert the promises (the broken ones are strict xfails):

    .venv/bin/python -m pytest tests/faults -m faults

tests/integration/test_faults_quick.py runs a small version of each scenario in
the default test run.

One module per scenario; each has run(**sizes) -> Outcome (see common.py):
kill_instance, kill_main, stop_subscriber, stalled_claim, malformed,
shutdown_backlog, cycles, soak. known.py names the defect behind each promise
broken today. The instance classes are in tests/reliability_apps.py; processes
the scenarios start themselves are in processes.py (and victim_main.py, a main
process that is killed).

test_flakes.py (with starvation.py) reproduces two failures seen once: the
crash test's KeyError, and a run that waits forever for a message published
before its listener subscribed.
"""
