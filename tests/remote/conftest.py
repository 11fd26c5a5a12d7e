"""Fixtures for the across-hosts tests: simulated hosts (netns.py) and a site's
certificates. The tests skip, saying why, where network namespaces are
unavailable; CI runs them as root."""
from __future__ import annotations

import os

import pytest

from .netns import Network, unavailable

_WHY = unavailable()
needs_netns = pytest.mark.skipif(_WHY is not None, reason=f"two-host tests: {_WHY}")


@pytest.fixture
def hosts():
    """hosts(n) -> a Network of n hosts, torn down after the test. The test fails
    if anything is left in a host's /dev/shm once its processes have ended."""
    if _WHY is not None:
        pytest.skip(f"two-host tests: {_WHY}")
    made: list[Network] = []

    def build(n: int = 2) -> Network:
        assert not made, "one network per test (its names carry the PID)"
        made.append(Network(n))
        return made[0]

    try:
        yield build
    finally:
        errors = []
        for net in made:
            try:
                net.close()
            except RuntimeError as e:
                errors.append(str(e))
    assert not errors, errors
    left = {name: entries for net in made for name, entries in net.leftovers.items()}
    assert not left, f"left in the hosts' /dev/shm once their processes ended: {left}"


def subnet() -> str:
    """The address prefix of this run's first network (netns.Network)."""
    return f"10.77.{os.getpid() % 250}"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Certificates of site lab1 (CA, hostA, hostB, hostC, made by ether certs'
    functions; each for its host's address) and of a rogue CA with its rogueB."""
    from ether.bridge import make_ca, make_host

    good = tmp_path_factory.mktemp("certs")
    make_ca("lab1", good)
    for i, name in enumerate(("hostA", "hostB", "hostC")):
        make_host(name, good, ips=[f"{subnet()}.{i + 1}"])
    rogue = tmp_path_factory.mktemp("rogue")
    make_ca("lab1", rogue)  # the same site name: only the key tells them apart
    make_host("rogueB", rogue, ips=[f"{subnet()}.2"])
    return good, rogue
