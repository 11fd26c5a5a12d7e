"""The build of the C core explains what to install when there is no compiler."""
import os
import pathlib
import subprocess
import sys

BUILD = pathlib.Path(__file__).resolve().parents[2] / "csrc" / "_build.py"


def test_missing_compiler_says_what_to_install(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path), CC="no-such-cc")  # nothing on PATH
    proc = subprocess.run([sys.executable, str(BUILD)], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0
    assert "needs a C compiler" in proc.stderr
    assert "apt-get install gcc" in proc.stderr


def test_unknown_sanitizer_is_refused(tmp_path):
    env = dict(os.environ, ETHER_SANITIZE="memory")
    proc = subprocess.run([sys.executable, "-c", f"import runpy; runpy.run_path({str(BUILD)!r})"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "ETHER_SANITIZE='memory' is not one of 'address', 'thread'" in proc.stderr
