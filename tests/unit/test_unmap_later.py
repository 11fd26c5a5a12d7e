"""segment.unmap_later: a shutdown's last maps of unlinked rings are unmapped by a
thread, after their names are gone; outside it a close unmaps at once."""
import pytest

from ether._core import _names, _segment

pytestmark = pytest.mark.timeout(30)

SIZE = 4 << 20


def _touched(sid: str, token: int) -> _segment.Segment:
    seg = _segment.Segment.create(_names.arena_segment(sid, token), SIZE, what="test segment")
    seg.map[::4096] = b"\x01" * (SIZE // 4096)   # its pages resident, as a used ring's are
    return seg


def test_close_inside_unmaps_in_a_thread_after_the_name_is_gone(sid):
    seg = _touched(sid, 1)
    mapping = seg.map
    with _segment.unmap_later():
        _segment.unlink(seg.name)
        seg.close()
        assert seg.map is None and seg.fd == -1   # closed for its owner at once
        assert not mapping.closed                 # the unmapping waits for the block's end
    assert _segment.unmapped(10.0)
    assert mapping.closed
    assert not any(sid in name for name in _segment.list_names())


def test_close_outside_unmaps_at_once(sid):
    seg = _touched(sid, 2)
    mapping = seg.map
    _segment.unlink(seg.name)
    seg.close()
    assert mapping.closed


def test_an_error_inside_still_unmaps_and_propagates(sid):
    seg = _touched(sid, 3)
    mapping = seg.map
    with pytest.raises(KeyError):
        with _segment.unmap_later():
            _segment.unlink(seg.name)
            seg.close()
            raise KeyError("boom")
    assert _segment.unmapped(10.0) and mapping.closed
