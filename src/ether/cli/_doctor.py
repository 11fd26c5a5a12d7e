"""``ether doctor [--config CONFIG.yaml] [--json]``: check this host for what
Ether needs, and say how to fix what fails:

- /dev/shm: its size and free space against the inboxes and arenas of a
  session (the config's instance count, else --instances);
- systemd-logind's RemoveIPC, which deletes a user's shared memory at logout;
- stale sessions (what `ether cleanup` would remove);
- free disk space for the logs and recordings;
- ulimits (open files, processes);
- the versions of Ether and its dependencies, and which extras are installed;
- on a site (a config with a bridge), the certificates and their expiry.

Exit code 1 if a check fails, else 0 (warnings included)."""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from ._common import describe, CommandError, print_json

__all__ = ["add_parser", "checks"]

MiB = 1 << 20
_SHM = Path("/dev/shm")
_STALE = re.compile(r"ether_([A-Za-z0-9]{1,12})(?:_[mia][0-9a-f]{8})?")


def add_parser(sub) -> None:
    parser = sub.add_parser("doctor", help="check this host: shm, RemoveIPC, stale sessions, disk, "
                                           "limits, versions, certificates",
                            **describe(__doc__))
    parser.add_argument("--config", metavar="CONFIG.yaml", default=None,
                        help="size the checks for this config (and check its certificates)")
    parser.add_argument("--instances", type=int, default=4, metavar="N",
                        help="instances to size /dev/shm for without --config (default 4)")
    parser.add_argument("--record-dir", default=".", metavar="DIR",
                        help="where recordings go (default: the working directory)")
    parser.add_argument("--json", action="store_true", help="print JSON Lines")
    parser.set_defaults(command=run, verb="doctor")


def _check(name: str, status: str, detail: str, **data) -> dict:
    return {"check": name, "status": status, "detail": detail, **data}


def shm(processes: int) -> dict:
    """The inboxes must fit (a session refuses to start otherwise); an arena per
    process that publishes large arrays should."""
    from ether import ConfigError, lowlevel
    try:
        st = os.statvfs(_SHM)
    except OSError as exc:
        return _check("shm", "fail", f"{_SHM} cannot be read: {exc}; Ether needs a tmpfs there")
    total, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
    try:
        needs = lowlevel.shm_needs(processes, free)
    except ConfigError as exc:
        return _check("shm", "fail", str(exc))
    inboxes, arena = needs.inboxes_bytes, needs.arena_bytes
    data = {"total_bytes": total, "free_bytes": free, "inboxes_bytes": inboxes,
            "arena_bytes": arena, "processes": processes}
    fix = "enlarge it (docker run --shm-size=1g; mount -o remount,size=2G /dev/shm)"
    if free < inboxes:
        return _check("shm", "fail", f"{_SHM} has {free // MiB} MiB free of {total // MiB} MiB; a "
                      f"session of {processes} processes needs {inboxes // MiB} MiB for its inboxes "
                      f"alone; {fix}, or lower ETHER_MAX_MESSAGE_BYTES", **data)
    if free < inboxes + processes * arena:
        return _check("shm", "warn", f"{_SHM} has {free // MiB} MiB free: room for the inboxes "
                      f"({inboxes // MiB} MiB) but not for an array arena of {arena // MiB} MiB in "
                      f"each of {processes} processes; {fix}, or lower ETHER_ARENA_BYTES", **data)
    return _check("shm", "ok", f"{_SHM}: {free // MiB} MiB free of {total // MiB} MiB; a session of "
                  f"{processes} processes needs {inboxes // MiB} MiB, plus {arena // MiB} MiB per "
                  f"process that publishes large arrays", **data)


def remove_ipc() -> dict:
    import configparser
    if not Path("/run/systemd/system").is_dir():
        return _check("remove_ipc", "ok", "systemd-logind is not running here: RemoveIPC does not apply")
    value = "yes"  # logind's default
    files = [Path("/etc/systemd/logind.conf"), *sorted(Path("/etc/systemd/logind.conf.d").glob("*.conf"))]
    for path in files:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        try:
            parser.read(path)
        except (configparser.Error, OSError):
            continue
        if parser.has_option("Login", "RemoveIPC"):
            value = parser.get("Login", "RemoveIPC").strip().lower()
    uid = os.getuid()
    if uid < 1000:
        return _check("remove_ipc", "ok", f"RemoveIPC={value}, but uid {uid} is a system user, "
                      f"whose shared memory logind leaves alone", value=value)
    if value in ("no", "false", "0", "off"):
        return _check("remove_ipc", "ok", "RemoveIPC=no", value=value)
    return _check("remove_ipc", "warn", "systemd-logind removes this user's shared memory when its "
                  "last session logs out (RemoveIPC=yes): a pipeline started over ssh dies with the "
                  "logout; set RemoveIPC=no in /etc/systemd/logind.conf, or run it as a service "
                  "with a system user", value=value)


def stale() -> dict:
    from ether import lowlevel
    live = {s.name for s in lowlevel.list_sessions()}
    try:
        names = os.listdir(_SHM)
    except OSError:
        names = []
    objects: dict[str, list[str]] = {}
    for n in names:
        m = _STALE.fullmatch(n)
        if m and m.group(1) not in live:
            objects.setdefault(m.group(1), []).append(n)
    if not objects:
        return _check("stale_sessions", "ok", f"no stale sessions ({len(live)} live)", sessions=[])
    size = sum((_SHM / n).stat().st_size for ns in objects.values() for n in ns if (_SHM / n).exists())
    return _check("stale_sessions", "warn", f"{len(objects)} dead session(s) left {size // MiB} MiB in "
                  f"{_SHM}: {', '.join(sorted(objects))}; `ether cleanup` removes them",
                  sessions=sorted(objects))


def disk(name: str, path: Path) -> dict:
    import shutil
    where = path
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        usage = shutil.disk_usage(where)
    except OSError as exc:
        return _check(name, "fail", f"{path}: {exc}")
    data = {"path": str(path), "free_bytes": usage.free}
    text = f"{path}: {usage.free // MiB} MiB free of {usage.total // MiB} MiB"
    if usage.free < 100 * MiB:
        return _check(name, "fail", text + "; free some space", **data)
    if usage.free < 1024 * MiB:
        return _check(name, "warn", text + " (under 1 GiB)", **data)
    return _check(name, "ok", text, **data)


def ulimits() -> dict:
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    procs = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    data = {"nofile": soft, "nofile_hard": hard, "nproc": procs}
    text = f"open files {soft} (hard {hard}), processes {'unlimited' if procs < 0 else procs}"
    if 0 <= soft < 1024:
        return _check("ulimits", "warn", text + "; each process keeps a few descriptors per "
                      "session member: raise it (ulimit -n 4096)", **data)
    return _check("ulimits", "ok", text, **data)


_EXTRAS = {"cli": ["rich", "psutil"], "monitor": ["starlette", "uvicorn", "prometheus_client"],
           "remote": ["zenoh", "cryptography"]}
_DISTRIBUTIONS = {"prometheus_client": "prometheus-client", "zenoh": "eclipse-zenoh",
                  "posix_ipc": "posix-ipc"}


def _version(module: str) -> str | None:
    import importlib.metadata
    import importlib.util
    if importlib.util.find_spec(module) is None:
        return None
    try:
        return importlib.metadata.version(_DISTRIBUTIONS.get(module, module))
    except importlib.metadata.PackageNotFoundError:
        return "?"


def versions() -> list[dict]:
    import platform
    core = {m: _version(m) for m in ("numpy", "msgspec", "pydantic", "posix_ipc", "cffi", "yaml")}
    ether_version = _version("ether")
    out = [_check("versions", "ok" if all(core.values()) else "fail",
                  f"ether {ether_version}, Python {platform.python_version()} on "
                  f"{platform.system()} {platform.release()}; " +
                  ", ".join(f"{m} {v or 'MISSING'}" for m, v in core.items()),
                  ether=ether_version, python=platform.python_version(), packages=core)]
    for extra, modules in _EXTRAS.items():
        found = {m: _version(m) for m in modules}
        missing = [m for m, v in found.items() if v is None]
        out.append(_check(f"extra:{extra}", "warn" if missing else "ok",
                          (f"missing {', '.join(missing)}: pip install 'ether[{extra}]'" if missing
                           else ", ".join(f"{m} {v}" for m, v in found.items())), packages=found))
    return out


def certificates(config_path: str | None) -> dict:
    if config_path is None:
        return _check("certificates", "skip", "no --config given: a site's certificates are in its config")
    from ether import ConfigError
    from ether.config import EtherConfig
    try:
        config = EtherConfig.from_yaml(config_path)
    except ConfigError as exc:
        return _check("certificates", "fail", f"{config_path}: {exc}")
    bridge = getattr(config, "bridge", None)
    if bridge is None or bridge.security is None:
        return _check("certificates", "skip", f"{config_path} has no bridge with security (one host)")
    base = Path(config_path).resolve().parent
    problems, expiry = [], {}
    for what in ("ca", "cert", "key"):
        path = Path(getattr(bridge.security, what))
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            problems.append(f"{what} {path} does not exist")
            continue
        if what == "key":
            if path.stat().st_mode & 0o077:
                problems.append(f"key {path} is readable by others (chmod 600 it)")
            continue
        try:
            from cryptography import x509
        except ImportError:
            continue
        import datetime
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except ValueError as exc:
            problems.append(f"{what} {path} is not a PEM certificate: {exc}")
            continue
        end = cert.not_valid_after_utc
        expiry[what] = end.isoformat()
        left = end - datetime.datetime.now(datetime.timezone.utc)
        if left.total_seconds() <= 0:
            problems.append(f"{what} {path} expired on {end:%Y-%m-%d}")
        elif left.days < 30:
            problems.append(f"{what} {path} expires in {left.days} days ({end:%Y-%m-%d})")
    if problems:
        status = "fail" if any("expired" in p or "not exist" in p or "not a PEM" in p for p in problems) else "warn"
        return _check("certificates", status, "; ".join(problems) + " (`ether certs` makes new ones)",
                      expiry=expiry)
    return _check("certificates", "ok", "certificates valid until " +
                  ", ".join(f"{k} {v[:10]}" for k, v in expiry.items()), expiry=expiry)


def checks(args: argparse.Namespace) -> list[dict]:
    processes = args.instances + 1
    if args.config is not None:
        from ether import ConfigError
        from ether.config import EtherConfig
        try:
            processes = len(EtherConfig.from_yaml(args.config).instances) + 1
        except ConfigError as exc:
            raise CommandError(str(exc)) from None
    from ether import lowlevel
    return [shm(processes), remove_ipc(), stale(), disk("log_disk", lowlevel.log_root()),
            disk("record_disk", Path(args.record_dir).resolve()), ulimits(), *versions(),
            certificates(args.config)]


def run(args: argparse.Namespace) -> int:
    results = checks(args)
    if args.json:
        print_json(results)
    else:
        mark = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}
        for r in results:
            print(f"[{mark[r['status']]}] {r['check']}: {r['detail']}")
    return 1 if any(r["status"] == "fail" for r in results) else 0
