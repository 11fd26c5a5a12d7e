"""A session: the shared-memory namespace of one pipeline or experiment.

Creating a session makes its directory segment (see _directory.py) and this
process's liveness lock; joining one adds a lock. The owner's close removes every
object of the session; a new session removes those of sessions whose owner died.
"""
from __future__ import annotations

import errno
import os
import time
import weakref

from .. import _errors as errors
from . import _names as names
from . import _segment as segment
from ._directory import HEADER_SIZE, SESSION_LAYOUT_VERSION, SESSION_MAGIC, SESSION_SIZE, \
    Directory, layout_mismatch, read_header, write_header
from ._policy import DEFAULT_POLICY, DEFAULT_TIMEOUT_S


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
        header = read_header(seg.map)
        if header.magic != SESSION_MAGIC or header.version != SESSION_LAYOUT_VERSION:
            return True
        return segment.holder_alive(names.member_lock(sid, header.owner_token))
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
        # Flocked before its name appears: no sweeper can ever see it unlocked while
        # we live (a lock made by name and flocked after raced the sweeps of
        # concurrent Session.create calls, which took 1 % of new locks).
        seg = segment.Segment.create_locked(name, what=f"member lock of session {sid!r}")
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


def _close_session(table: Directory, member: _Member, owner: bool, sid: str) -> None:
    """Finalizer body: shared by close() and interpreter exit."""
    if owner:
        _remove_objects(sid)
    member.close()
    table.close()


class Session:
    """The namespace in shared memory that a group of processes shares.

    ``Session.create()`` makes a new session and owns it: closing it removes every
    segment of the session. ``Session.open(name)`` joins one from another process.
    Both are context managers. A Session must not cross ``fork``: open the session
    again in the child.
    """

    def __init__(self, sid: str, table: Directory, member: _Member, owner: bool):
        self._sid = sid
        self._directory = table
        self._member = member
        self._owner = owner
        self._pid = os.getpid()
        # Inboxes are this process's named presence: they live until closed.
        # Senders are held weakly, so a dropped one frees its producer slot.
        self._inboxes: set = set()
        self._senders: "weakref.WeakSet" = weakref.WeakSet()
        self._finalizer = weakref.finalize(self, _close_session, table, member, owner, sid)
        self._arena_reader = None  # made when the first array handle arrives
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
        write_header(seg.map, owner_token=1, owner_pid=os.getpid(), first_token=2,
                     created_ns=time.time_ns(), run_id=names.new_run_id())
        return cls(sid, Directory(seg, sid), member, owner=True)

    @classmethod
    def open(cls, name: str) -> "Session":
        """Join the live session `name` from this process."""
        sid = names.check_session_id(name)
        try:
            seg = segment.Segment.open(names.session_segment(sid), what=f"session {sid!r}",
                                       min_size=SESSION_SIZE)
        except FileNotFoundError:
            from ._inspect import not_found
            raise not_found(f"no session named {sid!r} exists") from None
        try:
            header = read_header(seg.map)
            mismatch = layout_mismatch(header)
            if mismatch is not None:
                raise errors.SegmentError(errno.EINVAL, f"session {sid!r}: {mismatch}")
            if not segment.holder_alive(names.member_lock(sid, header.owner_token)):
                from ._inspect import not_found
                raise not_found(f"session {sid!r} is stale: its owner (pid {header.owner_pid}) is dead")
            table = Directory(seg, sid)
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
    def run_id(self) -> bytes:
        """The session's 16-byte UUIDv7, unique across hosts and time: with the host,
        the origin every message of the session carries."""
        return read_header(self._directory.seg.map).run_id

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

    @property
    def arena_reader(self):
        """This process's reader of the session's array arenas (one per session:
        handles name arenas by token within it)."""
        reader = self._arena_reader
        if reader is None:
            from ._arena_reader import Reader
            reader = self._arena_reader = Reader(self)
        return reader

    # ---- inboxes ----

    def create_inbox(self, name: str, *, capacity: int = 1 << 20, max_length: int = 64 * 1024,
                     max_producers: int = 64):
        """Create this process's inbox `name`: a ring other processes can send to."""
        from ._inbox import Inbox
        self._check_usable()
        inbox = Inbox._create(self, name, capacity, max_length, max_producers)
        self._inboxes.add(inbox)
        return inbox

    def connect(self, name: str, *, policy: str = DEFAULT_POLICY, timeout: float = DEFAULT_TIMEOUT_S):
        """A Sender to the inbox `name` of this session."""
        from ._sender import Sender
        self._check_usable()
        sender = Sender._connect(self, name, policy, timeout)
        self._senders.add(sender)
        return sender

    def inboxes(self) -> list[str]:
        """Names of the inboxes currently registered in the session."""
        self._check_usable()
        with self._directory as t:
            return [e.name for e in t.entries()]

    def inspect(self):
        """A SessionSnapshot of this session: what ether.lowlevel.inspect(name) gives
        any other process."""
        from ._inspect import snapshot
        self._check_usable()
        with self._directory as t:
            image = t.seg.map[:SESSION_SIZE]
        return snapshot(self._sid, image)

    def generation(self) -> int:
        """The directory's change counter: it grows whenever an inbox, a subscription
        or an advert comes or goes (one lock-free load). A watcher (a bridge) re-reads
        `inspect()` only when it changed."""
        self._check_usable()
        return self._directory.generation()

    def set_member_state(self, inbox_name: str, state: int) -> None:
        """Record the state of the member whose inbox is `inbox_name`: a small int
        (0..2**32-1) whose meaning the caller gives; 0 means unknown. What
        inspect() shows."""
        self._check_usable()
        with self._directory as t:
            entry = t.find(inbox_name)
            if entry is None:
                raise errors.InboxNotFound(
                    f"session {self._sid!r} has no inbox named {inbox_name!r} "
                    f"(inboxes: {[e.name for e in t.entries()]})")
            t.set_info(entry.token, state=state)

    def member_state(self, inbox_name: str) -> int | None:
        """The state recorded for the member whose inbox is `inbox_name` (see
        set_member_state), or None if it has no such inbox."""
        self._check_usable()
        with self._directory as t:
            entry = t.find(inbox_name)
        return None if entry is None else entry.state

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

    def owner_alive(self) -> bool:
        """False once the process that created the session has died."""
        if self._owner:
            return True
        owner = read_header(self._directory.seg.map).owner_token
        return segment.holder_alive(names.member_lock(self._sid, owner))

    def remove_if_orphaned(self) -> bool:
        """If the session's owner has died, unlink every object of the session, this
        member's own too: what each member of an orphaned session does on its way
        out, so that the last one out leaves nothing behind."""
        self._check_usable()
        if self.owner_alive():
            return False
        _remove_objects(self._sid)
        return True

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
        if self._arena_reader is not None:
            self._arena_reader.close()
        self._finalizer()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("owner" if self._owner else "member")
        return f"<ether.Session {self._sid!r} {state}>"

