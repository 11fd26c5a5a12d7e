"""The README's Quick Start runs as written and prints what it promises."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


# The script has no `if __name__ == "__main__":` guard, as in the README: with
# forkserver or spawn an instance must never run it again. Run as a file, the way
# the README's users run it (multiprocessing re-runs a file, not a package's
# __main__ run with -m).
@pytest.mark.parametrize("start_method, how", [
    ("fork", "-m"), ("fork", "file"), ("forkserver", "file"), ("spawn", "file"), ("spawn", "-m")])
def test_quick_start_output_line_by_line(start_method, how):
    env = dict(os.environ, ETHER_START_METHOD=start_method,
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    run = ["-m", "examples.simple_data_processing"] if how == "-m" else \
        ["examples/simple_data_processing/__main__.py"]
    proc = subprocess.run([sys.executable, *run], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=120, env=env)
    out = proc.stdout
    assert proc.returncode == 0, out
    main_pid = re.search(r"Ether:(\d+) - INFO - Starting Ether session: (\w+)", out)
    assert main_pid, out
    main_pid, session = main_pid.groups()
    assert "Ether system started successfully" in out
    assert f"Ether:{main_pid} - INFO - Shutting down Ether session: {session}" in out
    assert "Ether system shutdown complete" in out
    ether_part, _, manual = out.partition("# Manual usage output after shutdown:")

    lines = re.findall(r"^(\w+)\[PID (\d+)\]: (.*)$", ether_part, re.M)
    pids = {cls: {p for c, p, _ in lines if c == cls} for cls in ("DataGenerator", "DataProcessor", "DataCollector")}
    assert len(pids["DataGenerator"]) == 1 and len(pids["DataCollector"]) == 1
    assert len(pids["DataProcessor"]) == 2  # two processor instances, two processes
    assert main_pid not in set().union(*pids.values())
    texts = [t for _, _, t in lines]
    assert texts.count("Generating data - 42") == 1
    assert texts.count("Processing input data - 42") == 2
    assert "Processed output result - 84" in texts and "Processed output result - 168" in texts
    assert "Collected result - 84" in texts and "Collected result - 168" in texts
    summaries = [t for t in texts if t.startswith("Summarizing results")]
    assert len(summaries) == 2
    assert summaries[-1] == "Summarizing results - mean: 126.0, max: 168, min: 84"

    manual_lines = re.findall(r"^(\w+)\[PID (\d+)\]: (.*)$", manual, re.M)
    assert {p for _, p, _ in manual_lines} == {main_pid}  # the fallback runs in the main process
    assert [t for _, _, t in manual_lines] == [
        "Generating data - 4242",
        "Processing input data - 4242", "Processed output result - 8484",
        "Processing input data - 4242", "Processed output result - 16968",
        "Collected result - 8484", "Collected result - 16968",
        "Summarizing results - mean: 12726.0, max: 16968, min: 8484",
    ]
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"ether_{session}")]


def test_ether_run_cli_runs_a_config_for_a_duration(tmp_path):
    config = ROOT / "examples" / "simple_data_processing" / "config" / "dual_processors.yaml"
    proc = subprocess.run([sys.executable, "-m", "ether", "run", str(config), "--duration", "0.5"],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.count("Summarizing results") == 2
    assert "Ether system shutdown complete" in proc.stdout


def test_ether_run_cli_rejects_a_broken_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("instances:\n  a:\n    clas_path: x.Y\n")
    proc = subprocess.run([sys.executable, "-m", "ether", "run", str(bad)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "instance 'a': unknown key 'clas_path'" in proc.stderr
