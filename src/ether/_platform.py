"""Where sessions can run. The decorators and plain classes work on any platform
the package imports on; the transport needs Linux (futexes, /dev/shm, flock on
shared memory), and says so before anything of it is loaded."""
from __future__ import annotations

import sys

from ._errors import EtherError

__all__ = ["require_platform", "SUPPORTED"]

SUPPORTED = ("linux",)


def require_platform(what: str) -> None:
    if not sys.platform.startswith(SUPPORTED):
        raise EtherError(
            f"{what}: Ether's sessions run on Linux, and this is {sys.platform!r}. The decorators "
            f"work here (decorated classes stay plain classes), but no session can start")
