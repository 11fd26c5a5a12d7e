"""The watchdog's reading of a dying main: gone, a zombie, or exiting (PF_EXITING)
is an orphan's parent; a live process is not."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ether._runtime._watchdog import _exiting


@pytest.mark.timeout(30)
def test_a_live_process_is_not_exiting_and_a_zombie_or_a_gone_one_is():
    assert not _exiting(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        # Not reaped yet: once it has exited it is a zombie (waitid WNOWAIT leaves it so).
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        assert _exiting(child.pid)
    finally:
        child.wait(10)
    assert _exiting(child.pid)  # reaped: gone
