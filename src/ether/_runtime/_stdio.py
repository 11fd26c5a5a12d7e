"""Instance output: each complete line reaches the shared stdout/stderr in one
write(), so lines from different processes never interleave mid-line.

(Python's print() writes the text and the newline separately, even when line
buffered; on a pipe shared by several processes another line can land between.)
"""
from __future__ import annotations

import io
import os
import threading


class LineWriter(io.TextIOBase):
    def __init__(self, fd: int, encoding: str = "utf-8"):
        self._fd = fd
        self._encoding = encoding
        self._pending: list[str] = []
        self._lock = threading.Lock()  # print() from several threads

    @property
    def encoding(self) -> str:
        return self._encoding

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def write(self, text: str) -> int:
        with self._lock:
            if "\n" not in text:
                self._pending.append(text)
                return len(text)
            head, _, tail = text.rpartition("\n")
            self._pending.append(head + "\n")
            data = "".join(self._pending)
            self._pending = [tail] if tail else []
            self._write(data)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                data, self._pending = "".join(self._pending), []
                self._write(data)

    def _write(self, data: str) -> None:
        view = memoryview(data.encode(self._encoding, "replace"))
        while view:
            try:
                written = os.write(self._fd, view)
            except InterruptedError:
                continue
            except OSError:
                return  # the reader is gone (closed pipe): drop, never crash the instance
            view = view[written:]


def install() -> None:
    """Route this process's sys.stdout and sys.stderr through LineWriters."""
    import sys
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass
        setattr(sys, name, LineWriter(fd, getattr(stream, "encoding", None) or "utf-8"))
