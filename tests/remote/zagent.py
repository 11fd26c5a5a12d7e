"""A zenoh session driven over stdin/stdout, for the security tests: run on a
simulated host (``Host.python(zagent.py, CONFIG_JSON)``), it opens a session with
that config and answers one JSON command per line with one JSON line (after ``@zagent ``):

    {"op": "sub", "key": K}                        -> {"ok": true}; then {"ev": "sample", ...}
    {"op": "queryable", "key": K, "reply": TEXT}   -> {"ok": true}
    {"op": "put", "key": K, "payload": TEXT}       -> {"ok": true}
    {"op": "get", "key": K, "timeout": S, "hex": B, "payload_hex": H}
                                                   -> {"replies": [TEXT...], "errors": N}
                                                      (hex: each payload in hex, not text;
                                                      payload_hex: the query's payload)
    {"op": "wait_peer", "timeout": S}              -> {"peers": [{"zid", "cn"}...]}
    {"op": "wait_count", "count": N, "timeout": S} -> {"peers": [...], "at": T} once N
                                                      are linked; T: time.time() of the last link change
    {"op": "wait_match", "key": K, "timeout": S}   -> {"matching": bool} (remote subscribers)
    {"op": "quit"}                                 -> {"ok": true}, then it exits

Every reply echoes the command's "id". The first line is {"ev": "ready", "zid"}
or {"ev": "error", "error": TEXT} when the session cannot open. This is test
tooling: it runs as a script, imports zenoh, and never imports ether.
"""
import json
import sys
import threading
import time

import zenoh

_out = threading.Lock()
MARK = "@zagent "  # zenoh's own log may share stdout


def emit(obj):
    with _out:
        sys.stdout.write(MARK + json.dumps(obj) + "\n")
        sys.stdout.flush()


def peers(session):
    found = {}
    for link in session.info.links():
        found[str(link.zid)] = link.auth_identifier
    return [{"zid": z, "cn": cn} for z, cn in sorted(found.items())]


def main():
    zenoh.try_init_log_from_env()
    try:
        session = zenoh.open(zenoh.Config.from_json5(sys.argv[1]))
    except Exception as e:  # noqa: BLE001 (reported to the test)
        emit({"ev": "error", "error": str(e)})
        return 1
    keep = []  # declared entities live as long as the session
    changed = threading.Condition()

    last_change = [0.0]

    def on_transport(event):
        with changed:
            last_change[0] = time.time()  # the wall clock: the test compares its own
            changed.notify_all()

    keep.append(session.info.declare_transport_events_listener(on_transport))
    emit({"ev": "ready", "zid": str(session.zid())})
    for line in sys.stdin:
        cmd = json.loads(line)
        op, reply = cmd["op"], {"id": cmd.get("id")}
        if op == "sub":
            def on_sample(sample, key=cmd["key"]):
                emit({"ev": "sample", "sub": key, "key": str(sample.key_expr),
                      "payload": sample.payload.to_string()})
            keep.append(session.declare_subscriber(cmd["key"], on_sample))
            reply["ok"] = True
        elif op == "queryable":
            def on_query(query, text=cmd["reply"]):
                query.reply(query.key_expr, text)
            keep.append(session.declare_queryable(cmd["key"], on_query))
            reply["ok"] = True
        elif op == "put":
            session.put(cmd["key"], cmd["payload"])
            reply["ok"] = True
        elif op == "get":
            replies, errors = [], 0
            payload = bytes.fromhex(cmd["payload_hex"]) if "payload_hex" in cmd else None
            for r in session.get(cmd["key"], payload=payload, timeout=cmd.get("timeout", 2.0)):
                if r.ok is not None:
                    data = r.ok.payload.to_bytes()
                    replies.append(data.hex() if cmd.get("hex") else data.decode())
                else:
                    errors += 1
            reply.update(replies=replies, errors=errors)
        elif op == "wait_peer":
            with changed:
                changed.wait_for(lambda: peers(session), timeout=cmd["timeout"])
            reply["peers"] = peers(session)
        elif op == "wait_count":  # until exactly `count` peers are linked
            with changed:
                changed.wait_for(lambda: len(peers(session)) == cmd["count"],
                                 timeout=cmd["timeout"])
                reply["at"] = last_change[0]
            reply["peers"] = peers(session)
        elif op == "wait_match":
            # Remote subscribers only: the agent's own must not count.
            publisher = session.declare_publisher(cmd["key"],
                                                  allowed_destination=zenoh.Locality.REMOTE)
            keep.append(publisher)
            matched = threading.Event()

            def on_match(status):
                if status.matching:
                    matched.set()
            keep.append(publisher.declare_matching_listener(on_match))
            reply["matching"] = publisher.matching_status.matching or matched.wait(cmd["timeout"])
        elif op == "quit":
            reply["ok"] = True
            emit(reply)
            break
        else:
            reply["error"] = f"unknown op {op!r}"
        emit(reply)
    keep.clear()
    session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
