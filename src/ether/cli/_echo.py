"""``ether echo TOPIC|PATTERN [--once] [-n N] [--field a.b] [--json] [--full]``:
print a topic's messages as they arrive. No type information is needed (the
wire format describes itself); arrays are summarised (dtype, shape, min, max,
mean) unless --full. The subscription drops rather than waits when echo falls
behind, so watching never slows a publisher; what it missed is printed at the
end (on stderr)."""
from __future__ import annotations

import argparse
import json
import queue
import sys

from ._common import describe, CommandError, add_json, add_session, attach, session_of

__all__ = ["add_parser"]


def add_parser(sub) -> None:
    parser = sub.add_parser("echo", help="print a topic's messages (or a pattern's)",
                            **describe(__doc__))
    parser.add_argument("topic", metavar="TOPIC|PATTERN")
    add_session(parser)
    add_json(parser)
    parser.add_argument("--once", action="store_true", help="print one message and exit")
    parser.add_argument("-n", type=int, default=None, metavar="N", help="print N messages and exit")
    parser.add_argument("--field", default=None, metavar="A.B", help="print only this part of each message")
    parser.add_argument("--full", action="store_true", help="print arrays in full")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="exit after this long without a message (exit code 1 if none came)")
    parser.set_defaults(command=run, verb="echo")


def run(args: argparse.Namespace) -> int:
    from ether import monitor
    limit = 1 if args.once else args.n
    if limit is not None and limit < 1:
        raise CommandError(f"-n must be at least 1, not {limit}")
    session = session_of(args)
    out: queue.SimpleQueue = queue.SimpleQueue()
    shown = 0
    with attach(session, "echo") as client:
        decode = client.node.decoders.payload_dict

        def on(envelope) -> None:
            # In the reader thread, while the message's arrays are held: copy out now.
            try:
                value = monitor.plain(monitor.pick(decode(envelope), args.field), full=args.full)
            except monitor.FieldMissing as exc:
                value = {"error": str(exc)}
            except Exception as exc:  # a payload this process cannot decode
                value = {"error": f"cannot decode: {type(exc).__name__}: {exc}"}
            out.put({"topic": envelope.topic, "sender": envelope.sender, "seq": envelope.seq,
                     "time_ns": envelope.time_ns, "data": value})

        client.subscribe(args.topic, on, policy="drop", envelopes=True)
        try:
            while limit is None or shown < limit:
                try:
                    item = out.get(timeout=args.timeout)
                except queue.Empty:
                    break
                _print(item, args)
                shown += 1
        finally:
            dropped = client.node.inbox.statistics().dropped
            if dropped:
                print(f"ether echo: {dropped} message(s) dropped (echo fell behind)", file=sys.stderr)
    return 0 if shown or args.timeout is None else 1


def _print(item: dict, args) -> None:
    if args.json:
        sys.stdout.write(json.dumps(item) + "\n")
    else:
        data = item["data"]
        text = data if isinstance(data, str) else json.dumps(data)
        sys.stdout.write(f"[{item['topic']}] {item['sender']}#{item['seq']}: {text}\n")
    sys.stdout.flush()
