"""A lane's send to the receivers of one message: one receiver's failure does not
stop the others (Lane.send_rest)."""
import pytest

import ether
from ether._node._lane import Lane


class FakeSender:
    def __init__(self, exc=None):
        self.exc = exc
        self.got = []

    def send(self, data):
        if self.exc is not None:
            raise self.exc
        self.got.append(data)
        return True


def _lane():
    lane = object.__new__(Lane)  # send_rest needs no node, router or arena here
    lane.blocks = []
    return lane


def test_a_receiver_that_skipped_our_stalled_record_does_not_stop_the_others():
    # This process stalled with a record claimed (stopped, say) and the first
    # receiver skipped it: the others still get the message, then the error tells.
    first, second, third = FakeSender(), FakeSender(ether.ClaimSkipped("skipped")), FakeSender()
    with pytest.raises(ether.ClaimSkipped, match="skipped"):
        _lane().send_rest("t", (first, second, third), b"m", 0, None, 0)
    assert first.got == [b"m"] and third.got == [b"m"]
