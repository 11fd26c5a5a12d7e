"""The examples run as the README says and print what it promises."""
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_inbox_pipeline_example_delivers_a_million_readings_in_order():
    proc = subprocess.run([sys.executable, "examples/inbox_pipeline/main.py"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    main_pid = re.search(r"main\[pid (\d+)\]", out).group(1)
    producer_pid = re.search(r"producer\[pid (\d+)\]: sent 1000000 readings", out).group(1)
    assert main_pid != producer_pid
    assert "received 1000000 readings in order" in out
    assert "dropped=0" in out and "skipped_claims=0" in out
    assert "leftover segments: []" in out
    session = re.search(r"session '(\w+)'", out).group(1)
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"ether_{session}")]
