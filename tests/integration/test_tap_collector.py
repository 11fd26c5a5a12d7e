"""The tap pauses the main's garbage collector and freezes what it holds before
the forks (_runtime/_collector.py); afterwards everything is as the user left it,
and each instance starts with the collector as the main had it. The init phase
asks only the instances that have an init handler."""
from __future__ import annotations

import gc
import sys

import pytest

from ether import ether
from ether._runtime._supervisor import Supervisor

from conftest import shm_objects

CONFIG = {"instances": {"plain": {"class_path": "runtime_apps.CollectorState"},
                        "inits": {"class_path": "runtime_apps.CollectorStateWithInit"}}}


def _in_tap() -> bool:
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "_tap" and frame.f_code.co_filename.endswith("_facade.py"):
            return True
        frame = frame.f_back
    return False


@pytest.fixture
def collections_seen():
    """The generations of the collections that ran inside a tap (gc.callbacks)."""
    seen = []

    def note(phase, info):
        if phase == "start" and _in_tap():
            seen.append(info["generation"])

    gc.callbacks.append(note)
    try:
        yield seen
    finally:
        gc.callbacks.remove(note)


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


def test_the_tap_collects_nothing_and_gives_the_collector_back(collections_seen, phases):
    assert gc.isenabled()
    ether.tap(config=CONFIG)   # its imports alone would run a collection many times over
    sid = ether.session
    try:
        assert collections_seen == [], f"collections during the tap: {collections_seen}"
        assert gc.isenabled()
        assert gc.get_freeze_count() == 0   # the main's objects are collectable again
        for name in ("plain", "inits"):
            state = ether.get(name, "collector", timeout=5)
            assert state["enabled"] is True
            assert state["frozen"] > 0      # forked frozen: their collections skip the main's heap
        assert ether.get("inits", "was_inited", timeout=5) is True
        # Only the instance with an init handler was asked to run the init phase.
        assert phases == [("init", ("inits",))]
    finally:
        ether.shutdown()
    assert shm_objects(sid) == []


def test_a_collector_the_user_disabled_stays_disabled_in_the_main_and_the_instances(phases):
    gc.disable()
    sid = None
    try:
        ether.tap(config={"instances": {"plain": CONFIG["instances"]["plain"]}})
        assert phases == []   # no init handler anywhere: no init round trip
        sid = ether.session
        assert not gc.isenabled()
        assert gc.get_freeze_count() == 0
        assert ether.get("plain", "collector", timeout=5)["enabled"] is False
    finally:
        ether.shutdown()
        gc.enable()
    assert shm_objects(sid) == []


def test_objects_the_user_froze_stay_frozen():
    holder = [object() for _ in range(100)]
    gc.freeze()
    frozen = gc.get_freeze_count()
    try:
        ether.tap(config={"instances": {"plain": CONFIG["instances"]["plain"]}})
        sid = ether.session
        assert gc.get_freeze_count() >= frozen and gc.isenabled()
    finally:
        ether.shutdown()
        gc.unfreeze()
    del holder
    assert shm_objects(sid) == []
