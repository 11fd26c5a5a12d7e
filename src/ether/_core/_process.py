"""The C core's one call about the process itself (csrc/ether_process.h): the
parent-death signal an instance asks for, without importing ctypes (about 10 ms
of every instance's start)."""
from __future__ import annotations

from .._ether_c import lib

__all__ = ["set_parent_death_signal"]


def set_parent_death_signal(signum: int) -> bool:
    """Ask the kernel for `signum` when this process's parent exits; False if it
    cannot (not Linux)."""
    return lib.ether_parent_death_signal(int(signum)) == 0
