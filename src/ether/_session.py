"""A session: the shared-memory namespace of one pipeline or experiment.

The session segment ``/ether_<sid>`` holds a small table of inboxes. Writers
take an exclusive ``flock`` on the segment, readers a shared one; the kernel
releases a dead holder's lock, so a crash never wedges the table. The table is
touched only when inboxes come and go, never per message.

Session segment layout (little-endian):

     0 u64 magic         b"ETHERSES"
     8 u32 version       SESSION_LAYOUT_VERSION
    12 u32 entries       number of inbox entries
    16 u64 owner_token   member token of the creator; the session lives while it does
    24 u32 owner_pid
    28 u32 reserved
    32 u64 next_token    the next member or inbox token (monotonic, never reused)
    40 u64 generation    bumped on every table change
    48 u64 created_ns    wall clock at creation
    56 u64 reserved
    64 entry[entries], 128 B each:
         0 u32 state      0 free, 1 live
         4 u32 owner_pid
         8 u64 token      inbox token (names its segment)
        16 u64 owner      member token of the consumer
        24 u64 capacity
        32 u32 max_length
        36 u32 name_length
        40 88 B name      UTF-8
"""
from __future__ import annotations

import errno
import os
import struct
import threading
import time
import weakref

from . import _errors as errors
from . import _names as names
from . import _segment as segment

SESSION_MAGIC = b"ETHERSES"
SESSION_LAYOUT_VERSION = 1
ENTRIES = 256
ENTRY_SIZE = 128
HEADER_SIZE = 64
MAX_INBOX_NAME = 88
SESSION_SIZE = HEADER_SIZE + ENTRIES * ENTRY_SIZE

_HEADER = struct.Struct("<8sIIQIIQQQQ")
_ENTRY = struct.Struct("<IIQQQII")
assert _HEADER.size == HEADER_SIZE and _ENTRY.size == 40


class InboxEntry:
    __slots__ = ("index", "name", "token", "owner", "owner_pid", "capacity", "max_length")

    def __init__(self, index, name, token, owner, owner_pid, capacity, max_length):
        self.index, self.name, self.token, self.owner = index, name, token, owner
        self.owner_pid, self.capacity, self.max_length = owner_pid, capacity, max_length


class _Table:
    """Locked access to the session segment's header and entries."""

    def __init__(self, seg: segment.Segment, sid: str):
        self.seg = seg
        self.sid = sid
        self.mutex = threading.Lock()  # flock is per open file, not per thread

    def header(self):
        return _HEADER.unpack_from(self.seg.map, 0)

    def __enter__(self):
        self.mutex.acquire()
        self.seg.lock(exclusive=True)
        return self

    def __exit__(self, *exc):
        self.seg.unlock()
        self.mutex.release()

    def next_token(self) -> int:
        h = list(self.header())
        token = h[6]
        if token > names.MAX_TOKEN:
            raise errors.EtherError(f"session {self.sid!r} ran out of tokens")
        h[6] = token + 1
        _HEADER.pack_into(self.seg.map, 0, *h)
        return token

    def bump_generation(self) -> None:
        h = list(self.header())
        h[7] += 1
        _HEADER.pack_into(self.seg.map, 0, *h)

    def entries(self):
        m = self.seg.map
        for i in range(ENTRIES):
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
        for i in range(ENTRIES):
            off = HEADER_SIZE + i * ENTRY_SIZE
            if struct.unpack_from("<I", m, off)[0] == 0:
                m[off + 40: off + 40 + MAX_INBOX_NAME] = name.ljust(MAX_INBOX_NAME, b"\0")
                _ENTRY.pack_into(m, off, 1, os.getpid(), token, owner, capacity, max_length, len(name))
                self.bump_generation()
                return i
        raise errors.EtherError(f"session {self.sid!r} has no room for more than {ENTRIES} inboxes")

    def remove(self, index: int, token: int) -> None:
        off = HEADER_SIZE + index * ENTRY_SIZE
        state, _, tok = struct.unpack_from("<IIQ", self.seg.map, off)
        if state == 1 and tok == token:
            struct.pack_into("<I", self.seg.map, off, 0)
            self.bump_generation()


def _remove_objects(sid: str) -> None:
    for name in segment.list_names():
        parsed = names.parse(name)
        if parsed and parsed[0] == sid:
            segment.unlink(name)


def _session_alive(sid: str) -> bool:
    """True unless the session's owner is provably dead (or it has no owner at all)."""
    try:
        seg = segment.Segment.open(names.session_segment(sid), what=f"session {sid!r}",
                                   min_size=HEADER_SIZE)
    except FileNotFoundError:
        # No session segment: alive only while some member still holds its lock
        # (a creator between its member lock and its segment).
        return any(
            segment.holder_alive(n) for n in segment.list_names()
            if (p := names.parse(n)) and p[0] == sid and p[1] == "m")
    except errors.SegmentError:
        return True  # not ours: never touch
    try:
        magic, version, _, owner, *_ = _HEADER.unpack_from(seg.map, 0)
        if magic != SESSION_MAGIC or version != SESSION_LAYOUT_VERSION:
            return True
        return segment.holder_alive(names.member_lock(sid, owner))
    finally:
        seg.close()


def remove_stale_sessions(keep: str | None = None) -> list[str]:
    """Unlink every object of sessions whose owner is dead; return their ids."""
    removed = []
    for sid in sorted({p[0] for n in segment.list_names() if (p := names.parse(n))}):
        if sid != keep and not _session_alive(sid):
            _remove_objects(sid)
            removed.append(sid)
    return removed


class _Member:
    """This process's liveness lock in a session: held for as long as it is a member."""

    def __init__(self, sid: str, token: int):
        name = names.member_lock(sid, token)
        seg = segment.Segment.create(name, 0, what=f"member lock of session {sid!r}")
        if not seg.lock(blocking=False) or not seg.linked():
            seg.close()
            segment.unlink(name)
            raise errors.SegmentError(errno.EAGAIN, f"session {sid!r}: member lock {name} was taken")
        self.seg = seg
        self.token = token
        self.name = name

    def close(self) -> None:
        segment.unlink(self.name)
        self.seg.close()


_LIVE: "weakref.WeakSet[Session]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A forked child is not a member: it must not hold the parent's liveness lock
    (or the parent would look alive after its death) nor close the parent's objects."""
    for session in list(_LIVE):
        session._forget()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _close_session(table: _Table, member: _Member, owner: bool, sid: str) -> None:
    """Finalizer body: shared by close() and interpreter exit."""
    if owner:
        _remove_objects(sid)
    member.close()
    table.seg.close()


class Session:
    """The namespace in shared memory that a group of processes shares.

    ``Session.create()`` makes a new session and owns it: closing it removes every
    segment of the session. ``Session.open(name)`` joins one from another process.
    Both are context managers. A Session must not cross ``fork``: open the session
    again in the child.
    """

    def __init__(self, sid: str, table: _Table, member: _Member, owner: bool):
        self._sid = sid
        self._table = table
        self._member = member
        self._owner = owner
        self._pid = os.getpid()
        # Inboxes are this process's named presence: they live until closed.
        # Senders are held weakly, so a dropped one frees its producer slot.
        self._inboxes: set = set()
        self._senders: "weakref.WeakSet" = weakref.WeakSet()
        self._finalizer = weakref.finalize(self, _close_session, table, member, owner, sid)
        _LIVE.add(self)

    # ---- creation ----

    @classmethod
    def create(cls, name: str | None = None) -> "Session":
        """Create a new session (a random id if no name) and become its owner.

        Sessions left behind by dead processes are removed first; live ones are
        never touched.
        """
        sid = names.check_session_id(name) if name is not None else names.new_session_id()
        remove_stale_sessions()
        if any((p := names.parse(n)) and p[0] == sid for n in segment.list_names()):
            raise errors.SessionExists(
                errno.EEXIST, f"session {sid!r} already exists and its owner is alive")
        member = _Member(sid, 1)
        try:
            seg = segment.Segment.create(names.session_segment(sid), SESSION_SIZE,
                                         what=f"session {sid!r}")
        except BaseException:
            member.close()
            raise
        _HEADER.pack_into(seg.map, 0, SESSION_MAGIC, SESSION_LAYOUT_VERSION, ENTRIES, 1,
                          os.getpid(), 0, 2, 0, time.time_ns(), 0)
        return cls(sid, _Table(seg, sid), member, owner=True)

    @classmethod
    def open(cls, name: str) -> "Session":
        """Join the live session `name` from this process."""
        sid = names.check_session_id(name)
        try:
            seg = segment.Segment.open(names.session_segment(sid), what=f"session {sid!r}",
                                       min_size=SESSION_SIZE)
        except FileNotFoundError:
            raise errors.SessionNotFound(errno.ENOENT, f"no session named {sid!r} exists") from None
        try:
            magic, version, entries, owner, owner_pid, *_ = _HEADER.unpack_from(seg.map, 0)
            if magic != SESSION_MAGIC or version != SESSION_LAYOUT_VERSION or entries != ENTRIES:
                raise errors.SegmentError(
                    errno.EINVAL, f"session {sid!r}: segment has magic {magic!r}, version "
                    f"{version}; expected {SESSION_MAGIC!r}, version {SESSION_LAYOUT_VERSION}")
            if not segment.holder_alive(names.member_lock(sid, owner)):
                raise errors.SessionNotFound(
                    errno.ENOENT, f"session {sid!r} is stale: its owner (pid {owner_pid}) is dead")
            table = _Table(seg, sid)
            with table:
                token = table.next_token()
            member = _Member(sid, token)
        except BaseException:
            seg.close()
            raise
        return cls(sid, table, member, owner=False)

    # ---- properties ----

    @property
    def name(self) -> str:
        return self._sid

    @property
    def token(self) -> int:
        """This process's member token in the session."""
        return self._member.token

    @property
    def owner(self) -> bool:
        return self._owner

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    # ---- inboxes ----

    def create_inbox(self, name: str, *, capacity: int = 1 << 20, max_length: int = 64 * 1024,
                     max_producers: int = 64):
        """Create this process's inbox `name`: a ring other processes can send to."""
        from ._inbox import Inbox
        self._check_usable()
        inbox = Inbox._create(self, name, capacity, max_length, max_producers)
        self._inboxes.add(inbox)
        return inbox

    def connect(self, name: str, *, policy: str = "block", timeout: float = 5.0):
        """A Sender to the inbox `name` of this session."""
        from ._sender import Sender
        self._check_usable()
        sender = Sender._connect(self, name, policy, timeout)
        self._senders.add(sender)
        return sender

    def inboxes(self) -> list[str]:
        """Names of the inboxes currently registered in the session."""
        self._check_usable()
        with self._table as t:
            return [e.name for e in t.entries()]

    # ---- used by Inbox and Sender ----

    def _check_usable(self) -> None:
        if os.getpid() != self._pid:
            raise errors.EtherError(
                f"session {self._sid!r} was opened in pid {self._pid}; after fork, call "
                f"Session.open({self._sid!r}) in the child")
        if not self._finalizer.alive:
            raise errors.EtherError(f"session {self._sid!r} is closed")

    def _forget(self) -> None:
        self._finalizer.detach()
        for child in [*self._senders, *self._inboxes]:
            child._forget()
        if self._member.seg.fd >= 0:
            os.close(self._member.seg.fd)  # flock is shared across fork: let go of ours
            self._member.seg.fd = -1

    def _member_alive(self, token: int) -> bool:
        if token == self._member.token:
            return True
        return segment.holder_alive(names.member_lock(self._sid, token))

    # ---- closing ----

    def close(self) -> None:
        """Close what this process opened in the session; the owner also removes
        every segment of the session."""
        if not self._finalizer.alive:
            return
        if os.getpid() != self._pid:
            self._finalizer.detach()
            return
        for child in [*self._senders, *self._inboxes]:
            child.close()
        self._finalizer()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("owner" if self._owner else "member")
        return f"<ether.Session {self._sid!r} {state}>"

