"""Provenance capture: git commit, dirty flag and diff hash; "no repository"
outside git; equal configs hash equal, one kwarg changes the hash."""
import subprocess
import sys

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
