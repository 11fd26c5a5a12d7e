"""Simulated hosts for the across-hosts tests: network namespaces on one switch.

``Network(n)`` builds n "hosts" (research/remote.md §2): each a network namespace
with one interface, ``eth0``, whose veth peer sits on a Linux bridge in a switch
namespace of its own, so nothing of a run lives in the machine's own network
namespace and its addresses can collide with nothing. Each host also has its own
tmpfs, bound onto ``/dev/shm`` in a private mount namespace for every process run
on it, so shared memory is as separate as between real machines.

Names carry the test run's PID (``eth<pid>-a``), and the address range is derived
from it (``10.77.<pid % 250>.0/24``), so parallel runs cannot collide. Everything
is torn down by ``close()``, also after a failed build: processes killed by PID
and reaped, tmpfs unmounted, veths and namespaces deleted. Leftovers of an
earlier run that was killed (its PID gone) are removed on the next build.
Every wait is bounded.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["Host", "Network", "unavailable"]

_PREFIX = "eth"
_OWN = re.compile(rf"{_PREFIX}(\d+)-[a-z0-9]+")
_CMD_TIMEOUT_S = 10.0
_SHM_SIZE = "256m"


def unavailable() -> str | None:
    """Why these tests cannot run here, or None."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs these tests as root)"
    for tool in ("ip", "unshare", "mount", "umount", "ss"):
        if shutil.which(tool) is None:
            return f"{tool!r} is not installed (iproute2, util-linux)"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                           timeout=_CMD_TIMEOUT_S)
    if probe.returncode != 0:
        return f"`ip netns` is unavailable: {probe.stderr.strip()}"
    return None


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=_CMD_TIMEOUT_S)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done


class Host:
    """One simulated host: its namespace, its address and its /dev/shm."""

    def __init__(self, network: Network, letter: str, index: int):
        self.network = network
        self.name = letter.upper()                    # "A", as the tests call it
        self.ns = f"{network.prefix}-{letter}"        # "eth1234-a"
        self.addr = f"{network.subnet}.{index + 1}"   # "10.77.34.1"
        self.shm = network.root / f"shm-{letter}"
        self._procs: list[subprocess.Popen] = []
        self._closers: list = []

    def __repr__(self) -> str:
        return f"Host({self.name}, {self.ns}, {self.addr})"

    # -- processes --------------------------------------------------------------

    def popen(self, argv: Sequence[str], *, env: dict[str, str] | None = None,
              **kwargs) -> subprocess.Popen:
        """Start ``argv`` on this host: in its network namespace, with its own tmpfs
        on /dev/shm. The process leads its own process group, and ``close()``
        kills that group by its PID. ``kwargs`` go to Popen (stdin, stdout, ...)."""
        script = 'mount --bind "$0" /dev/shm && exec "$@"'
        wrapped = ["ip", "netns", "exec", self.ns, "unshare", "--mount", "--propagation",
                   "private", "sh", "-c", script, str(self.shm), *argv]
        proc = subprocess.Popen(wrapped, env=env, start_new_session=True, **kwargs)
        self._procs.append(proc)
        return proc

    def python(self, *args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
        """``python ARGS`` on this host, with this interpreter."""
        return self.popen([sys.executable, *args], env=env, **kwargs)

    def on_close(self, closer) -> None:
        """Call ``closer()`` first when the network closes (say, to quit cleanly)."""
        self._closers.append(closer)

    def stop(self, proc: subprocess.Popen, timeout: float = 5.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout``, by PID; returns the exit code."""
        return _end(proc, timeout)

    def run(self, *argv: str, timeout: float = _CMD_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        """A short command in this host's network namespace (no private /dev/shm)."""
        return subprocess.run(["ip", "netns", "exec", self.ns, *argv], capture_output=True,
                              text=True, timeout=timeout)

    # -- network ----------------------------------------------------------------

    def listening(self) -> list[tuple[str, str]]:
        """(protocol, local address:port) of every listening TCP and bound UDP
        socket in this host, from ``ss -lntu``."""
        done = self.run("ss", "-H", "-lntu")
        if done.returncode != 0:
            raise RuntimeError(f"ss -lntu on {self.name}: {done.stderr.strip()}")
        return [(cols[0], cols[4]) for cols in (line.split() for line in done.stdout.splitlines())
                if len(cols) >= 5]

    def link(self, up: bool) -> None:
        """Take this host's only interface down, or bring it back."""
        _sh("ip", "-n", self.ns, "link", "set", "eth0", "up" if up else "down")

    def shm_entries(self) -> list[str]:
        return sorted(os.listdir(self.shm))

    def _close(self) -> list[str]:
        problems = []
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception as e:  # noqa: BLE001 (teardown goes on)
                problems.append(f"{self.name}: {closer}: {e}")
        self._closers.clear()
        for proc in self._procs:
            try:
                _end(proc, 2.0)
            except Exception as e:  # noqa: BLE001 (teardown goes on)
                problems.append(f"{self.name}: pid {proc.pid}: {e}")
        return problems


class Network:
    """n hosts on one switch. Use as a context manager, or call ``close()``."""

    def __init__(self, n: int = 2, *, pid: int | None = None):
        if not 1 <= n <= 26:
            raise ValueError("1 to 26 hosts")
        pid = os.getpid() if pid is None else pid
        self.prefix = f"{_PREFIX}{pid}"
        self.subnet = f"10.77.{pid % 250}"
        self.switch = f"{self.prefix}-sw"
        self.root = Path(tempfile.mkdtemp(prefix=f"ether-{self.prefix}-"))
        self.hosts = [Host(self, chr(ord("a") + i), i) for i in range(n)]
        self._namespaces: list[str] = []
        self._mounts: list[Path] = []
        self.leftovers: dict[str, list[str]] = {}
        try:
            _remove_stale()
            self._build()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getitem__(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name.upper())

    def _netns(self, name: str) -> None:
        _sh("ip", "netns", "add", name)
        self._namespaces.append(name)
        _sh("ip", "-n", name, "link", "set", "lo", "up")

    def _build(self) -> None:
        self._netns(self.switch)
        _sh("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge",
            "mcast_snooping", "0")
        _sh("ip", "-n", self.switch, "link", "set", "br0", "up")
        for i, host in enumerate(self.hosts):
            self._netns(host.ns)
            port = f"p{i}"
            # Both ends are created inside the run's namespaces, never in the machine's.
            _sh("ip", "link", "add", port, "netns", self.switch, "type", "veth",
                "peer", "name", "eth0", "netns", host.ns)
            _sh("ip", "-n", self.switch, "link", "set", port, "master", "br0", "up")
            _sh("ip", "-n", host.ns, "addr", "add", f"{host.addr}/24", "dev", "eth0")
            _sh("ip", "-n", host.ns, "link", "set", "eth0", "up")
            host.shm.mkdir(mode=0o1777)
            _sh("mount", "-t", "tmpfs", "-o", f"size={_SHM_SIZE},mode=1777,nosuid,nodev",
                f"{self.prefix}-shm", str(host.shm))
            self._mounts.append(host.shm)

    def close(self) -> None:
        """Tear everything down; raise at the end if any step failed."""
        problems: list[str] = []
        for host in self.hosts:
            problems += host._close()
        # What the processes left in each host's /dev/shm, seen before it goes.
        self.leftovers = {h.name: h.shm_entries() for h in self.hosts
                          if h.shm in self._mounts and h.shm_entries()}
        for mount in reversed(self._mounts):
            done = _sh("umount", str(mount), check=False)
            if done.returncode != 0:
                done = _sh("umount", "-l", str(mount), check=False)
                problems.append(f"umount {mount}: {done.stderr.strip() or 'lazily'}")
        self._mounts.clear()
        for ns in reversed(self._namespaces):
            problems += _delete_namespace(ns)
        self._namespaces.clear()
        shutil.rmtree(self.root, ignore_errors=True)
        if problems:
            raise RuntimeError("teardown: " + "; ".join(problems))


def _end(proc: subprocess.Popen, timeout: float) -> int:
    """End a process started by Host.popen, and its group, by PID."""
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(proc.pid, signal.SIGKILL)  # also whatever it left in its group
    return proc.wait(timeout)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _delete_namespace(ns: str) -> list[str]:
    problems = []
    links = _sh("ip", "-n", ns, "-o", "link", "show", check=False).stdout
    for name in re.findall(r"^\d+: ([^:@]+)", links, re.M):
        if name != "lo":
            _sh("ip", "-n", ns, "link", "del", name, check=False)  # its peer goes with it
    done = _sh("ip", "netns", "del", ns, check=False)
    if done.returncode != 0:
        problems.append(f"ip netns del {ns}: {done.stderr.strip()}")
    return problems


def _remove_stale() -> None:
    """Remove namespaces and mounts of runs whose process is gone."""
    names = _sh("ip", "netns", "list", check=False).stdout.split()
    for name in names:
        match = _OWN.fullmatch(name)
        if match and not _alive(int(match.group(1))):
            _delete_namespace(name)
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    for line in mounts:
        source, target = line.split()[:2]
        match = re.fullmatch(rf"{_PREFIX}(\d+)-shm", source)
        if match and not _alive(int(match.group(1))):
            _sh("umount", "-l", target, check=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
