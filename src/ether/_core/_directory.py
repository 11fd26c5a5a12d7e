"""The session directory: which inboxes exist, who subscribes to what, who
publishes what, and what each member runs.

It lives in the session segment ``/ether_<sid>``. Writers take an exclusive
``flock`` on the segment; the kernel releases a dead holder's lock, so a crash
never wedges the directory. Readers take it too (an inspector, which must not
join the session, takes it shared), except for `generation`, which is one
lock-free load: every change bumps it, so publishers know from one load when
their cached routes are stale (see `Directory.bump_generation`).

A slot's `live` word is stored last when the slot is filled and first when it
is freed, so a writer killed half-way through leaves a free slot, never a live
one with half its fields written.

Session segment layout (little-endian; every byte is listed below):

    +-------------------------------+ 0
    | header                        |  128 B
    +-------------------------------+ 128 = ENTRIES_OFFSET
    | inbox entries                 |  INBOX_ENTRIES (256) x 256 B
    +-------------------------------+ 65 664 = SUBSCRIPTIONS_OFFSET
    | subscriptions                 |  SUBSCRIPTIONS (2048) x 128 B
    +-------------------------------+ 327 808 = ADVERTS_OFFSET
    | publisher adverts             |  ADVERTS (2048) x 128 B
    +-------------------------------+ 589 952 = SESSION_SIZE

Header (written once by the creator, magic last; then only next_token and
generation change):
     0 u64 magic          b"ETHERSES"
     8 u32 version        SESSION_LAYOUT_VERSION
    12 u32 entries        number of inbox entries (INBOX_ENTRIES)
    16 u64 owner_token    member token of the creator; the session lives while it does
    24 u32 owner_pid
    28 u32 reserved
    32 u64 next_token     the next member or inbox token (monotonic, never reused);
                          one aligned 8-byte store, under the flock
    40 u64 generation     bumped on every change of a table: one aligned 8-byte
                          store, under the flock, loaded lock-free
    48 u64 created_ns     wall clock at creation
    56 u64 reserved
    64 16 B run_id        UUIDv7 of this session: with the host, the origin of its messages
    80 u32 subscriptions  number of subscription slots (SUBSCRIPTIONS)
    84 u32 adverts        number of advert slots (ADVERTS)
    88 40 B reserved

Inbox entry i at ENTRIES_OFFSET + 256 * i (one per node: an instance, or "main"):
     0 u32 live           0 free, 1 live
     4 u32 owner_pid      pid of the consumer
     8 u64 token          inbox token (names its segment)
    16 u64 owner          member token of the consumer
    24 u64 capacity
    32 u32 max_length
    36 u32 name_length
    40 88 B name          UTF-8
   128 u32 state          the member's state (set_info): 0 unknown; the upper
                          layers give the other values their meaning
   132 u32 class_length
   136 116 B class_name   UTF-8, the class the member runs (set_info); empty: unknown
   252 u32 restarts       how many times the member was started again (set_info)

An entry whose capacity is 0 is a *placeholder*: no ring stands behind it. The
session's owner keeps one for a member that is restarting (or failed), under its
name, with the dead member's subscriptions pointing at it, so that a publisher
counts what it would have sent there as undelivered instead of losing it
silently, and a caller of its services can tell "restarting" from "gone". Its
owner is the owner's member token. `find` never returns a placeholder while a
member with a ring has the same name; `find_placeholder` does.

Subscription j at SUBSCRIPTIONS_OFFSET + 128 * j:
     0 u32 live           0 free, 1 live
     4 u32 policy         0 block, 1 drop
     8 u64 inbox          token of the subscribing inbox
    16 u32 timeout_ms     how long a block send waits for room
    20 u32 topic_length
    24 104 B topic        UTF-8, a topic or a pattern

Advert k at ADVERTS_OFFSET + 128 * k (the node of the inbox publishes topic; one
per topic and inbox):
     0 u32 live           0 free, 1 live
     4 u32 topic_length
     8 u64 inbox          token of the publishing node's inbox
    16 8 B reserved
    24 104 B topic        UTF-8

Every slot of a table is removed with its inbox (`Directory.remove`).
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
SESSION_LAYOUT_VERSION = 4
HEADER_SIZE = 128
INBOX_ENTRIES = 256
ENTRY_SIZE = 256
SUBSCRIPTIONS = 2048
SUBSCRIPTION_SIZE = 128
ADVERTS = 2048
ADVERT_SIZE = 128
MAX_INBOX_NAME = 88
MAX_CLASS_NAME = 116
MAX_TOPIC = 104
MAX_STATE = 0xFFFFFFFF
STATE_UNKNOWN = 0

ENTRIES_OFFSET = HEADER_SIZE
SUBSCRIPTIONS_OFFSET = ENTRIES_OFFSET + INBOX_ENTRIES * ENTRY_SIZE
ADVERTS_OFFSET = SUBSCRIPTIONS_OFFSET + SUBSCRIPTIONS * SUBSCRIPTION_SIZE
SESSION_SIZE = ADVERTS_OFFSET + ADVERTS * ADVERT_SIZE

# Header fields that change after creation, and the start of each slot's strings.
NEXT_TOKEN_OFFSET = 32
GENERATION_OFFSET = 40
ENTRY_NAME = 40
ENTRY_STATE = 128
ENTRY_CLASS = 136
ENTRY_RESTARTS = 252
SUBSCRIPTION_TOPIC = 24
ADVERT_TOPIC = 24

HEADER = struct.Struct("<8sIIQIIQQQQ16sII40x")
_ENTRY = struct.Struct("<IIQQQII")          # live .. name_length
_INFO = struct.Struct("<II")                # state, class_length
_U32 = struct.Struct("<I")                  # restarts
_SUBSCRIPTION = struct.Struct("<IIQII")     # live .. topic_length
_ADVERT = struct.Struct("<IIQ")             # live, topic_length, inbox
assert HEADER.size == HEADER_SIZE and _ENTRY.size == ENTRY_NAME
assert ENTRY_NAME + MAX_INBOX_NAME == ENTRY_STATE and ENTRY_CLASS + MAX_CLASS_NAME == ENTRY_RESTARTS
assert ENTRY_RESTARTS + 4 == ENTRY_SIZE
assert SUBSCRIPTION_TOPIC + MAX_TOPIC == SUBSCRIPTION_SIZE and ADVERT_TOPIC + MAX_TOPIC == ADVERT_SIZE
assert SESSION_SIZE % 8 == 0


class SessionHeader(NamedTuple):
    magic: bytes
    version: int
    entries: int
    owner_token: int
    owner_pid: int
    next_token: int
    generation: int
    created_ns: int
    run_id: bytes
    subscriptions: int
    adverts: int


def read_header(buf) -> SessionHeader:
    """The header fields of a session segment (at least HEADER_SIZE bytes)."""
    (magic, version, entries, owner, owner_pid, _, next_token, generation, created_ns, _,
     run_id, subscriptions, adverts) = HEADER.unpack_from(buf, 0)
    return SessionHeader(magic, version, entries, owner, owner_pid, next_token, generation,
                         created_ns, run_id, subscriptions, adverts)


def write_header(buf, owner_token: int, owner_pid: int, first_token: int, created_ns: int,
                 run_id: bytes) -> None:
    """Lay out a new session's header in a zeroed segment, its magic last: a reader
    that sees the magic sees the whole header."""
    HEADER.pack_into(buf, 0, bytes(8), SESSION_LAYOUT_VERSION, INBOX_ENTRIES, owner_token,
                     owner_pid, 0, first_token, 0, created_ns, 0, run_id, SUBSCRIPTIONS, ADVERTS)
    buf[0:8] = SESSION_MAGIC


def layout_mismatch(header: SessionHeader) -> str | None:
    """Why a segment's header is not one of this layout, or None if it is."""
    found = (header.magic, header.version, header.entries, header.subscriptions, header.adverts)
    expected = (SESSION_MAGIC, SESSION_LAYOUT_VERSION, INBOX_ENTRIES, SUBSCRIPTIONS, ADVERTS)
    if found == expected:
        return None
    return (f"segment has magic {header.magic!r}, version {header.version}, tables "
            f"{header.entries}/{header.subscriptions}/{header.adverts}; expected "
            f"{SESSION_MAGIC!r}, version {SESSION_LAYOUT_VERSION}, tables "
            f"{INBOX_ENTRIES}/{SUBSCRIPTIONS}/{ADVERTS}")


class Subscription(NamedTuple):
    """Inbox `inbox` takes the messages of `topic` (a topic or a pattern); a full
    inbox makes a publisher wait up to `timeout` seconds (policy "block") or skip
    it and count the drop ("drop")."""
    topic: str
    inbox: str          # the subscribing inbox's name
    inbox_token: int
    policy: str
    timeout: float


class Publisher(NamedTuple):
    """An advert: the node of inbox `inbox` publishes `topic`."""
    topic: str
    inbox: str          # the publishing node's inbox name
    inbox_token: int


class InboxEntry:
    __slots__ = ("index", "name", "token", "owner", "owner_pid", "capacity", "max_length",
                 "class_name", "state", "restarts")

    def __init__(self, index, name, token, owner, owner_pid, capacity, max_length,
                 class_name="", state=STATE_UNKNOWN, restarts=0):
        self.index, self.name, self.token, self.owner = index, name, token, owner
        self.owner_pid, self.capacity, self.max_length = owner_pid, capacity, max_length
        self.class_name, self.state, self.restarts = class_name, state, restarts

    @property
    def placeholder(self) -> bool:
        """No ring stands behind it: kept for a member that is restarting (see above)."""
        return self.capacity == 0


# ---- reading the tables (from the mapped segment, or from a copy of it) ----

def _column(buf, offset: int, count: int, size: int, fmt: str, field: int) -> list[int]:
    """One field (a native "I" or "Q" at byte `field` of each slot) of every slot of
    the table of `count` slots of `size` bytes at `offset`, in one read."""
    width = struct.calcsize(fmt)
    with memoryview(buf) as view, view[offset: offset + count * size] as table, \
            table.cast(fmt) as words:
        return words[field // width:: size // width].tolist()


def _live_slots(buf, offset: int, count: int, size: int) -> list[int]:
    """Indices of the live slots of a table."""
    return [i for i, live in enumerate(_column(buf, offset, count, size, "I", 0)) if live == 1]


def _text(buf, offset: int, length: int, limit: int, what: str) -> str:
    """A UTF-8 string of `length` bytes, after checking the length read from shared memory."""
    if length > limit:
        raise errors.RingCorrupt(f"{what} has length {length}, above its limit {limit}")
    return bytes(buf[offset: offset + length]).decode("utf-8", "replace")


def count_entries(buf) -> int:
    """How many inbox entries are live (a count: one read, no lengths to check)."""
    return len(_live_slots(buf, ENTRIES_OFFSET, INBOX_ENTRIES, ENTRY_SIZE))


def read_entries(buf, sid: str) -> list[InboxEntry]:
    """Every live inbox entry of a session segment (or of a copy of one)."""
    out = []
    for i in _live_slots(buf, ENTRIES_OFFSET, INBOX_ENTRIES, ENTRY_SIZE):
        off = ENTRIES_OFFSET + i * ENTRY_SIZE
        _, pid, token, owner, capacity, max_length, nlen = _ENTRY.unpack_from(buf, off)
        state, clen = _INFO.unpack_from(buf, off + ENTRY_STATE)
        restarts, = _U32.unpack_from(buf, off + ENTRY_RESTARTS)
        where = f"session {sid!r}: inbox entry {i}"
        name = _text(buf, off + ENTRY_NAME, nlen, MAX_INBOX_NAME, f"{where}: its name")
        class_name = _text(buf, off + ENTRY_CLASS, clen, MAX_CLASS_NAME, f"{where}: its class name")
        out.append(InboxEntry(i, name, token, owner, pid, capacity, max_length, class_name, state,
                              restarts))
    return out


def read_subscriptions(buf, sid: str, inboxes: dict[int, str]) -> list[Subscription]:
    """Every live subscription of a live inbox (`inboxes`: token -> name)."""
    out = []
    for i in _live_slots(buf, SUBSCRIPTIONS_OFFSET, SUBSCRIPTIONS, SUBSCRIPTION_SIZE):
        off = SUBSCRIPTIONS_OFFSET + i * SUBSCRIPTION_SIZE
        _, policy, token, timeout_ms, tlen = _SUBSCRIPTION.unpack_from(buf, off)
        if token not in inboxes:
            continue
        if policy >= len(POLICIES):
            raise errors.RingCorrupt(f"session {sid!r}: subscription entry {i} has policy {policy}")
        topic = _text(buf, off + SUBSCRIPTION_TOPIC, tlen, MAX_TOPIC,
                      f"session {sid!r}: subscription entry {i}: its topic")
        out.append(Subscription(topic, inboxes[token], token, POLICIES[policy], timeout_ms / 1000))
    return out


def read_publishers(buf, sid: str, inboxes: dict[int, str]) -> list[Publisher]:
    """Every live advert of a live inbox (`inboxes`: token -> name)."""
    out = []
    for i in _live_slots(buf, ADVERTS_OFFSET, ADVERTS, ADVERT_SIZE):
        off = ADVERTS_OFFSET + i * ADVERT_SIZE
        _, tlen, token = _ADVERT.unpack_from(buf, off)
        if token not in inboxes:
            continue
        topic = _text(buf, off + ADVERT_TOPIC, tlen, MAX_TOPIC,
                      f"session {sid!r}: advert {i}: its topic")
        out.append(Publisher(topic, inboxes[token], token))
    return out


def _topic_bytes(topic: str) -> bytes:
    raw = topic.encode("utf-8") if isinstance(topic, str) else b""
    if not raw or len(raw) > MAX_TOPIC:
        raise errors.ConfigError(f"topic {topic!r} must be 1..{MAX_TOPIC} bytes of UTF-8")
    return raw


class Directory:
    """Locked access to the session segment: use it as a context manager around
    every read or write, except `generation`, which is one lock-free load."""

    def __init__(self, seg: segment.Segment, sid: str):
        self.seg = seg
        self.sid = sid
        self.mutex = threading.RLock()  # flock is per open file, not per thread
        self._depth = 0  # re-entry count of this process's hold on the flock
        self._words = memoryview(seg.map).cast("Q")
        self._u32 = memoryview(seg.map).cast("I")

    def generation(self) -> int:
        """Changes whenever a table of the directory changes."""
        return self._words[GENERATION_OFFSET // 8]

    def generation_word(self) -> tuple[memoryview, int]:
        """(words, i): words[i] is generation(), for a caller that reads it inline
        (every publish: one memoryview load instead of a call)."""
        return self._words, GENERATION_OFFSET // 8

    def close(self) -> None:
        self._words.release()
        self._u32.release()
        self.seg.close()

    def header(self) -> SessionHeader:
        return read_header(self.seg.map)

    def __enter__(self):
        self.mutex.acquire()
        try:
            if self._depth == 0:
                # A signal handler that raises while flock waits (a test's timeout,
                # a KeyboardInterrupt) must not leave the mutex held: every other
                # thread of the process would then wait for it forever.
                self.seg.lock(exclusive=True)
        except BaseException:
            self.mutex.release()
            raise
        self._depth += 1
        return self

    def __exit__(self, *exc):
        self._depth -= 1
        try:
            if self._depth == 0:
                self.seg.unlock()
        finally:
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
        after every write of the holder that bumped it (it caches the value it
        loaded before locking, so a change in between makes it re-read once more:
        conservative). A reader may see the new value late, never later than
        anything it learns from the writer afterwards through a ring: the ring's
        release store orders this store before it.
        """
        assert self._depth, "the directory's flock must be held"
        words = self._words
        words[GENERATION_OFFSET // 8] = words[GENERATION_OFFSET // 8] + 1

    def _set_live(self, offset: int, live: int) -> None:
        """Store a slot's `live` word: last when filling it, first when freeing it."""
        self._u32[offset // 4] = live

    # ---- inbox entries ----

    def entries(self):
        yield from read_entries(self.seg.map, self.sid)

    def find(self, name: str) -> InboxEntry | None:
        """The entry with a ring named `name` (None if only a placeholder has it)."""
        for e in self.entries():
            if e.name == name and not e.placeholder:
                return e
        return None

    def find_placeholder(self, name: str) -> InboxEntry | None:
        """The placeholder kept under `name` (see the module docstring), if any."""
        for e in self.entries():
            if e.name == name and e.placeholder:
                return e
        return None

    def placeholders(self) -> dict[int, InboxEntry]:
        """Every placeholder, by its token."""
        return {e.token: e for e in self.entries() if e.placeholder}

    def add(self, name: bytes, token, owner, capacity, max_length) -> int:
        m = self.seg.map
        for i in range(INBOX_ENTRIES):
            off = ENTRIES_OFFSET + i * ENTRY_SIZE
            if struct.unpack_from("<I", m, off)[0] == 0:
                m[off + ENTRY_NAME: off + ENTRY_NAME + MAX_INBOX_NAME] = name.ljust(MAX_INBOX_NAME, b"\0")
                _ENTRY.pack_into(m, off, 0, os.getpid(), token, owner, capacity, max_length, len(name))
                _INFO.pack_into(m, off + ENTRY_STATE, STATE_UNKNOWN, 0)
                _U32.pack_into(m, off + ENTRY_RESTARTS, 0)
                self._set_live(off, 1)
                self.bump_generation()
                return i
        raise errors.EtherError(f"session {self.sid!r} has no room for more than {INBOX_ENTRIES} inboxes")

    def remove(self, index: int, token: int) -> None:
        """Remove an inbox entry and every subscription and advert of that inbox."""
        off = ENTRIES_OFFSET + index * ENTRY_SIZE
        live, _, tok = struct.unpack_from("<IIQ", self.seg.map, off)
        if live == 1 and tok == token:
            self._set_live(off, 0)
            for table, count, size in ((SUBSCRIPTIONS_OFFSET, SUBSCRIPTIONS, SUBSCRIPTION_SIZE),
                                       (ADVERTS_OFFSET, ADVERTS, ADVERT_SIZE)):
                inboxes = _column(self.seg.map, table, count, size, "Q", 8)
                for i in _live_slots(self.seg.map, table, count, size):
                    if inboxes[i] == token:
                        self._set_live(table + i * size, 0)
            self.bump_generation()

    def remove_named(self, name: str) -> bool:
        """Remove the inbox `name` (its consumer is gone), its subscriptions and adverts."""
        entry = self.find(name)
        if entry is None:
            return False
        self.remove(entry.index, entry.token)
        return True

    def set_info(self, inbox_token: int, *, class_name: str | None = None,
                 state: int | None = None, restarts: int | None = None) -> None:
        """Record what the member behind an inbox runs, its state and how many times
        it was restarted (None: leave as is).

        `state` is a small int whose meaning the upper layers give (0: unknown)."""
        raw = None
        if class_name is not None:
            if not isinstance(class_name, str):
                raise errors.ConfigError(f"class_name must be a str, not {class_name!r}")
            raw = class_name.encode("utf-8")
            if len(raw) > MAX_CLASS_NAME:
                raise errors.ConfigError(
                    f"class name {class_name!r} is {len(raw)} bytes; the session directory "
                    f"keeps at most {MAX_CLASS_NAME}")
        if state is not None and (not isinstance(state, int) or isinstance(state, bool)
                                  or not 0 <= state <= MAX_STATE):
            raise errors.ConfigError(f"a member state must be an int in 0..{MAX_STATE}, not {state!r}")
        if restarts is not None and (not isinstance(restarts, int) or isinstance(restarts, bool)
                                     or not 0 <= restarts <= MAX_STATE):
            raise errors.ConfigError(f"a restart count must be an int in 0..{MAX_STATE}, not {restarts!r}")
        entry = next((e for e in self.entries() if e.token == inbox_token), None)
        if entry is None:
            raise errors.InboxNotFound(f"session {self.sid!r} has no inbox with token {inbox_token}")
        m = self.seg.map
        off = ENTRIES_OFFSET + entry.index * ENTRY_SIZE
        old_state, old_length = _INFO.unpack_from(m, off + ENTRY_STATE)
        if raw is not None:
            m[off + ENTRY_CLASS: off + ENTRY_RESTARTS] = raw.ljust(MAX_CLASS_NAME, b"\0")
        _INFO.pack_into(m, off + ENTRY_STATE, old_state if state is None else state,
                        old_length if raw is None else len(raw))
        if restarts is not None:
            _U32.pack_into(m, off + ENTRY_RESTARTS, restarts)
        self.bump_generation()

    # ---- placeholders (see the module docstring) ----

    def replace_with_placeholder(self, name: str, owner: int, *, state: int,
                                 restarts: int) -> InboxEntry | None:
        """Swap the entry with a ring named `name` (its consumer died) for a
        placeholder owned by `owner` that keeps its class name and its
        subscriptions (not its adverts), in one change under the flock. Returns
        the entry removed (None if there was none: the placeholder is made
        anyway, with no subscription, unless one exists already)."""
        entry = self.find(name)
        if entry is None and self.find_placeholder(name) is not None:
            return None
        subscriptions = [s for s in self.subscriptions() if entry is not None
                         and s.inbox_token == entry.token]
        if entry is not None:
            self.remove(entry.index, entry.token)
        token = self.next_token()
        self.add(name.encode("utf-8"), token, owner, 0, 0)
        self.set_info(token, class_name=entry.class_name if entry else "", state=state,
                      restarts=restarts)
        for sub in subscriptions:
            self.subscribe(sub.topic, token, sub.policy, sub.timeout)
        return entry

    def set_placeholder(self, name: str, *, state: int | None = None,
                        restarts: int | None = None) -> bool:
        """Change the state or restart count a placeholder shows; False if none."""
        entry = self.find_placeholder(name)
        if entry is None:
            return False
        self.set_info(entry.token, state=state, restarts=restarts)
        return True

    def remove_placeholder(self, name: str) -> bool:
        """Remove the placeholder of `name` and its subscriptions (its member is back)."""
        entry = self.find_placeholder(name)
        if entry is None:
            return False
        self.remove(entry.index, entry.token)
        return True

    # ---- subscriptions ----

    def subscribe(self, topic: str, inbox_token: int, policy: str = DEFAULT_POLICY,
                  timeout: float = DEFAULT_TIMEOUT_S) -> int:
        """Register the inbox as a subscriber of topic; returns the entry's index."""
        raw = _topic_bytes(topic)
        if policy not in POLICIES:
            raise errors.ConfigError(f"subscription policy must be one of {POLICIES}, not {policy!r}")
        m = self.seg.map
        for i in range(SUBSCRIPTIONS):
            off = SUBSCRIPTIONS_OFFSET + i * SUBSCRIPTION_SIZE
            if struct.unpack_from("<I", m, off)[0] == 0:
                m[off + SUBSCRIPTION_TOPIC: off + SUBSCRIPTION_SIZE] = raw.ljust(MAX_TOPIC, b"\0")
                _SUBSCRIPTION.pack_into(m, off, 0, POLICIES.index(policy), inbox_token,
                                        max(1, int(timeout * 1000)), len(raw))
                self._set_live(off, 1)
                self.bump_generation()
                return i
        raise errors.EtherError(f"session {self.sid!r} has no room for more than {SUBSCRIPTIONS} subscriptions")

    def unsubscribe(self, index: int, inbox_token: int) -> None:
        off = SUBSCRIPTIONS_OFFSET + index * SUBSCRIPTION_SIZE
        live, _, token = struct.unpack_from("<IIQ", self.seg.map, off)
        if live == 1 and token == inbox_token:
            self._set_live(off, 0)
            self.bump_generation()

    def routing(self) -> tuple[list[InboxEntry], list[Subscription]]:
        """(every live entry, every live subscription joined with its inbox's name),
        from one read of the entries: what a router reloads, under the flock."""
        entries = list(self.entries())
        return entries, read_subscriptions(self.seg.map, self.sid, {e.token: e.name for e in entries})

    def subscriptions(self) -> list[Subscription]:
        """Every live subscription, joined with its inbox's name."""
        inboxes = {e.token: e.name for e in self.entries()}
        return read_subscriptions(self.seg.map, self.sid, inboxes)

    # ---- publisher adverts ----

    def advertise(self, topic: str, inbox_token: int) -> int:
        """Record that the node of the inbox publishes topic; returns the advert's
        index. Advertising the same topic for the same inbox again changes nothing."""
        raw = _topic_bytes(topic)
        m = self.seg.map
        live = _live_slots(m, ADVERTS_OFFSET, ADVERTS, ADVERT_SIZE)
        inboxes = _column(m, ADVERTS_OFFSET, ADVERTS, ADVERT_SIZE, "Q", 8)
        for i in live:
            off = ADVERTS_OFFSET + i * ADVERT_SIZE
            if inboxes[i] == inbox_token and _ADVERT.unpack_from(m, off)[1] == len(raw) and \
                    m[off + ADVERT_TOPIC: off + ADVERT_TOPIC + len(raw)] == raw:
                return i
        taken = set(live)
        free = next((i for i in range(ADVERTS) if i not in taken), None)
        if free is None:
            raise errors.EtherError(
                f"session {self.sid!r} has no room for more than {ADVERTS} publisher adverts "
                f"(topic {topic!r})")
        off = ADVERTS_OFFSET + free * ADVERT_SIZE
        m[off + ADVERT_TOPIC: off + ADVERT_SIZE] = raw.ljust(MAX_TOPIC, b"\0")
        _ADVERT.pack_into(m, off, 0, len(raw), inbox_token)
        m[off + 16: off + ADVERT_TOPIC] = bytes(ADVERT_TOPIC - 16)
        self._set_live(off, 1)
        self.bump_generation()
        return free

    def publishers(self) -> list[Publisher]:
        """Every live advert, joined with its inbox's name."""
        inboxes = {e.token: e.name for e in self.entries()}
        return read_publishers(self.seg.map, self.sid, inboxes)
