"""Provenance capture: git commit, dirty flag and diff hash; "no repository"
outside git; equal configs hash equal, one kwarg changes the hash."""
import os
import subprocess
import sys

import pytest

from ether.config import EtherConfig
from ether._runtime import _provenance


def _repo(path):
    """A repository at `path` with one commit of mod.py on branch main; its git argv."""
    path.mkdir()
    (path / "mod.py").write_text("X = 1\n")
    git = ["git", "-C", str(path), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(git[:3] + ["init", "-q", "-b", "main"], check=True)
    subprocess.run(git + ["add", "mod.py"], check=True)
    subprocess.run(git + ["commit", "-qm", "one"], check=True)
    return git


def test_a_dirty_repository_gives_its_commit_the_flag_and_the_diff_hash(tmp_path):
    repo = tmp_path / "repo"
    git = _repo(repo)
    commit = subprocess.run(git[:3] + ["rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    clean = _provenance.git_info(repo / "mod.py")
    assert clean["commit"] == commit and clean["branch"] == "main" and clean["dirty"] is False
    (repo / "mod.py").write_text("X = 2\n")
    dirty = _provenance.git_info(repo / "mod.py")
    assert dirty["dirty"] is True and "X = 2" in dirty["diff"]
    import hashlib
    assert dirty["diff_sha256"] == hashlib.sha256(dirty["diff"].encode()).hexdigest()


def test_a_clean_repository_costs_one_git_process_and_a_detached_head_is_head(tmp_path):
    git = _repo(tmp_path / "repo")
    query = _provenance._GitQuery(tmp_path / "repo")
    assert len(query._procs) == 1   # the status alone: no diff for a clean tree
    info = query.info()
    assert info["dirty"] is False and len(query._procs) == 1, info
    subprocess.run(git + ["checkout", "-q", "--detach"], check=True)
    detached = _provenance.git_info(tmp_path / "repo" / "mod.py")
    assert detached["branch"] == "HEAD" and detached["commit"] == info["commit"], detached
    # A staged change is dirt too (the diff against HEAD).
    (tmp_path / "repo" / "mod.py").write_text("X = 3\n")
    subprocess.run(git + ["add", "mod.py"], check=True)
    staged = _provenance.git_info(tmp_path / "repo" / "mod.py")
    assert staged["dirty"] is True and "X = 3" in staged["diff"], staged


def test_a_git_older_than_2_15_still_gives_the_commit_branch_and_diff(tmp_path, monkeypatch):
    """Such a git knows neither --no-optional-locks nor porcelain v2: rev-parse and
    the diff then (a stand-in git refuses both, as an old one does)."""
    import shutil
    real = shutil.which("git")
    _repo(tmp_path / "repo")
    (tmp_path / "repo" / "mod.py").write_text("X = 5\n")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "git").write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do case "$a" in --no-optional-locks|--porcelain=v2)\n'
        '  echo "Unknown option: $a" >&2; echo "usage: git [--version]" >&2; exit 129;; esac; done\n'
        f'exec {real} "$@"\n')
    (fake / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    info = _provenance.git_info(tmp_path / "repo" / "mod.py")
    assert info["branch"] == "main" and len(info["commit"]) == 40, info
    assert info["dirty"] is True and "X = 5" in info["diff"], info


def test_a_repository_without_a_commit_is_an_error_field(tmp_path):
    repo = tmp_path / "empty"
    repo.mkdir()
    subprocess.run(["git", "-C", str(repo), "init", "-q"], check=True)
    info = _provenance.git_info(repo / "mod.py")
    assert info == {"repository": str(repo), "error": "git failed: the repository has no commit yet"}


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
def test_a_git_that_hangs_or_is_missing_is_a_clear_error_field_and_leaves_no_process(
        tmp_path, monkeypatch):
    import os
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "mod.py").write_text("")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "git").write_text("#!/bin/sh\nexec sleep 60\n")
    (fake / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    monkeypatch.setattr(_provenance, "GIT_TIMEOUT_S", 0.5)
    earlier = _children()  # of other tests
    info = _provenance.git_info(repo / "mod.py")
    assert info["repository"] == str(repo) and "more than 0.5 s" in info["error"], info
    (fake / "git").unlink()
    monkeypatch.setenv("PATH", str(fake))   # no git (nor nice) at all
    monkeypatch.setattr(_provenance, "_NICE", False)
    info = _provenance.git_info(repo / "mod.py")
    assert info["error"].startswith("git failed:"), info
    # Every git it started was killed and reaped.
    left = _children() - earlier
    assert left == set(), left


def test_begin_then_finish_equals_one_capture_and_git_runs_between():
    import record_apps
    config = EtherConfig.load({"instances": {"stage": {"class_path": "record_apps.Stage"}}})
    classes = {"stage": (config.instances["stage"], record_apps.Stage)}
    pending = _provenance.begin(config, classes, session="s", run_id=bytes(16))
    pending.start_git()
    record = pending.finish()
    whole = _provenance.capture(config, classes, session="s", run_id=bytes(16))
    for key in ("instances", "diffs", "config_sha256", "pip_freeze_sha256", "versions"):
        assert record[key] == whole[key], key
    assert isinstance(record["instances"]["stage"]["git"], dict)


def _children() -> set[str]:
    import os
    return {e for e in os.listdir("/proc") if e.isdigit() and _parent(e) == os.getpid()}


def _parent(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1