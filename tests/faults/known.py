"""The promises the fault suite finds broken today, by (scenario, check), with
the defect of issue 10 that breaks each. The tests mark these as strict xfails
(tests/integration/test_faults_quick.py, tests/faults/test_faults.py); whoever
fixes one sees its xfail turn into a failure: remove the entry here (and the
mark) then. The runner names the defect in the table's "holds" column."""

BROKEN = {
    ("kill_instance", "blocked_publisher_released_within_1s"):
        "issue 10 #8: a publisher blocked on the full inbox of a killed block-policy subscriber "
        "stays blocked until its timeout; its sender checks the consumer's liveness only when "
        "the wait has run out (_core/_sender.py Sender._outcome)",
    ("kill_main", "backlog_exits_within_1s"):
        "issue 10 #7: an instance looks for a dead main only between batches of its dispatch "
        "loop (_node/_node.py Node.serve), so a backlog keeps it running after its main died",
    ("kill_main", "looper_exits_within_1s"):
        "issue 10 #7: an @ether_start handler that loops never returns to the dispatch loop, "
        "the only place that looks for a dead main (_node/_node.py Node.serve)",
    ("stalled_claim", "consumer_stall_within_1s"):
        "issue 10 #10: the claim of a live but stopped producer at the head blocks the inbox "
        "until it commits; only dead producers' claims are skipped (_core/_inbox.py "
        "Inbox._recover)",
    ("malformed", "log_does_not_flood"):
        "issue 10 #5: malformed control records (an unknown kind, a control message from a "
        "stranger) are logged in full, one ERROR line each, by Lifecycle.on_control "
        "(_runtime/_lifecycle.py), not counted by the node's Rejections",
    ("shutdown_backlog", "every_message_handled"):
        "issue 10 #1: shutdown drains for at most 10 s (_runtime/_supervisor.py DRAIN_BUDGET_S), "
        "then stops the instance with its backlog unhandled",
    ("shutdown_backlog", "save_all_ran"):
        "issue 10 #1: an instance still busy after the 10 s drain is marked unresponsive and "
        "its save_all is skipped (_runtime/_supervisor.py Supervisor.request_all)",
    ("shutdown_backlog", "cleanup_and_shutdown_ran"):
        "issue 10 #1: an instance still busy after the 10 s drain is marked unresponsive and "
        "its cleanup and shutdown handlers are skipped",
}


def reason(scenario: str, check: str) -> str:
    return BROKEN[(scenario, check)]
