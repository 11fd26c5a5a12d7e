"""A main process for kill_main.py, which kills it: it taps a session with a
looping instance (a sensor loop in @ether_start), a backlogged one (slow work
queued, all of it in its inbox before it reads any) and an idle one, waits until
the loop runs and the backlog is being worked off, reports the session and the
instances' pids on the file descriptor it was given, and waits to be killed.

    python -m faults.victim_main '<json params>' <report fd>     (cwd: tests/)
"""
from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
import threading


def main() -> None:
    params = json.loads(sys.argv[1])
    report_fd = int(sys.argv[2])
    # If nobody kills this process, it ends itself (with a traceback) after this.
    faulthandler.dump_traceback_later(params["watchdog_s"], exit=True)
    from ether import ether
    from ether.lowlevel import inspect
    w = {"watchdog_s": params["instance_watchdog_s"]}
    ether.tap(config={"instances": {
        "looper": {"class_path": "reliability_apps.Looper", "kwargs": w},
        "backlog": {"class_path": "reliability_apps.Backlogged", "kwargs": w},
        "idle": {"class_path": "reliability_apps.FaultEcho", "kwargs": w},
    }})
    sid = ether.session_name()
    pids = {m.name: m.pid for m in inspect(sid).members if m.name != "main"}
    with ether.listen("fault-working", timeout=30) as working, \
            ether.listen("fault-looping", timeout=30) as looping:
        # The whole backlog in its inbox before it reads any of it: then it reads
        # it as one batch (as an instance that fell behind does), not message by
        # message as they come.
        os.kill(pids["backlog"], signal.SIGSTOP)
        try:
            for seq in range(params["backlog"]):
                ether.pub({"seq": seq, "seconds": params["work_s"]}, topic="fault-backlog")
        finally:
            os.kill(pids["backlog"], signal.SIGCONT)
        ether.start()
        next(working)   # the backlog is being worked off
        next(looping)   # the loop runs
    os.write(report_fd, (json.dumps({"session": sid, "pids": pids, "main": os.getpid()}) + "\n").encode())
    os.close(report_fd)
    threading.Event().wait(params["watchdog_s"])  # until killed


if __name__ == "__main__":
    main()
