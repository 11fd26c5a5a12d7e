"""Write-behind for a recording file, in a thread of its own.

Each time WRITE_BEHIND more bytes are in the file, the thread asks the kernel
to start writing them back (`posix_fadvise(DONTNEED)` starts the writeback of
dirty pages without waiting for it), waits for them with `fdatasync`, and drops
from the page cache the pages DROP_LAG behind the end, written back by then.
So a long recording holds about DROP_LAG of page cache instead of everything
it wrote; the kernel reuses the dropped pages at once (on a VM whose freed
memory goes back to the host, new page cache costs 5-10x more to fill:
docs/design/recording.md, "Frames"), and the writer's fsyncs, the close's
above all, find little left to write. The fdatasync is what makes the disk
(and a VM's host, which persists the guest's writes only when flushed) work
while the recording goes on: starting the writeback alone left 0.25 s of a
200 MiB burst to the close's fsync, against 0.02-0.05 s with it.

Nothing else rests on it: a page still being written when its drop comes
stays cached, and the writer's fsyncs are unchanged. A writeback error that
its fdatasync sees is reported once per open file, so the thread keeps it
(`error`) and the writer's next sync or close raises it. It runs in its own
thread so the thread that reads the inbox never waits for the disk.
"""
from __future__ import annotations

import os
import threading

__all__ = ["WriteBehind", "WRITE_BEHIND", "DROP_LAG", "available"]

#: Start the writeback each time this many new bytes are in the file...
WRITE_BEHIND = 8 << 20
#: ... and drop from the page cache what lies this far behind the end.
DROP_LAG = 32 << 20
_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", None)


def available() -> bool:
    return _DONTNEED is not None


class WriteBehind:
    def __init__(self, fd: int, lock: threading.Lock, name: str = "ether-write-behind"):
        """fd: the file; lock: held by whoever closes fd (then stop() first), so
        the thread never advises a closed (or reused) descriptor."""
        self._fd, self._lock, self._name = fd, lock, name
        self.started = 0          # writeback started up to here
        self.dropped = 0          # page cache dropped up to here
        self._asked = 0           # the end the writer last reported
        self.error: OSError | None = None   # what a fdatasync of this thread saw
        self._stopped = False
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def advance(self, end: int) -> None:
        """The writer's call after each write (end: the file's size): cheap
        unless WRITE_BEHIND more bytes came since the last wake-up."""
        if end - self._asked < WRITE_BEHIND or self._stopped:
            return
        self._asked = end
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        """With the lock held, before fd is closed."""
        self._stopped = True
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                if self._stopped:
                    return
                end = self._asked
                try:
                    os.posix_fadvise(self._fd, self.started, end - self.started, _DONTNEED)
                except OSError:       # a hint the file system refuses: write as before
                    self._stopped = True
                    return
                self.started = end
                try:
                    os.fdatasync(self._fd)
                except OSError as exc:   # the writer's next sync or close raises it
                    self.error = exc
                    self._stopped = True
                    return
                if end - DROP_LAG > self.dropped:   # written back by now: drop it
                    try:
                        os.posix_fadvise(self._fd, self.dropped, end - DROP_LAG - self.dropped,
                                         _DONTNEED)
                    except OSError:
                        self._stopped = True
                        return
                    self.dropped = end - DROP_LAG
