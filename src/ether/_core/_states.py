"""The values an instance's state word takes in the session directory.

The directory stores a u32 per member whose meaning the upper layers give: the
main process's entry holds the session's stage (_runtime/_control.Stage), an
instance's entry its InstanceState, written by the main process
(_runtime/_control.InstanceState.code). The numbers live here, below their
readers: a request in the node layer reads them off a placeholder to tell an
instance that is coming back from one that failed, and `inspect()` shows them.
0 is unknown (an instance that has not been told its state yet).
"""
from __future__ import annotations

__all__ = ["STARTING", "READY", "STOPPING", "STOPPED", "FAILED", "EXITED", "RESTARTING",
           "STUCK", "RESTARTING_STATES", "NAMES"]

STARTING = 1     # launched, not ready yet
READY = 2        # serving
STOPPING = 3     # told to stop
STOPPED = 4      # stopped when told to
FAILED = 5       # could not start, or restarted too often: no more restarts
EXITED = 6       # died while ready, and its policy does not restart it
RESTARTING = 7   # died; a new process is on its way (its placeholder holds its name)
STUCK = 8        # a handler did not return in time: being killed, then restarted

#: A placeholder in one of these states will be replaced by a live instance.
RESTARTING_STATES = frozenset({RESTARTING, STUCK})

NAMES = {STARTING: "starting", READY: "ready", STOPPING: "stopping", STOPPED: "stopped",
         FAILED: "failed", EXITED: "exited", RESTARTING: "restarting", STUCK: "stuck"}
