"""The simulated hosts themselves (netns.py): separate shared memory, a link that
goes down and up, and a teardown that leaves nothing behind."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .agents import Watched
from .conftest import needs_netns
from .netns import Network

_SERVER = ("import socket\n"
           "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
           "s.bind(('0.0.0.0', 7000)); s.listen()\n"
           "print('listening', flush=True)\n"
           "while True: s.accept()[0].close()\n")


def _reaches(host, addr: str, timeout: float = 1.0) -> bool:
    code = (f"import socket; socket.create_connection(({addr!r}, 7000), timeout={timeout})"
            ".close()")
    return host.run(sys.executable, "-c", code, timeout=timeout + 10).returncode == 0


@needs_netns
@pytest.mark.timeout(30)
def test_each_host_has_its_own_dev_shm(hosts):
    net = hosts(2)
    A, B = net["A"], net["B"]
    name = f"rig-{os.getpid()}"
    touch = A.popen(["sh", "-c", f"echo hi > /dev/shm/{name} && ls /dev/shm"],
                    stdout=subprocess.PIPE, text=True)
    assert touch.communicate(timeout=10)[0].split() == [name]
    assert A.shm_entries() == [name] and B.shm_entries() == []
    assert not Path("/dev/shm", name).exists()  # nor on the machine itself
    rm = A.popen(["rm", f"/dev/shm/{name}"])
    assert rm.wait(10) == 0 and A.shm_entries() == []


@needs_netns
@pytest.mark.timeout(60)
def test_a_link_goes_down_and_comes_back(hosts):
    net = hosts(2)
    A, B = net["A"], net["B"]
    server = Watched(A, [sys.executable, "-c", _SERVER])
    assert server.wait_line("listening", 15), server.lines
    assert _reaches(B, A.addr)
    A.link(False)
    assert not _reaches(B, A.addr, timeout=0.5)
    A.link(True)
    # The interface is up again at once; the first SYN may wait for neighbour discovery.
    assert any(_reaches(B, A.addr, timeout=2.0) for _ in range(3))


@pytest.mark.timeout(60)
def test_close_leaves_nothing_behind():
    from .netns import unavailable
    if unavailable():
        pytest.skip(f"two-host tests: {unavailable()}")
    net = Network(2)
    sleeper = net["A"].popen([sys.executable, "-c", "import time; time.sleep(600)"])
    assert net["B"].popen(["touch", "/dev/shm/forgotten"]).wait(10) == 0
    names = [h.ns for h in net.hosts] + [net.switch]
    mounts = [str(h.shm) for h in net.hosts]
    root = net.root
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert all(n in listed for n in names)
    net.close()
    assert net.leftovers == {"B": ["forgotten"]}  # what the hosts fixture fails a test for
    assert sleeper.poll() is not None  # ended by its PID and reaped
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(n in listed for n in names), listed
    table = Path("/proc/self/mounts").read_text()
    assert not any(m in table for m in mounts)
    assert not root.exists()


@pytest.mark.timeout(60)
def test_a_failed_build_is_torn_down_too(monkeypatch):
    from . import netns
    if netns.unavailable():
        pytest.skip(f"two-host tests: {netns.unavailable()}")
    real = netns._sh

    def fail_on_the_second_host(*argv, check=True):
        if argv[:3] == ("ip", "netns", "add") and argv[3].endswith("-b"):
            raise RuntimeError("injected")
        return real(*argv, check=check)

    monkeypatch.setattr(netns, "_sh", fail_on_the_second_host)
    with pytest.raises(RuntimeError, match="injected"):
        Network(2)
    monkeypatch.setattr(netns, "_sh", real)
    prefix = f"eth{os.getpid()}-"
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert prefix not in listed, listed
    assert f"eth{os.getpid()}-shm" not in Path("/proc/self/mounts").read_text()


@pytest.mark.timeout(10)
def test_without_root_the_tests_skip_saying_why(monkeypatch):
    from . import netns
    monkeypatch.setattr(netns.sys, "platform", "linux")
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    assert netns.unavailable() == "network namespaces need root (CI runs these tests as root)"
    monkeypatch.setattr(netns.os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns.shutil, "which", lambda tool: None if tool == "ip" else "/bin/x")
    assert netns.unavailable() == "'ip' is not installed (iproute2, util-linux)"
