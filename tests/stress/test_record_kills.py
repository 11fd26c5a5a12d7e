"""The full-size recorder-kill run: 100 random SIGKILLs (opt-in: pytest tests/stress)."""
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.stress


@pytest.mark.timeout(3600)
def test_a_hundred_random_recorder_kills():
    env = dict(os.environ, ETHER_RECORD_KILLS="100")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                           "tests/integration/test_record_crash.py", "-k", "random"], env=env)
    assert done.returncode == 0
