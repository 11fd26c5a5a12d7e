"""Named shared-memory segments: create, open, validate, lock, unlink.

Segments are POSIX shared-memory objects made through posix_ipc, always with
O_EXCL and mode 0600. `unlink` below is the only place that removes one.
A member proves it is alive by holding an exclusive ``flock`` on its lock
segment; the kernel drops the lock when the process dies, however it dies. A
lock segment is flocked before its name appears (`Segment.create_locked`), so
an unlocked one is always a dead member's.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import stat
import sys
import threading
import time

import posix_ipc

from .. import _errors as errors

SHM_DIR = "/dev/shm"
# Maps that Segment.close leaves to a thread, per thread inside unmap_later().
_later = threading.local()
_unmapping: list[threading.Thread] = []   # unmap_later's threads not yet joined


def unlink(name: str) -> bool:
    """Remove a named segment; False if it was already gone."""
    try:
        posix_ipc.unlink_shared_memory(name)
        return True
    except posix_ipc.ExistentialError:
        return False


def list_names() -> list[str]:
    """Names ('/'-prefixed) of the Ether objects present on this host."""
    try:
        entries = os.listdir(SHM_DIR)
    except FileNotFoundError:  # pragma: no cover - non-Linux
        return []
    return ["/" + e for e in entries if e.startswith("ether_")]


def free_bytes() -> int | None:
    """Bytes available in /dev/shm, or None where it cannot be told."""
    try:
        st = os.statvfs(SHM_DIR)
    except FileNotFoundError:  # pragma: no cover - non-Linux
        return None
    return st.f_bavail * st.f_frsize


def check_space(required: int, what: str) -> None:
    """Fail early when /dev/shm cannot hold `required` more bytes."""
    try:
        st = os.statvfs(SHM_DIR)
    except FileNotFoundError:  # pragma: no cover - non-Linux
        return
    available = st.f_bavail * st.f_frsize
    if available < required:
        raise errors.ShmSpaceError(
            errno.ENOSPC,
            f"{what} needs {required} bytes of shared memory but {SHM_DIR} has only "
            f"{available} available; free some, or enlarge it (e.g. docker run "
            f"--shm-size=1g, or mount -o remount,size=2G {SHM_DIR})")


@contextlib.contextmanager
def unmap_later():
    """Within, this thread's Segment.close() calls leave their unmapping to a
    thread started at the end: unmapping the last map of an unlinked segment frees
    its pages, 1-2 ms per touched ring here (an arena's up to its size), and a
    shutdown need not wait for that (the names are gone already; munmap releases
    the GIL)."""
    maps = _later.maps = []
    try:
        yield
    finally:
        _later.maps = None
        if maps:
            thread = threading.Thread(target=_unmap, args=(maps,), name="ether-unmap", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # at interpreter exit (3.12 refuses new threads there)
                _unmap(maps)
            else:
                _unmapping[:] = [t for t in _unmapping if t.is_alive()] + [thread]


def unmapped(timeout: float) -> bool:
    """Wait up to `timeout` seconds until what unmap_later left is unmapped."""
    deadline = time.monotonic() + timeout
    for thread in list(_unmapping):
        thread.join(max(0.0, deadline - time.monotonic()))
    return not any(t.is_alive() for t in _unmapping)


def _unmap(maps: list) -> None:
    for m in maps:
        try:
            m.close()
        except BufferError:  # a view is still exported; the kernel unmaps at exit
            pass


class Segment:
    """One named shared-memory object, its fd, and (if sized) its mapping."""

    __slots__ = ("name", "fd", "map", "size", "reserved")

    def __init__(self, name: str, fd: int, size: int, writable: bool = True):
        self.name = name
        self.fd = fd
        self.size = size
        self.reserved = 0   # bytes from 0 backed by pages we reserved (created ones)
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        self.map = mmap.mmap(fd, size, prot=prot) if size else None

    @classmethod
    def create(cls, name: str, size: int, *, what: str, reserve: int | None = None) -> "Segment":
        """Create a new segment of `size` bytes (O_EXCL, 0600), backed by reserved
        pages: all of them, or with `reserve`, the first `reserve` bytes (the
        owner reserves the rest with reserve() before anything writes there; a
        write to a page tmpfs cannot back is a SIGBUS, a reservation that fails
        is an error)."""
        if size:
            check_space(size, what)
        try:
            shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600)
        except posix_ipc.ExistentialError:
            raise errors.SegmentError(errno.EEXIST, f"{what}: segment {name} already exists") from None
        fd = shm.fd
        seg = None
        try:
            os.fchmod(fd, 0o600)  # the umask may have narrowed it; never widened
            seg = cls(name, fd, 0)
            seg.size = size
            if size:
                first = size if reserve is None else min(size, reserve)
                if first < size:
                    os.ftruncate(fd, size)
                if not seg.reserve(0, first, what=what):
                    os.ftruncate(fd, size)   # no fallocate here: nothing to reserve ahead
                    seg.reserved = size
                prot = mmap.PROT_READ | mmap.PROT_WRITE
                seg.map = mmap.mmap(fd, size, prot=prot)
            return seg
        except BaseException:
            if seg is not None:
                seg.fd = -1   # closed here, not again by its __del__
            os.close(fd)
            unlink(name)
            raise

    def reserve(self, offset: int, length: int, *, what: str) -> bool:
        """Back [offset, offset + length) with pages and, [0, offset) being
        reserved, count `reserved` up to its end. False if the file system cannot
        reserve (then writes allocate as they go); ShmSpaceError if /dev/shm has
        no room."""
        try:
            os.posix_fallocate(self.fd, offset, length)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.ENOMEM):
                avail = os.statvfs(SHM_DIR).f_bavail * os.statvfs(SHM_DIR).f_frsize
                raise errors.ShmSpaceError(
                    exc.errno, f"{what} needs {self.size} bytes of shared memory but "
                    f"{SHM_DIR} could not reserve bytes {offset}-{offset + length} of them "
                    f"({avail} bytes available); enlarge {SHM_DIR} (e.g. docker "
                    f"--shm-size)") from None
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            return False
        self.reserved = max(self.reserved, offset + length)
        return True

    @classmethod
    def create_locked(cls, name: str, *, what: str) -> "Segment":
        """Create a new empty segment that is already exclusively flocked by this
        process when its name appears: a liveness lock.

        A lock created by name and flocked afterwards would be, for the instant in
        between, indistinguishable from a dead member's: a stale-session sweep in
        another process could lock it, judge its session dead and remove it. So
        the object is made without a name (O_TMPFILE in the shm directory, where
        shm_open looks for it), flocked, and only then linked under `name`;
        linkat fails with EEXIST if the name is taken, like O_EXCL. Until the link
        nothing can find it, and if the process dies first it simply vanishes.
        """
        try:
            fd = os.open(SHM_DIR, os.O_TMPFILE | os.O_RDWR, 0o600)
        except OSError as exc:
            raise errors.SegmentError(
                exc.errno, f"{what}: cannot create an unnamed object in {SHM_DIR} "
                f"(O_TMPFILE: {exc.strerror}); Ether needs Linux >= 3.11 with {SHM_DIR} "
                f"on tmpfs") from None
        try:
            os.fchmod(fd, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody else can reach it yet
            directory = os.open(SHM_DIR, os.O_RDONLY | os.O_DIRECTORY)
            try:
                # With a dir fd, os.link is linkat(AT_SYMLINK_FOLLOW): it links the
                # object the /proc magic link points at (link(2) would not follow it).
                os.link(f"/proc/self/fd/{fd}", name.lstrip("/"), dst_dir_fd=directory)
            except FileExistsError:
                raise errors.SegmentError(errno.EEXIST, f"{what}: segment {name} already exists") from None
            finally:
                os.close(directory)
            return cls(name, fd, 0)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def open(cls, name: str, *, what: str, min_size: int = 0, map_it: bool = True,
             read_only: bool = False) -> "Segment":
        """Open an existing segment and check that it is ours: owner, mode and size.
        read_only: open and map it for reading only (an inspector's view)."""
        try:
            shm = posix_ipc.SharedMemory(name, read_only=read_only)
        except posix_ipc.ExistentialError:
            raise FileNotFoundError(errno.ENOENT, f"{what}: segment {name} does not exist") from None
        except posix_ipc.PermissionsError:
            raise errors.SegmentError(errno.EACCES, f"{what}: no permission to open {name}") from None
        fd = shm.fd
        try:
            st = os.fstat(fd)
            if st.st_uid != os.getuid():
                raise errors.SegmentError(
                    errno.EPERM, f"{what}: {name} belongs to uid {st.st_uid}, not to this "
                    f"user (uid {os.getuid()})")
            if stat.S_IMODE(st.st_mode) & 0o077:
                raise errors.SegmentError(
                    errno.EPERM, f"{what}: {name} has mode {stat.S_IMODE(st.st_mode):o}; "
                    f"Ether segments are 600")
            if st.st_size < min_size:
                raise errors.SegmentError(
                    errno.EINVAL, f"{what}: {name} is {st.st_size} bytes, expected at "
                    f"least {min_size}")
            return cls(name, fd, st.st_size if map_it else 0, writable=not read_only)
        except BaseException:
            os.close(fd)
            raise

    def lock(self, exclusive: bool = True, blocking: bool = True) -> bool:
        """flock this segment's fd; False if non-blocking and someone else holds it."""
        op = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if blocking else fcntl.LOCK_NB)
        try:
            fcntl.flock(self.fd, op)
            return True
        except BlockingIOError:
            return False

    def unlock(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def linked(self) -> bool:
        """True while the name still points at this object."""
        return os.fstat(self.fd).st_nlink > 0

    def __del__(self) -> None:
        # A segment dropped without close() (a reader's mapping of an arena, which
        # lives as long as the last view of it) still gives back its descriptor: an
        # open descriptor keeps an unlinked object's memory from the tmpfs.
        fd = getattr(self, "fd", -1)
        if fd >= 0:
            self.fd = -1
            try:
                os.close(fd)
            except OSError:
                pass

    def close(self) -> None:
        """Unmap and close; the name is left alone (see `unlink`)."""
        if self.map is not None:
            later = getattr(_later, "maps", None)
            if later is not None:
                later.append(self.map)
            else:
                _unmap((self.map,))
            self.map = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def holder_alive(name: str) -> bool:
    """True while some process holds the flock on segment `name`.

    If nobody holds it, the segment is stale: it is unlinked here, while we hold
    the lock, so the check and the removal cannot race a second cleaner.
    """
    try:
        seg = Segment.open(name, what="liveness check", map_it=False)
    except FileNotFoundError:
        return False
    except errors.SegmentError:
        return True  # not ours to judge or remove
    try:
        if not seg.lock(blocking=False):
            return True
        if seg.linked():
            unlink(name)
        return False
    finally:
        seg.close()


def lock_held(name: str) -> bool:
    """True while some process holds the flock on segment `name`. Unlike
    `holder_alive`, it removes nothing, whatever it finds: what an inspector asks.

    It probes with a shared, non-blocking flock. Against a live holder's
    exclusive lock that fails at once and changes nothing. On a lock nobody
    holds, it holds a shared one for two system calls; a cleaner probing the same
    dead lock in that instant takes it for alive and leaves it to its next pass.
    """
    try:
        seg = Segment.open(name, what="liveness check", map_it=False, read_only=True)
    except FileNotFoundError:
        return False
    except errors.SegmentError:
        return True  # not ours to judge
    try:
        if not seg.lock(exclusive=False, blocking=False):
            return True
        seg.unlock()
        return False
    finally:
        seg.close()


if sys.platform != "linux":  # pragma: no cover
    raise ImportError("ether: the shared-memory transport runs on Linux so far (macOS is on the roadmap)")
