"""The tap pauses the main's garbage collector until its forks are done and
freezes what it holds before them (_runtime/_collector.py); afterwards everything
is as the user left it, and each instance starts with the collector as the user
had it. The init phase asks only the instances that have an init handler."""
from __future__ import annotations

import gc

import pytest

from ether import ether
from ether._runtime import _launch
from ether._runtime._supervisor import Supervisor

from conftest import shm_objects

CONFIG = {"instances": {"plain": {"class_path": "runtime_apps.CollectorState"},
                        "inits": {"class_path": "runtime_apps.CollectorStateWithInit"}}}
PLAIN = {"instances": {"plain": CONFIG["instances"]["plain"]}}


@pytest.fixture
def forks(monkeypatch):
    """(collector enabled, objects frozen) in the main at each instance's fork."""
    monkeypatch.setenv("ETHER_START_METHOD", "fork")
    seen = []
    original = _launch.start

    def start(spec, method):
        seen.append((gc.isenabled(), gc.get_freeze_count()))
        return original(spec, method)

    monkeypatch.setattr(_launch, "start", start)
    return seen


@pytest.fixture
def phases(monkeypatch):
    """(phase, only) of every run_phase call."""
    calls = []
    original = Supervisor.run_phase

    def run_phase(self, phase, *args, only=None, **kwargs):
        calls.append((phase, only))
        return original(self, phase, *args, only=only, **kwargs)

    monkeypatch.setattr(Supervisor, "run_phase", run_phase)
    return calls


def test_the_tap_forks_paused_and_frozen_and_gives_the_collector_back(forks, phases):
    assert gc.isenabled() and gc.get_freeze_count() == 0
    ether.tap(config=CONFIG)
    sid = ether.session
    try:
        assert len(forks) == 2
        assert all(not enabled and frozen > 0 for enabled, frozen in forks), forks
        assert gc.isenabled()
        assert gc.get_freeze_count() == 0   # the main's objects are collectable again
        for name in ("plain", "inits"):
            state = ether.get(name, "collector", timeout=5)
            assert state["enabled"] is True
            assert state["frozen"] > 0      # forked frozen: their collections skip that heap
        assert ether.get("inits", "was_inited", timeout=5) is True
        # Only the instance with an init handler was asked to run the init phase.
        assert phases == [("init", ("inits",))]
    finally:
        ether.shutdown()
    assert shm_objects(sid) == []


def test_a_collector_the_user_disabled_stays_disabled_in_the_main_and_the_instances(forks, phases):
    gc.disable()
    sid = None
    try:
        ether.tap(config=PLAIN)
        sid = ether.session
        assert phases == []   # no init handler anywhere: no init round trip
        assert forks and not forks[0][0]
        assert not gc.isenabled() and gc.get_freeze_count() == 0
        assert ether.get("plain", "collector", timeout=5)["enabled"] is False
    finally:
        ether.shutdown()
        gc.enable()
    assert shm_objects(sid) == []


def test_objects_the_user_froze_stay_frozen_and_the_tap_freezes_nothing_more(forks):
    holder = [[i] for i in range(100)]   # lists: objects the collector tracks
    gc.freeze()
    frozen = gc.get_freeze_count()
    sid = None
    try:
        ether.tap(config=PLAIN)
        sid = ether.session
        # Paused, and nothing frozen but the user's (some of which may have died since).
        assert len(forks) == 1 and not forks[0][0] and 0 < forks[0][1] <= frozen, (forks, frozen)
        assert 0 < gc.get_freeze_count() <= frozen and gc.isenabled()
    finally:
        ether.shutdown()
        gc.unfreeze()
    del holder
    assert shm_objects(sid) == []


def test_a_tap_that_fails_before_its_forks_gives_the_collector_back():
    with pytest.raises(Exception, match="no_such_module"):
        ether.tap(config={"instances": {"x": {"class_path": "no_such_module.Thing"}}})
    assert gc.isenabled() and gc.get_freeze_count() == 0
