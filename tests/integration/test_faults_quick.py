"""The fault suite (tests/faults), small: every scenario once, a few seconds
each, so that CI catches a regression of a promise that holds, and sees a fixed
one turn its strict xfail into a failure (then remove the mark and the entry in
tests/faults/known.py). The full-size run is `python -m tests.faults`.

Each scenario runs once per module (a fixture) and returns an Outcome whose
`checks` say, promise by promise, whether it held; the tests assert them. The
scenarios make their own sessions, check what they leave in /dev/shm and kill
every process they started.
"""
import pytest

from faults import (cycles, kill_instance, kill_main, known, malformed, shutdown_backlog,
                    soak, stalled_claim, stop_subscriber)


def broken(scenario: str, check: str):
    return pytest.mark.xfail(strict=True, reason=known.reason(scenario, check))


def held(outcome, check: str) -> None:
    assert outcome.checks[check], f"{outcome.name}: {check} broken: {outcome.summary}"


# ---- kill -9 of instances during pub/sub and requests ----

@pytest.fixture(scope="module")
def killed_instances():
    return kill_instance.run(kills=4, per_round=4, watchdog_s=120)


def test_a_killed_instance_costs_the_survivors_no_message(killed_instances):
    held(killed_instances, "no_loss")
    held(killed_instances, "no_duplicates")
    held(killed_instances, "no_torn")


def test_a_killed_instance_leaves_nothing_behind(killed_instances):
    held(killed_instances, "no_leaked_segments")
    held(killed_instances, "no_orphans")
    held(killed_instances, "survivors_log_no_errors")


def test_a_killed_instance_is_detected_within_a_second(killed_instances):
    held(killed_instances, "detected_within_1s")
    held(killed_instances, "callers_released_within_1s")


def test_a_publisher_blocked_on_a_killed_subscriber_is_released_within_a_second(killed_instances):
    held(killed_instances, "blocked_publisher_released_within_1s")


# ---- kill -9 of the main ----

@pytest.fixture(scope="module")
def killed_main():
    return kill_main.run(trials=1, cap_s=1.5, backlog=100, watchdog_s=60)


def test_an_idle_instance_exits_by_itself_when_its_main_dies(killed_main):
    # (Not "within 1 s": that is the design's bound for an idle instance, and a
    # loaded machine goes past it; the full run reports the time.)
    held(killed_main, "idle_exits_by_itself")


def test_a_backlogged_instance_exits_within_a_second_of_its_main(killed_main):
    held(killed_main, "backlog_exits_within_1s")


def test_a_looping_instance_exits_within_a_second_of_its_main(killed_main):
    held(killed_main, "looper_exits_within_1s")


# ---- SIGSTOP of a subscriber ----

@pytest.fixture(scope="module")
def stopped_subscriber():
    return stop_subscriber.run(block_missed=4, drop_missed=500, watchdog_s=120)


def test_a_stopped_block_subscriber_costs_at_most_its_timeout(stopped_subscriber):
    held(stopped_subscriber, "block_stall_within_timeout")
    held(stopped_subscriber, "block_received_plus_refused_is_published")
    held(stopped_subscriber, "block_others_get_everything")
    held(stopped_subscriber, "blocked_publisher_answers_requests")


def test_a_stopped_drop_subscriber_costs_nothing_and_every_drop_is_counted(stopped_subscriber):
    held(stopped_subscriber, "drop_never_waits")
    held(stopped_subscriber, "drop_received_plus_dropped_is_published")
    held(stopped_subscriber, "drop_others_get_everything")
    held(stopped_subscriber, "nothing_left_behind")


# ---- a producer stopped mid-claim ----

@pytest.fixture(scope="module")
def stalled():
    return stalled_claim.run(stop_s=2.0, after=500, watchdog_s=60)


def test_a_stalled_claim_leaves_the_other_producers_stream_intact(stalled):
    held(stalled, "healthy_stream_intact")
    held(stalled, "nothing_left_behind")


def test_a_stalled_claim_holds_up_its_inbox_for_at_most_a_second(stalled):
    held(stalled, "consumer_stall_within_1s")


# ---- malformed records ----

@pytest.fixture(scope="module")
def garbage():
    return malformed.run(count=400, watchdog_s=60)


def test_malformed_records_are_rejected_and_the_receiver_keeps_serving(garbage):
    held(garbage, "all_rejected")
    held(garbage, "receiver_alive")
    held(garbage, "valid_all_delivered_in_order")
    held(garbage, "nothing_left_behind")


def test_malformed_records_do_not_flood_the_log(garbage):
    held(garbage, "log_does_not_flood")


# ---- shutdown with a backlog ----

def test_shutdown_with_a_short_backlog_handles_it_and_runs_save_all():
    outcome = shutdown_backlog.run(backlog=20, work_s=0.05, watchdog_s=60)
    assert outcome.held, outcome.summary


@pytest.fixture(scope="module")
def long_backlog():
    # 12 s of work: more than the 10 s that shutdown drains today. (The one slow
    # test of this module: the defect needs a backlog longer than that budget.)
    return shutdown_backlog.run(backlog=240, work_s=0.05, watchdog_s=120)


def test_shutdown_with_a_long_backlog_leaves_nothing_behind(long_backlog):
    held(long_backlog, "every_message_handled")
    held(long_backlog, "nothing_left_behind")


def test_shutdown_with_a_long_backlog_runs_save_all(long_backlog):
    held(long_backlog, "save_all_ran")


def test_shutdown_with_a_long_backlog_runs_cleanup_and_shutdown(long_backlog):
    held(long_backlog, "cleanup_and_shutdown_ran")


# ---- trial after trial; a short soak ----

def test_tap_shutdown_cycles_with_arrays_return_the_memory():
    outcome = cycles.run(cycles=3, watchdog_s=60)
    assert outcome.held, outcome.summary


def test_a_short_soak_loses_nothing_and_stays_flat():
    outcome = soak.run(seconds=6.0, rate=300.0, watchdog_s=90)
    assert outcome.held, outcome.summary
