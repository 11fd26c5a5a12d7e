"""Samples one inbox's `received` counter every 5 ms, in its own process, until
its stdin closes, as `monotonic_seconds received` lines into a file.

The recorder-kill tests time their loss window against it. In the test's own
process, a sampler thread waits for the GIL behind the test's file scans, and
a gap in its samples reads as loss (measured: gaps of 0.07-0.2 s on a loaded
2-core machine); a process of its own is only delayed by the scheduler.

    python tests/inbox_sampler.py SESSION INBOX OUT
"""
import select
import sys
import time

from ether.lowlevel import inspect


def main(session: str, inbox: str, path: str) -> None:
    out = open(path, "w")
    print("ready", flush=True)
    while not select.select([sys.stdin], [], [], 0.005)[0]:
        try:
            info = next(i for i in inspect(session).inboxes if i.name == inbox)
        except StopIteration:
            continue                       # not created yet, or gone
        except Exception:                  # the session closing
            break
        out.write(f"{time.monotonic():.6f} {info.received}\n")
    out.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
