"""A raw zenoh peer (no Ether) that sends malformed samples where a bridge listens
for topic data: `python tests/bridge_raw_peer.py ENDPOINT SITE TOPIC COUNT`.
Prints one JSON line with how many it sent of each kind, then stays connected
until its stdin closes. Run in its own process:
zenoh must never be loaded in the test runner, which forks."""
from __future__ import annotations

import json
import pickle
import struct
import sys
import threading

import msgspec
import zenoh


def main() -> None:
    endpoint, site, topic, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    config = {"mode": "peer", "listen": {"endpoints": []}, "connect": {"endpoints": [endpoint]},
              "scouting": {"multicast": {"enabled": False}, "gossip": {"enabled": False}},
              # as the bridges have it: zenoh's shared-memory transport would leave a
              # <n>.zenoh file in the host's /dev/shm when the test kills this process
              "transport": {"shared_memory": {"enabled": False}}}
    session = zenoh.open(zenoh.Config.from_json5(json.dumps(config)))
    key = f"ether/{site}/t/{topic}"
    enc = msgspec.msgpack.encode
    run = b"r" * 16
    good_att = enc((1, 1, 0, "evil", run, 7))

    def frame(payload_bytes: bytes, **over) -> bytes:
        fields = [1, 0, topic, "intruder", 1, 0, None, None, None, msgspec.Raw(payload_bytes)]
        for i, v in over.items():
            fields[int(i[1:])] = v
        return enc(fields)

    def sample(frames: list[bytes]) -> bytes:   # a MessagePack array of the frames
        return struct.pack(">BI", 0xdd, len(frames)) + b"".join(frames)

    bad_array = enc({"a": msgspec.msgpack.Ext(1, enc(("<f4", [1000], b"\0" * 12)))})
    arena = enc({"a": msgspec.msgpack.Ext(2, b"\0" * 40)})
    kinds = {
        "truncated envelope": (sample([frame(enc({"x": 1}))[:-3]]), good_att),
        "wrong array length": (sample([frame(bad_array)]), good_att),
        "oversized length": (struct.pack(">BI", 0xdd, 1 << 30) + b"abc", good_att),
        "pickle payload": (sample([pickle.dumps({"x": object.__class__})]), good_att),
        "arena handle": (sample([frame(arena)]), good_att),
        "no attachment": (sample([frame(enc({"x": 1}))]), None),
        "bad attachment": (sample([frame(enc({"x": 1}))]), b"\xc1"),
        "count mismatch": (sample([frame(enc({"x": 1}))] * 2), good_att),
        "spoofed sender": (sample([frame(enc({"x": 1}), f3="gen1@hostA")]), good_att),
        "not a map": (sample([frame(enc([1, 2]))]), good_att),
    }
    publisher = session.declare_publisher(key, congestion_control=zenoh.CongestionControl.BLOCK)
    matched = threading.Event()
    listener = publisher.declare_matching_listener(lambda status: status.matching and matched.set())
    if publisher.matching_status.matching:
        matched.set()
    if not matched.wait(30):
        raise SystemExit("no subscriber of the topic within 30 s")
    sent: dict[str, int] = {k: 0 for k in kinds}
    names = list(kinds)
    for i in range(count):
        name = names[i % len(names)]
        payload, att = kinds[name]
        if att is None:
            publisher.put(payload)
        else:
            publisher.put(payload, attachment=att)
        sent[name] += 1
    print(json.dumps(sent), flush=True)
    sys.stdin.read()  # stay connected until the test has counted them (closing drops the queue)
    listener.undeclare()
    session.close()


if __name__ == "__main__":
    main()
