"""The public names: ether.__all__ and ether.lowlevel.__all__ are pinned, every
name resolves, and importing ether has no side effects and loads no transport."""
import json
import os
import subprocess
import sys
import textwrap

import ether
import ether.lowlevel

TOP = [
    "ether",
    "ether_cleanup", "ether_get", "ether_health", "ether_init", "ether_pub", "ether_save", "ether_save_all",
    "ether_shutdown", "ether_start", "ether_sub", "ether_sync",
    "ArenaFull", "ClaimSkipped", "ConfigError", "EtherError", "InboxClosed", "InboxExists",
    "InboxFull", "InboxNotFound", "MalformedMessage", "MessageTooLarge", "RemoteError",
    "RingCorrupt", "SegmentError", "ServiceGone", "ServiceNotFound", "SessionClosed",
    "SessionExists", "SessionNotFound", "ShmSpaceError", "SyncFailed", "Timeout",
    "TooManyProducers", "ValidationFailed", "WouldBlock",
]

LOWLEVEL = [
    "Session", "Inbox", "Sender", "Claim", "InboxStatistics", "SenderStatistics",
    "remove_stale_sessions", "list_sessions", "inspect",
    "SessionInfo", "SessionSnapshot", "MemberInfo", "InboxInfo", "Subscription", "Publisher",
    "Client", "default_client", "session_log_dir", "Node", "Envelope", "MessageId", "Origin",
    "Delivery", "WIRE_VERSION",
    "default_topic", "service_topic", "sync_topic", "is_pattern", "matches", "check_topic",
    "RESERVED_PREFIXES", "InstanceState", "STATS_TOPIC", "STATS_BUCKETS_S", "log_root", "shm_needs",
    "decode_envelope", "Encoder", "Decoders", "Request", "request_of", "MESSAGE", "REQUEST", "REPLY",
    "Member", "MemberSpec", "prestart_module", "launch_trace", "CALL_PREFIX", "DROPS_TOPIC",
    "BRIDGE_CLASS", "BRIDGE_LINKS",
]


def test_the_top_level_names_are_pinned_and_resolve():
    assert sorted(ether.__all__) == sorted(TOP)
    assert len(set(ether.__all__)) == len(ether.__all__)
    for name in ether.__all__:
        assert getattr(ether, name) is not None, name


def test_the_errors_all_derive_from_ether_error():
    for name in TOP:
        value = getattr(ether, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, ether.EtherError), name


def test_the_lowlevel_names_are_pinned_and_resolve():
    assert sorted(ether.lowlevel.__all__) == sorted(LOWLEVEL)
    for name in ether.lowlevel.__all__:
        assert getattr(ether.lowlevel, name) is not None, name


def test_the_transport_names_left_the_top_level_but_old_aliases_still_work():
    for name in ("Session", "Inbox", "Sender", "InboxStatistics", "SenderStatistics",
                 "remove_stale_sessions"):
        assert name not in ether.__all__
        assert getattr(ether, name) is getattr(ether.lowlevel, name)
    assert ether.Loan is ether.lowlevel.Claim


def test_the_package_ships_its_type_marker():
    assert os.path.exists(os.path.join(os.path.dirname(ether.__file__), "py.typed"))


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_ether_starts_no_thread_creates_nothing_and_loads_no_transport():
    facts = _run("""
        import json, os, sys, threading
        import ether
        from ether import ether as facade, ether_pub, ether_sub
        fds = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
               if os.path.exists(f"/proc/self/fd/{fd}")]
        print(json.dumps({
            "threads": threading.active_count(),
            "shm": [path for path in fds if path.startswith("/dev/shm")],
            "transport": sorted(m for m in sys.modules
                                if m in ("ether._ether_c", "posix_ipc", "numpy", "cffi")
                                or m.startswith(("ether._core._ring", "ether._core._session",
                                                 "ether._core._segment", "ether._runtime")))}))
    """)
    assert facts == {"threads": 1, "shm": [], "transport": []}


def test_the_command_line_builds_its_help_without_the_heavy_modules():
    # `ether --help` and the parser of every command: no config models (pydantic),
    # no codec (msgspec), no YAML, no facade; each command imports those when it runs.
    loaded = _run("""
        import json, sys
        from ether.cli import _parser
        _parser().format_help()
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in
                                ("pydantic", "msgspec", "yaml", "numpy", "zenoh", "cryptography")
                                or m in ("ether._facade", "ether.config", "ether.bridge"))))
    """)
    assert loaded == []


def test_watching_verbs_load_only_what_they_use():
    # `ether ps` and the other watchers: the directory, a client and the stats topic,
    # not the decorators, the runtime's launcher, the log reader or the config models.
    loaded = _run("""
        import json, sys
        from ether import lowlevel, monitor
        lowlevel.inspect, lowlevel.Client, lowlevel.STATS_TOPIC, monitor.StatsWatch
        print(json.dumps(sorted(m for m in sys.modules if m in (
            "ether._spec._decorators", "ether._runtime._member", "ether._runtime._launch",
            "ether.monitor._logs", "ether.config", "ether._facade", "pydantic", "yaml"))))
    """)
    assert loaded == []


def test_decorators_work_and_tap_fails_clearly_off_linux():
    facts = _run("""
        import json, sys
        sys.platform = "darwin"          # as on a Mac: the transport must not be needed
        from ether import ether, ether_pub, ether_sub, EtherError

        class Plain:
            @ether_sub(topic="x")
            @ether_pub(topic="y")
            def step(self, value: int = 1) -> dict:
                return {"value": value + 1}

        result = Plain().step(value=2)
        try:
            ether.tap({"instances": {}})
            error = None
        except EtherError as exc:
            error = str(exc)
        print(json.dumps({"result": result, "error": error,
                          "loaded": "ether._core._segment" in sys.modules}))
    """)
    assert facts["result"] == {"value": 3}
    assert facts["error"] and "'darwin'" in facts["error"] and "Linux" in facts["error"]
    assert facts["loaded"] is False
