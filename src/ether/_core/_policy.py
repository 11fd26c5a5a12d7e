"""The delivery policies the transport knows, and the range of a block timeout
the directory can store. Pure constants: the decorators read them on any
platform, without loading the transport."""
from __future__ import annotations

#: What a publisher does when a subscriber's inbox is full: "block" waits up to the
#: subscription's timeout, then raises InboxFull; "drop" skips it and counts the drop.
POLICIES = ("block", "drop")
DEFAULT_POLICY = "block"
DEFAULT_TIMEOUT_S = 5.0
#: The session directory keeps a subscription's timeout in 32-bit milliseconds.
MAX_TIMEOUT_S = (2 ** 32 - 1) / 1000
