"""What produced a session: the record `tap` writes as `provenance.json` in the
session's log folder (and publishes on `ether/provenance`, where a recorder
files it with its recording).

Per session: run id, session name, host, user, the Ether, Python and numpy
versions, the config (YAML) and the sha256 of its canonical JSON, the command
line, the sha256 of the installed distributions (`pip freeze`'s content, read
from the dist-info folders: _installed.py), and a wall-clock/monotonic anchor.
Per instance: class path, module file and its sha256, the distribution that
owns it and its version, the sha256 of its kwargs, and the git commit, branch
and dirty flag of the repository holding the module, with the diff's sha256
(the diff itself under "diffs", once per repository). Outside git the
repository is "no repository": not an error.

A tap takes the local part before it forks the instances (begin: some ms), runs
git beside them, and reads git once they are up (Capture.finish, in a thread); nothing
in it may fail a tap: a problem becomes an "error" field.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from .._node._topics import PROVENANCE_TOPIC

__all__ = ["Capture", "begin", "capture", "config_sha256", "git_info", "write", "FILE_NAME", "TOPIC"]

FILE_NAME = "provenance.json"
TOPIC = PROVENANCE_TOPIC
GIT_TIMEOUT_S = 5.0
_NICE = shutil.which("nice") is not None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def config_sha256(config) -> str:
    """The sha256 of the config's canonical JSON: equal configs, equal hashes."""
    return _sha256(canonical(config.model_dump(mode="json")))


def _config_yaml(config) -> str:
    source = config.source
    if source is not None:
        try:
            return Path(source).read_text(encoding="utf-8")
        except OSError:
            pass
    # A config given as a dict is written as indented JSON, which is YAML too (1.2):
    # importing yaml would cost the capture 30 ms of CPU beside the first calls.
    return json.dumps(config.model_dump(mode="json"), indent=2, default=str) + "\n"


def _versions() -> dict:
    from . import _installed
    installed = _installed.versions()
    out = {"python": platform.python_version()}
    for name in ("ether", "numpy", "msgspec"):
        # The dist-info folders' names first (importlib.metadata's import and
        # parsing cost the capture 10-30 ms of CPU beside the first messages).
        found = installed.get(name)
        if found is None:
            from importlib.metadata import PackageNotFoundError, version
            try:
                found = version(name)
            except PackageNotFoundError:
                pass
        out[name] = found
    return out


def _freeze_sha256() -> str:
    from . import _installed
    return _sha256("\n".join(_installed.freeze_lines()).encode())


class _GitQuery:
    """git's description of one repository. `git status` (the commit, the branch,
    and whether tracked files changed: one process where two ran before) starts at
    once, at nice 10 where `nice` exists; info() reads it and, only when tracked
    files changed, runs `git diff HEAD` for the diff itself. A tap starts the
    status beside its instances and reads it once they are up."""

    def __init__(self, root: Path):
        self.root = root
        self._procs: list = []
        self._error: str | None = None
        try:
            self._procs.append(self._start("status", "--porcelain=v2", "--branch",
                                           "--untracked-files=no"))
        except OSError as exc:
            self._error = f"git failed: {exc}"

    def _start(self, *args: str, old_git: bool = False):
        prefix = ["nice", "-n", "10"] if _NICE else []
        # --no-optional-locks: status refreshes the index and writes it back when it
        # can, which would take index.lock from a git command the user runs meanwhile.
        # (A git older than 2.15 knows neither it nor porcelain v2: see info().)
        options = [] if old_git else ["--no-optional-locks"]
        argv = [*prefix, "git", *options, "-C", str(self.root), *args]
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def _output(self, proc, deadline: float) -> str:
        try:
            out, err = proc.communicate(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            raise subprocess.SubprocessError(f"git took more than {GIT_TIMEOUT_S:g} s") from None
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, proc.args, out, err)
        return out.decode(errors="replace")

    def info(self) -> dict:
        """{repository, commit, branch, dirty, diff_sha256[, diff]}, or an error."""
        info: dict = {"repository": str(self.root)}
        if self._error is not None:  # git could not be started (or only one of the two)
            self._reap()
            return {**info, "error": self._error}
        deadline = time.monotonic() + GIT_TIMEOUT_S
        try:
            old_git = False
            try:
                commit, branch, changed = _status(self._output(self._procs[0], deadline))
            except subprocess.CalledProcessError as exc:
                if b"usage" not in (exc.stderr or b"").lower() and \
                        b"unknown option" not in (exc.stderr or b"").lower():
                    raise
                # An old git: rev-parse for the commit and branch, then the diff decides.
                old_git, changed = True, True
                self._procs.append(self._start("rev-parse", "HEAD", "--abbrev-ref", "HEAD",
                                               old_git=True))
                commit, branch = (self._output(self._procs[-1], deadline).split() + ["", ""])[:2]
            info["commit"], info["branch"] = commit, branch
            diff = ""
            if changed:   # the diff against HEAD: staged and unstaged changes of tracked files
                self._procs.append(self._start("diff", "HEAD", old_git=old_git))
                diff = self._output(self._procs[-1], deadline)
            info["dirty"] = bool(diff)
            if info["dirty"]:
                info["diff_sha256"] = _sha256(diff.encode())
                info["diff"] = diff
        except (OSError, subprocess.SubprocessError) as exc:
            info["error"] = f"git failed: {exc}"
        finally:
            self._reap()
        return info

    def _reap(self) -> None:
        for proc in self._procs:  # never a zombie nor an open pipe, whatever went wrong
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


def _status(text: str) -> tuple[str, str, bool]:
    """(commit, branch, whether a tracked file changed) from `git status
    --porcelain=v2 --branch`: a detached HEAD's branch is "HEAD", as `git
    rev-parse --abbrev-ref HEAD` says."""
    commit = branch = ""
    changed = False
    for line in text.splitlines():
        if line.startswith("# branch.oid "):
            commit = line[len("# branch.oid "):].strip()
        elif line.startswith("# branch.head "):
            branch = line[len("# branch.head "):].strip()
        elif line and not line.startswith("#"):
            changed = True
    if commit in ("", "(initial)"):
        raise subprocess.SubprocessError("the repository has no commit yet")
    return commit, "HEAD" if branch == "(detached)" else branch, changed


def _repository(directory: Path) -> Path | None:
    for folder in (directory, *directory.parents):
        if (folder / ".git").exists():
            return folder
    return None


def git_info(path) -> dict:
    """{repository, commit, branch, dirty, diff_sha256[, diff]} of the git
    repository holding `path`, or {"repository": "no repository"}."""
    root = _repository(Path(path).resolve().parent)
    return {"repository": "no repository"} if root is None else _GitQuery(root).info()


def _distribution(module_name: str, path: str | None) -> dict:
    from . import _installed
    found = _installed.owner(module_name, path)
    return {"distribution": found[0] if found else None, "version": found[1] if found else None}


def instance_record(name: str, inst, cls, cache: dict, spec=None) -> dict:
    dumped = inst.model_dump(mode="json")
    record = {"name": name, "class_path": inst.class_path, "module": cls.__module__,
              "kwargs_sha256": _sha256(canonical(dumped["kwargs"])),
              "args_sha256": _sha256(canonical(dumped["args"]))}
    shared = cache.get(("class", cls))
    if shared is None:   # what every instance of a class shares, computed once
        shared = cache[("class", cls)] = _class_record(cls, cache)
    record.update(shared)
    record.update(_methods(name, cls, spec))
    return record


# path -> ((mtime_ns, size), record): a module's hash, repository and distribution,
# kept while the file is unchanged (a process that taps again reads none of it).
_modules: dict[str, tuple[tuple[int, int], dict]] = {}


def _class_record(cls, cache: dict) -> dict:
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    try:
        st = os.stat(path) if path is not None else None
    except OSError:
        st = None
    stamp = (st.st_mtime_ns, st.st_size) if st is not None else None
    known = _modules.get(path) if stamp is not None else None
    if known is not None and known[0] == stamp:
        record = dict(known[1])
    else:
        record = _module_record(cls, path)
        if stamp is not None and "error" not in record:
            _modules[path] = (stamp, dict(record))
    root = record.get("git")
    if isinstance(root, Path):
        cache.setdefault(("git", root), None)
    return record


def _module_record(cls, path: str | None) -> dict:
    record = _distribution(cls.__module__, path)
    if path is None:
        record.update(file=None, module_sha256=None, git={"repository": "no repository"})
        return record
    record["file"] = path
    try:
        record["module_sha256"] = _sha256(Path(path).read_bytes())
    except OSError as exc:
        record["module_sha256"] = None
        record["error"] = str(exc)
    root = _repository(Path(path).resolve().parent)
    # The repository's description comes with Capture.finish (git runs meanwhile).
    record["git"] = root if root is not None else {"repository": "no repository"}
    return record


def _methods(name: str, cls, spec=None) -> dict:
    """Which method handles each topic (and service), and where each publishes:
    what names the method of a step in a recording's lineage. `spec`: the class's
    introspection, if the caller has it (the tap has: it checked every class)."""
    from .._node._topics import service_topic
    if spec is None:
        from .._spec._introspect import introspect
        spec = introspect(cls)
    handlers: dict[str, list[str]] = {}
    for handler in spec.handlers:
        for topic in handler.topics:
            handlers.setdefault(topic, []).append(handler.method)
    for service in spec.services:
        for target in dict.fromkeys((spec.name, name)):
            handlers.setdefault(service_topic(target, service.method), []).append(service.method)
    return {"handlers": handlers, "publishes": {m: list(t) for m, t in spec.pubs.items()}}


def capture(config, classes: dict, *, session: str, run_id: bytes) -> dict:
    """The provenance of a session: `classes` maps instance name -> (config, class)."""
    pending = begin(config, classes, session=session, run_id=run_id)
    pending.start_git()
    return pending.finish()


class Capture:
    """A provenance record whose git descriptions are still to come: begin() makes
    it (the local part, some milliseconds of this process's CPU), start_git()
    starts git's processes, finish() reads them and returns the whole record."""

    def __init__(self, record: dict, roots: list[Path]):
        self.record, self._roots = record, roots
        self._queries: dict[Path, _GitQuery] | None = None

    def start_git(self) -> None:
        if self._queries is None:
            self._queries = {root: _GitQuery(root) for root in self._roots}

    def finish(self) -> dict:
        self.start_git()
        infos = {root: query.info() for root, query in self._queries.items()}
        for instance in self.record["instances"].values():
            root = instance.get("git")
            if isinstance(root, Path):
                instance["git"] = {k: v for k, v in infos[root].items() if k != "diff"}
        self.record["diffs"] = {str(root): info["diff"] for root, info in infos.items()
                                if "diff" in info}
        return self.record


def begin(config, classes: dict, *, session: str, run_id: bytes,
          specs: dict | None = None) -> Capture:
    """All of the provenance but git's part (see Capture). `specs`: instance name ->
    its class's introspection, where the caller has it."""
    wall, mono = time.time_ns(), time.monotonic_ns()
    out: dict = {
        "run_id": str(uuid.UUID(bytes=run_id)), "session": session, "host": socket.gethostname(),
        "user": _user(), "pid": os.getpid(), "versions": _versions(), "argv": list(sys.argv),
        "cwd": os.getcwd(), "anchor": {"wall_ns": wall, "monotonic_ns": mono},
    }
    try:
        out["config_sha256"] = config_sha256(config)
        out["config_yaml"] = _config_yaml(config)
        out["config_source"] = str(config.source) if config.source else None
    except Exception as exc:  # never fail a tap over provenance
        out["config_error"] = str(exc)
    try:
        out["pip_freeze_sha256"] = _freeze_sha256()
    except Exception as exc:
        out["pip_freeze_sha256"] = None
        out["pip_freeze_error"] = str(exc)
    cache: dict = {}
    instances = {}
    for name, (inst, cls) in classes.items():
        try:
            instances[name] = instance_record(name, inst, cls, cache, (specs or {}).get(name))
        except Exception as exc:
            instances[name] = {"name": name, "class_path": inst.class_path, "error": str(exc)}
    out["instances"] = instances
    return Capture(out, [key[1] for key in cache if isinstance(key, tuple) and key[0] == "git"])


def _user() -> str:
    """The name of this process's user (pwd: getpass would import termios, and
    reads the environment, which only _settings.py does)."""
    try:
        import pwd
        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return str(os.getuid())


def write(log_dir: Path, record: dict) -> Path:
    """provenance.json in the session's log folder, whole or not at all."""
    path = Path(log_dir) / FILE_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)
    return path
