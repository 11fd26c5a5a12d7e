"""Provenance capture: git commit, dirty flag and diff hash; "no repository"
outside git; equal configs hash equal, one kwarg changes the hash."""
import subprocess
import sys

import pytest

from ether.config import EtherConfig
from ether._runtime import _provenance


def test_a_dirty_repository_gives_its_commit_the_flag_and_the_diff_hash(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "mod.py").write_text("X = 1\n")
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(git[:3] + ["init", "-q", "-b", "main"], check=True)
    subprocess.run(git + ["add", "mod.py"], check=True)
    subprocess.run(git + ["commit", "-qm", "one"], check=True)
    commit = subprocess.run(git[:3] + ["rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    clean = _provenance.git_info(repo / "mod.py")
    assert clean["commit"] == commit and clean["branch"] == "main" and clean["dirty"] is False
    (repo / "mod.py").write_text("X = 2\n")
    dirty = _provenance.git_info(repo / "mod.py")
    assert dirty["dirty"] is True and "X = 2" in dirty["diff"]
    import hashlib
    assert dirty["diff_sha256"] == hashlib.sha256(dirty["diff"].encode()).hexdigest()


def test_outside_git_it_says_no_repository(tmp_path):
    (tmp_path / "m.py").write_text("")
    assert _provenance.git_info(tmp_path / "m.py") == {"repository": "no repository"}


def test_equal_configs_hash_equal_and_one_kwarg_changes_it():
    a = {"instances": {"p": {"class_path": "m.C", "kwargs": {"multiplier": 2}}}}
    b = {"instances": {"p": {"class_path": "m.C", "kwargs": {"multiplier": 2}}}}
    c = {"instances": {"p": {"class_path": "m.C", "kwargs": {"multiplier": 3}}}}
    ha, hb, hc = (_provenance.config_sha256(EtherConfig.load(x)) for x in (a, b, c))
    assert ha == hb != hc


def test_capture_names_each_instance_its_module_hash_and_methods():
    import record_apps
    config = EtherConfig.load({"instances": {"stage": {"class_path": "record_apps.Stage"}}})
    record = _provenance.capture(config, {"stage": (config.instances["stage"], record_apps.Stage)},
                                 session="s", run_id=bytes(16))
    stage = record["instances"]["stage"]
    assert stage["class_path"] == "record_apps.Stage" and len(stage["module_sha256"]) == 64
    assert stage["handlers"] == {"data": ["on_data"]}
    assert record["config_sha256"] == _provenance.config_sha256(config)
    assert record["versions"]["python"] == "%d.%d.%d" % sys.version_info[:3]


@pytest.mark.timeout(30)
def test_the_forked_capture_is_read_whole_and_a_child_that_fails_or_hangs_is_a_clear_error():
    import os

    from ether._runtime._supervisor import _read_provenance

    def child(code: str):  # as _fork_provenance's child: its pid, and its output's pipe
        r, w = os.pipe()
        pid = os.posix_spawn(sys.executable, [sys.executable, "-c", code], os.environ,
                             file_actions=[(os.POSIX_SPAWN_DUP2, w, 1)])
        os.close(w)
        return pid, r

    # More than a pipe holds at once: read in pieces until the end.
    pid, fd = child("import json, sys; sys.stdout.write(json.dumps({'x': 'y' * 300000, 'n': 1}))")
    assert _read_provenance(pid, fd) == {"x": "y" * 300_000, "n": 1}
    pid, fd = child("import sys; sys.exit(3)")
    with pytest.raises(RuntimeError, match="status"):
        _read_provenance(pid, fd)
    pid, fd = child("import time; time.sleep(60)")
    with pytest.raises(TimeoutError, match="gave nothing within 0.5 s"):
        _read_provenance(pid, fd, timeout=0.5)
