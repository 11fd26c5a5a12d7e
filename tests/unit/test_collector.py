"""_runtime/_collector.py: the tap's pause of the garbage collector."""
from __future__ import annotations

import gc

import pytest

from ether._runtime import _collector


@pytest.fixture(autouse=True)
def restored():
    yield
    gc.unfreeze()
    gc.enable()


def test_a_pause_inside_a_pause_leaves_the_state_to_the_outer_one():
    with _collector.paused():
        with pytest.raises(RuntimeError):
            with _collector.paused():   # a class module that taps when imported
                assert not gc.isenabled()
                raise RuntimeError("the inner tap failed")
        assert not gc.isenabled()       # still the outer tap's pause
        _collector.before_forks()
        assert gc.get_freeze_count() > 0
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_resume_ends_the_pause_once_and_a_child_forked_after_it_changes_nothing():
    with _collector.paused():
        _collector.before_forks()
        _collector.resume()
        assert gc.isenabled() and gc.get_freeze_count() == 0
        gc.disable()                    # the user's choice, after the forks
        _collector.in_child()           # as in an instance restarted later
        assert not gc.isenabled()
    assert not gc.isenabled()           # resumed already: the exit changes nothing


def test_freezing_outside_a_pause_does_nothing():
    _collector.before_forks()
    assert gc.get_freeze_count() == 0
