"""The session directory: which inboxes exist and who subscribes to what.

It lives in the session segment ``/ether_<sid>``. Writers take an exclusive
``flock`` on the segment; the kernel releases a dead holder's lock, so a crash
never wedges the directory. It changes only when inboxes or subscriptions come
and go; every change bumps `generation`, which publishers read (one load) to
know when their cached routes are stale.

Session segment layout (little-endian):

     0 u64 magic         b"ETHERSES"
     8 u32 version       SESSION_LAYOUT_VERSION
    12 u32 entries       number of inbox entries
    16 u64 owner_token   member token of the creator; the session lives while it does
    24 u32 owner_pid
    28 u32 reserved
    32 u64 next_token    the next member or inbox token (monotonic, never reused);
                         one aligned 8-byte store, under the flock
    40 u64 generation    bumped on every table change: one aligned 8-byte store,
                         under the flock, loaded lock-free (see bump_generation)
    48 u64 created_ns    wall clock at creation
    56 u64 reserved
    64 16 B run_id       UUIDv7 of this session: with the host, the origin of its messages
    80 48 B reserved
   128 entry[entries], 128 B each:
         0 u32 state      0 free, 1 live
         4 u32 owner_pid
         8 u64 token      inbox token (names its segment)
        16 u64 owner      member token of the consumer
        24 u64 capacity
        32 u32 max_length
        36 u32 name_length
        40 88 B name      UTF-8
    128 + 128 * entries: subscription[SUBSCRIPTIONS], 128 B each:
         0 u32 state      0 free, 1 live
         4 u32 policy     0 block, 1 drop
         8 u64 inbox      token of the subscribing inbox
        16 u32 timeout_ms how long a block send waits for room
        20 u32 topic_length
        24 104 B topic    UTF-8
"""
from __future__ import annotations

import os
import struct
import threading
from typing import NamedTuple

from .. import _errors as errors
from . import _names as names
from . import _segment as segment
from ._policy import DEFAULT_POLICY, DEFAULT_TIMEOUT_S, POLICIES

SESSION_MAGIC = b"ETHERSES"
SESSION_LAYOUT_VERSION = 3
INBOX_ENTRIES = 256
SUBSCRIPTIONS = 2048
ENTRY_SIZE = 128
HEADER_SIZE = 128
MAX_INBOX_NAME = 88
MAX_TOPIC = 104
SUBSCRIPTIONS_OFFSET = HEADER_SIZE + INBOX_ENTRIES * ENTRY_SIZE
SESSION_SIZE = SUBSCRIPTIONS_OFFSET + SUBSCRIPTIONS * ENTRY_SIZE
NEXT_TOKEN_OFFSET = 32
GENERATION_OFFSET = 40

HEADER = struct.Struct("<8sIIQIIQQQQ16s48x")
_ENTRY = struct.Struct("<IIQQQII")
_SUBSCRIPTION = struct.Struct("<IIQII")
assert HEADER.size == HEADER_SIZE and _ENTRY.size == 40 and _SUBSCRIPTION.size == 24


class Subscription(NamedTuple):
    topic: str
    inbox: str          # the subscribing inbox's name
    inbox_token: int
    policy: str
    timeout: float


class InboxEntry:
    __slots__ = ("index", "name", "token", "owner", "owner_pid", "capacity", "max_length")

    def __init__(self, index, name, token, owner, owner_pid, capacity, max_length):
        self.index, self.name, self.token, self.owner = index, name, token, owner
        self.owner_pid, self.capacity, self.max_length = owner_pid, capacity, max_length


class Directory:
    """Locked access to the session segment: use it as a context manager around
    every read or write, except `generation`, which is one lock-free load."""

    def __init__(self, seg: segment.Segment, sid: str):
        self.seg = seg
        self.sid = sid
        self.mutex = threading.RLock()  # flock is per open file, not per thread
        self._depth = 0  # re-entry count of this process's hold on the flock
        self._words = memoryview(seg.map).cast("Q")

    def generation(self) -> int:
        """Changes whenever an inbox or a subscription comes or goes."""
        return self._words[GENERATION_OFFSET // 8]

    def close(self) -> None:
        self._words.release()
        self.seg.close()

    def header(self):
        return HEADER.unpack_from(self.seg.map, 0)

    def __enter__(self):
        self.mutex.acquire()
        if self._depth == 0:
            self.seg.lock(exclusive=True)
        self._depth += 1
        return self

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth == 0:
            self.seg.unlock()
        self.mutex.release()

    def next_token(self) -> int:
        """A new member or inbox token (under the flock)."""
        words = self._words
        token = words[NEXT_TOKEN_OFFSET // 8]
        if token > names.MAX_TOKEN:
            raise errors.EtherError(f"session {self.sid!r} ran out of tokens")
        # Read and written only under the flock; still one aligned 8-byte store of
        # its own word, so it never rewrites the generation beside it.
        words[NEXT_TOKEN_OFFSET // 8] = token + 1
        return token

    def bump_generation(self) -> None:
        """Tell lock-free readers that a table changed (under the flock, after the change).

        SYNC POINT: one aligned 8-byte store; its partner is the lock-free load in
        `generation`. A memoryview of format "Q" moves the word with one 8-byte
        memcpy, which compilers emit as a single store, and an aligned 8-byte store
        is single-copy atomic on x86-64 and AArch64: a reader sees the old value or
        the new one, never a mix (``struct.pack_into("<Q")`` writes byte by byte,
        which could show a torn value equal to one a reader has cached). The load
        carries no ordering of its own, and needs none: a reader that sees the
        value it cached keeps its routes, and one that sees any other value
        re-reads the tables under the flock, whose acquisition orders that read
        after every write of the holder that bumped it. Seeing the new value late
        delays a route by one lookup at most, and never beyond anything the reader
        learns from the writer afterwards through a ring (a release there orders
        this store before it).
        """
        assert self._depth, "the directory's flock must be held"
        words = self._words
        words[GENERATION_OFFSET // 8] = words[GENERATION_OFFSET // 8] + 1

    def entries(self):
        m = self.seg.map
        for i in range(INBOX_ENTRIES):
            off = HEADER_SIZE + i * ENTRY_SIZE
            state, pid, token, owner, capacity, max_length, nlen = _ENTRY.unpack_from(m, off)
            if state != 1:
                continue
            if nlen > MAX_INBOX_NAME:
                raise errors.RingCorrupt(
                    f"session {self.sid!r}: inbox entry {i} has name length {nlen}")
            name = bytes(m[off + 40: off + 40 + nlen]).decode("utf-8", "replace")
            yield InboxEntry(i, name, token, owner, pid, capacity, max_length)

    def find(self, name: str) -> InboxEntry | None:
        for e in self.entries():
            if e.name == name:
                return e
        return None

    def add(self, name: bytes, token, owner, capacity, max_length) -> int:
        m = self.seg.map
        for i in range(INBOX_ENTRIES):
            off = HEADER_SIZE + i * ENTRY_SIZE
            if struct.unpack_from("<I", m, off)[0] == 0:
                m[off + 40: off + 40 + MAX_INBOX_NAME] = name.ljust(MAX_INBOX_NAME, b"\0")
                _ENTRY.pack_into(m, off, 1, os.getpid(), token, owner, capacity, max_length, len(name))
                self.bump_generation()
                return i
        raise errors.EtherError(f"session {self.sid!r} has no room for more than {INBOX_ENTRIES} inboxes")

    def remove(self, index: int, token: int) -> None:
        """Remove an inbox entry and every subscription of that inbox."""
        off = HEADER_SIZE + index * ENTRY_SIZE
        state, _, tok = struct.unpack_from("<IIQ", self.seg.map, off)
        if state == 1 and tok == token:
            struct.pack_into("<I", self.seg.map, off, 0)
            for i, sub_token in self._subscription_slots():
                if sub_token == token:
                    struct.pack_into("<I", self.seg.map, SUBSCRIPTIONS_OFFSET + i * ENTRY_SIZE, 0)
            self.bump_generation()

    def remove_named(self, name: str) -> bool:
        """Remove the inbox `name` (its consumer is gone) and its subscriptions."""
        entry = self.find(name)
        if entry is None:
            return False
        self.remove(entry.index, entry.token)
        return True

    # ---- subscriptions ----

    def _subscription_slots(self):
        m = self.seg.map
        for i in range(SUBSCRIPTIONS):
            state, _, token = struct.unpack_from("<IIQ", m, SUBSCRIPTIONS_OFFSET + i * ENTRY_SIZE)
            if state == 1:
                yield i, token

    def subscribe(self, topic: str, inbox_token: int, policy: str = DEFAULT_POLICY,
                  timeout: float = DEFAULT_TIMEOUT_S) -> int:
        """Register the inbox as a subscriber of topic; returns the entry's index."""
        raw = topic.encode("utf-8")
        if not raw or len(raw) > MAX_TOPIC:
            raise errors.ConfigError(f"topic {topic!r} must be 1..{MAX_TOPIC} bytes of UTF-8")
        if policy not in POLICIES:
            raise errors.ConfigError(f"subscription policy must be one of {POLICIES}, not {policy!r}")
        m = self.seg.map
        for i in range(SUBSCRIPTIONS):
            off = SUBSCRIPTIONS_OFFSET + i * ENTRY_SIZE
            if struct.unpack_from("<I", m, off)[0] == 0:
                m[off + 24: off + 24 + MAX_TOPIC] = raw.ljust(MAX_TOPIC, b"\0")
                _SUBSCRIPTION.pack_into(m, off, 1, POLICIES.index(policy), inbox_token,
                                        max(1, int(timeout * 1000)), len(raw))
                self.bump_generation()
                return i
        raise errors.EtherError(f"session {self.sid!r} has no room for more than {SUBSCRIPTIONS} subscriptions")

    def advertise(self, topic: str, inbox_token: int) -> None:
        """Record that the inbox's node publishes topic (not stored yet)."""

    def unsubscribe(self, index: int, inbox_token: int) -> None:
        off = SUBSCRIPTIONS_OFFSET + index * ENTRY_SIZE
        state, _, token = struct.unpack_from("<IIQ", self.seg.map, off)
        if state == 1 and token == inbox_token:
            struct.pack_into("<I", self.seg.map, off, 0)
            self.bump_generation()

    def subscriptions(self) -> list[Subscription]:
        """Every live subscription, joined with its inbox's name."""
        inboxes = {e.token: e.name for e in self.entries()}
        m = self.seg.map
        out = []
        for i in range(SUBSCRIPTIONS):
            off = SUBSCRIPTIONS_OFFSET + i * ENTRY_SIZE
            state, policy, token, timeout_ms, tlen = _SUBSCRIPTION.unpack_from(m, off)
            if state != 1 or token not in inboxes:
                continue
            if tlen > MAX_TOPIC or policy >= len(POLICIES):
                raise errors.RingCorrupt(f"session {self.sid!r}: subscription entry {i} is corrupt")
            topic = bytes(m[off + 24: off + 24 + tlen]).decode("utf-8", "replace")
            out.append(Subscription(topic, inboxes[token], token, POLICIES[policy], timeout_ms / 1000))
        return out


