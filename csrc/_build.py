"""Out-of-line API-mode cffi build of the C core into ``ether._ether_c``.

``ETHER_SANITIZE=address`` (ASan + UBSan) or ``ETHER_SANITIZE=thread`` (TSan)
compiles the core with sanitizers; see docs/design/sanitizers.md for the run.
"""
import os
import pathlib
import shutil
import sysconfig

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
SOURCES = ["ether_ring.c", "ether_atomic.c", "ether_arena.c", "ether_process.c"]


def _require_compiler() -> None:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None and shutil.which("cc") is None:
        raise SystemExit(
            "ether: building the C core needs a C compiler, and none was found "
            f"(looked for {cc!r} and 'cc'). Install one, e.g. "
            "'apt-get install gcc' (Debian/Ubuntu), 'dnf install gcc' (Fedora) or "
            "'xcode-select --install' (macOS), then rerun pip install."
        )


def _flags() -> tuple[list[str], list[str]]:
    compile_args = ["-std=c11", "-O2", "-Wall", "-Wextra", "-fno-strict-aliasing"]
    link_args: list[str] = []
    mode = os.environ.get("ETHER_SANITIZE", "").strip()
    if mode == "address":
        san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
    elif mode == "thread":
        san = ["-fsanitize=thread", "-fno-omit-frame-pointer"]
    elif mode:
        raise SystemExit(f"ether: ETHER_SANITIZE={mode!r} is not one of 'address', 'thread'")
    else:
        san = []
    if san:
        compile_args = [a for a in compile_args if a != "-O2"] + ["-O1", "-g"] + san
        link_args += san
    return compile_args, link_args


_require_compiler()
ffibuilder = FFI()
ffibuilder.cdef((HERE / "ether_cdef.h").read_text())
_compile_args, _link_args = _flags()
ffibuilder.set_source(
    "ether._ether_c",
    '#include "ether_ring.h"\n#include "ether_ring_layout.h"\n#include "ether_atomic.h"\n'
    '#include "ether_arena.h"\n#include "ether_arena_layout.h"\n#include "ether_process.h"\n',
    sources=[str(HERE / s) for s in SOURCES],
    include_dirs=[str(HERE)],
    extra_compile_args=_compile_args,
    extra_link_args=_link_args,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
