"""Read-only views of sessions from any process of the same user, without
joining them: which sessions live on this host, and a snapshot of one.

Neither call takes a member token, a member lock or a producer slot, and neither
writes a byte of shared memory: every segment is opened and mapped read-only.
A session is live while its owner holds its member lock, which is probed without
removing anything (`_segment.lock_held`). `inspect` copies the session segment
under a shared flock (writers hold it exclusively, so the copy is the directory
at one moment), lets go of it, then reads each inbox's counters from its ring,
mapped read-only, through the ring binding. Every length read from shared memory
is bounds-checked (`_directory.read_*`); an inbox that closes meanwhile is left
out of `inboxes`.
"""
from __future__ import annotations

import dataclasses
import datetime
import errno
import uuid

from .. import _errors as errors
from . import _names as names
from . import _ring as ring_mod
from . import _segment as segment
from ._directory import (HEADER_SIZE, SESSION_SIZE, Publisher, Subscription, count_entries,
                         layout_mismatch, read_entries, read_header, read_publishers,
                         read_subscriptions)

__all__ = ["list_sessions", "inspect", "SessionInfo", "SessionSnapshot", "MemberInfo",
           "InboxInfo", "Subscription", "Publisher"]


@dataclasses.dataclass(frozen=True, slots=True)
class SessionInfo:
    """One live session on this host, as `list_sessions` finds it."""
    name: str          # the session's id: what Session.open and ether.attach take
    owner_pid: int     # the process that created the session; it lives while this does
    created_ns: int    # wall-clock time of creation, nanoseconds since the Unix epoch
    run_id: str        # the session's UUIDv7, in canonical form
    members: int       # its nodes: the main process and each instance (one inbox each)

    @property
    def created(self) -> datetime.datetime:
        """`created_ns` as an aware UTC datetime."""
        return datetime.datetime.fromtimestamp(self.created_ns / 1e9, datetime.timezone.utc)


@dataclasses.dataclass(frozen=True, slots=True)
class MemberInfo:
    """One node of a session: the process behind one inbox."""
    name: str          # its inbox's name: the instance's name, or "main"
    pid: int           # the process that reads that inbox
    class_name: str    # the class it runs, as configured (Node.describe); "" if unknown
    state: int         # Session.set_member_state's value; 0 means unknown (an instance's:
                       # ether.lowlevel.InstanceState.of(state))
    token: int         # the inbox's token in the session
    restarts: int = 0  # how many times it was started again (restart policies)
    placeholder: bool = False  # no process behind it: kept while it restarts, or once it failed


@dataclasses.dataclass(frozen=True, slots=True)
class InboxInfo:
    """One inbox's ring and how full it is, read without attaching to it."""
    name: str
    token: int
    capacity: int        # bytes of the ring's data area
    used: int            # bytes claimed and not yet read
    max_length: int      # the largest message it takes
    producers: int       # senders attached now
    sent: int            # records committed by all senders, past and present
    dropped: int         # sends refused because it was full (drop policy)
    blocked: int         # sends that waited for room (block policy)
    received: int        # records its consumer has read
    skipped_claims: int  # claims of dead senders skipped
    closed: bool         # its consumer closed it

    @property
    def fill(self) -> float:
        """`used` as a fraction of `capacity`."""
        return self.used / self.capacity if self.capacity else 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class SessionSnapshot:
    """A session at one moment, as `inspect` reads it: who is in it, how full its
    inboxes are, who subscribes to and who publishes what.

    `subscriptions` are Subscription(topic, inbox, inbox_token, policy, timeout)
    records, `publishers` Publisher(topic, inbox, inbox_token) ones (adverts: the
    node of that inbox said it publishes that topic)."""
    name: str
    owner_pid: int
    created_ns: int
    run_id: str
    generation: int                          # the directory's change counter
    members: tuple[MemberInfo, ...]
    inboxes: tuple[InboxInfo, ...]
    subscriptions: tuple[Subscription, ...]
    publishers: tuple[Publisher, ...]

    def to_dict(self) -> dict:
        """The snapshot as plain dicts, lists and scalars (e.g. for json.dumps)."""
        return _plain(self)


def _plain(value):
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


# ---- finding sessions ----

def _session_ids() -> list[str]:
    return sorted({p[0] for n in segment.list_names() if (p := names.parse(n)) and p[1] is None})


class _NotLive(Exception):
    """The session does not exist, or its owner is dead (the message says which)."""


def _open_live(sid: str):
    """The session segment of the live session `sid`, mapped read-only, and its
    header. Raises _NotLive, or SegmentError for a segment of another user or layout."""
    try:
        seg = segment.Segment.open(names.session_segment(sid), what=f"session {sid!r}",
                                   min_size=HEADER_SIZE, read_only=True)
    except FileNotFoundError:
        raise _NotLive(f"no session named {sid!r} exists") from None
    try:
        header = read_header(seg.map)
        mismatch = layout_mismatch(header)
        if mismatch is not None:
            raise errors.SegmentError(errno.EINVAL, f"session {sid!r}: {mismatch}")
        if seg.size < SESSION_SIZE:
            raise errors.SegmentError(
                errno.EINVAL, f"session {sid!r}: segment is {seg.size} bytes, expected {SESSION_SIZE}")
        # Still linked: no cleaner removed it since we opened it (its owner token
        # could name a new session's lock by then).
        if not seg.linked() or not segment.lock_held(names.member_lock(sid, header.owner_token)):
            raise _NotLive(f"session {sid!r} is stale: its owner (pid {header.owner_pid}) is dead")
    except BaseException:
        seg.close()
        raise
    return seg, header


def list_sessions() -> list[SessionInfo]:
    """The live sessions on this host that this user can read, by name.

    Sessions whose owner died are left out, and left alone (remove_stale_sessions
    removes them); so are segments of another layout version. Nothing is locked
    or written: `members` is a count read without the lock.
    """
    out = []
    for sid in _session_ids():
        try:
            seg, header = _open_live(sid)
        except (_NotLive, errors.SegmentError):
            continue
        try:
            members = count_entries(seg.map)
        finally:
            seg.close()
        out.append(SessionInfo(sid, header.owner_pid, header.created_ns,
                               str(uuid.UUID(bytes=header.run_id)), members))
    return out


def not_found(why: str) -> errors.SessionNotFound:
    """A SessionNotFound that says why, and names the sessions that do live."""
    live = [s.name for s in list_sessions()]
    listing = ", ".join(map(repr, live)) if live else "none"
    return errors.SessionNotFound(errno.ENOENT, f"{why}; live sessions on this host: {listing}")


# ---- one session ----

def inspect(session_name: str) -> SessionSnapshot:
    """A snapshot of the live session `session_name`, taken without joining it.

    Raises SessionNotFound, naming the live sessions, if there is no such session
    or its owner is dead; SegmentError if the segment of that name is not a
    session of this user and layout. Safe from any process of the same user at
    any time. The copy waits for the directory's flock, as every reader of it
    does; a writer holds it for the length of one change."""
    sid = names.check_session_id(session_name)
    try:
        seg, _ = _open_live(sid)
    except _NotLive as exc:
        raise not_found(str(exc)) from None
    try:
        seg.lock(exclusive=False)  # writers hold it exclusively: a copy of one moment
        try:
            image = seg.map[:SESSION_SIZE]
        finally:
            seg.unlock()
    finally:
        seg.close()
    return snapshot(sid, image)


def snapshot(sid: str, image: bytes) -> SessionSnapshot:
    """The snapshot of a session from `image`, a copy of its segment taken under
    the flock, and from its inboxes' rings."""
    header = read_header(image)
    entries = read_entries(image, sid)
    inboxes = {e.token: e.name for e in entries}
    return SessionSnapshot(
        name=sid, owner_pid=header.owner_pid, created_ns=header.created_ns,
        run_id=str(uuid.UUID(bytes=header.run_id)), generation=header.generation,
        members=tuple(MemberInfo(e.name, e.owner_pid, e.class_name, e.state, e.token,
                                 e.restarts, e.placeholder) for e in entries),
        inboxes=tuple(info for e in entries if (info := _inbox_info(sid, e)) is not None),
        subscriptions=tuple(read_subscriptions(image, sid, inboxes)),
        publishers=tuple(read_publishers(image, sid, inboxes)))


def _inbox_info(sid: str, entry) -> InboxInfo | None:
    """The counters of one inbox's ring, or None if it closed since the copy (or
    is a placeholder, which has no ring)."""
    if entry.placeholder:
        return None
    where = f"inbox {entry.name!r} of session {sid!r}"
    try:
        seg = segment.Segment.open(names.inbox_segment(sid, entry.token), what=where,
                                   min_size=ring_mod.segment_size(entry.capacity, 1),
                                   read_only=True)
    except FileNotFoundError:
        return None
    try:
        s = ring_mod.read_statistics(seg.map, where)
    finally:
        seg.close()
    return InboxInfo(entry.name, entry.token, s.capacity, s.used, s.max_length, s.producers,
                     s.sent, s.dropped, s.blocked, s.received, s.skipped_claims, s.closed)
