"""The installed distributions, for provenance: `pip freeze`'s content and the
distribution that owns a module, read from the `*.dist-info` folder names on
sys.path (`{name}-{version}.dist-info`, as the wheel format names them).

importlib.metadata parses every METADATA file to say the same thing (0.15 s on
a venv of 100 distributions, on every tap, while the instances start, and the
shutdown of a short run waits for it). A folder name is read from one listing
per folder; a METADATA file is read only where the name carries no version (a
bare `.egg-info`). The result is kept per process until a folder on sys.path
changes (an install changes its folder's mtime), so later taps pay nothing.
"""
from __future__ import annotations

import os
import re
import sys
import threading

__all__ = ["freeze_lines", "owner", "versions"]

_lock = threading.Lock()
_cached: tuple[tuple, dict[str, tuple[str, str]]] | None = None
_packages: tuple[tuple, dict] | None = None


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def _folders() -> tuple:
    """The folders on sys.path, each with its mtime: the cache's key."""
    key = []
    for folder in sys.path:
        try:
            key.append((folder, os.stat(folder or ".").st_mtime_ns))
        except OSError:
            continue
    return tuple(key)


def _from_metadata(path: str) -> tuple[str, str] | None:
    """(Name, Version) from a metadata folder's headers (METADATA, or an egg's
    PKG-INFO): the lines before the first blank one. Read here rather than
    with importlib.metadata, whose import alone costs a capture 7 ms of CPU."""
    fields: dict[str, str] = {}
    for file_name in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(path, file_name), encoding="utf-8", errors="replace") as f:
                for line in f:
                    if not line.strip():
                        break
                    key, sep, value = line.partition(":")
                    if sep and key in ("Name", "Version"):
                        fields.setdefault(key, value.strip())
            break
        except OSError:
            continue
    name, version = fields.get("Name"), fields.get("Version")
    return (name, version) if name and version else None  # a broken folder is left out, as pip does


def _scan(key: tuple) -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    for folder, _ in key:
        try:
            entries = sorted(os.scandir(folder or "."), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            stem, dot, kind = entry.name.rpartition(".")
            if not dot or kind not in ("dist-info", "egg-info"):
                continue
            name, _, version = stem.partition("-")
            if kind == "egg-info":
                version = version.split("-py", 1)[0]
            pair = (name, version) if name and version else _from_metadata(entry.path)
            if pair is not None:
                found.setdefault(_normal(pair[0]), pair)  # the first on sys.path wins, as imports do
    return found


def _installed() -> dict[str, tuple[str, str]]:
    global _cached
    key = _folders()
    with _lock:
        if _cached is None or _cached[0] != key:
            _cached = (key, _scan(key))
        return _cached[1]


def freeze_lines() -> list[str]:
    """`name==version` of every installed distribution, sorted (names normalised)."""
    return sorted(f"{name}=={version}" for name, (_, version) in _installed().items())


def versions() -> dict[str, str]:
    """{normalised name: version} of every installed distribution."""
    return {name: version for name, (_, version) in _installed().items()}


def owner(module_name: str, path: str | None) -> tuple[str, str] | None:
    """(distribution, version) of the distribution that installs `module_name`:
    the one of its top-level name, else, for a file under site-packages, the one
    whose files list it (importlib.metadata's map, built once); else None."""
    global _packages
    installed = _installed()
    top = module_name.split(".")[0]
    if _normal(top) in installed:
        return installed[_normal(top)]
    if path is None or not any(part in ("site-packages", "dist-packages")
                               for part in path.split(os.sep)):
        return None  # the user's own code, beside the script or in a repository
    key = _folders()
    with _lock:
        if _packages is None or _packages[0] != key:
            from importlib.metadata import packages_distributions
            _packages = (key, packages_distributions())
        names = _packages[1].get(top, [])
    for name in names:
        if _normal(name) in installed:
            return installed[_normal(name)]
    return None
