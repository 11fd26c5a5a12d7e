"""What a main's bridge and an `ether agent` say to each other, and where
(docs/design/remote-launch.md).

    ether/<site>/agent/<host>/req/<name>      a request to the agent of <host> from the
                                              certificate named <name> (zenoh's ACL
                                              lets only that certificate query it)
    ether/<site>/agent/<host>/ev/<session%>   what the agent says of the instances it
                                              runs for the main's session <session>
    ether/<site>/live/<host>/agent/<zid>      the agent of <host> is there (liveliness;
                                              declared after its queryable)

Every message is a MessagePack map checked against its type here (msgspec):
data only. A launch carries the instances' config (class paths, args, kwargs,
supervision keys), never code, never a pickle; the agent validates it as any
config (ether.config) before it runs anything.

The agent and the session it hosts (_hosted.py) talk over a pipe in frames: a
4-byte length, then one MessagePack map.
"""
from __future__ import annotations

import os
import re
import struct
from typing import Literal

import msgspec

from ._keys import encode

__all__ = ["AgentKeys", "Request", "Reply", "Event", "EVENTS", "encode_msg", "decode_request",
           "decode_reply", "decode_event", "write_frame", "read_frame"]

#: The lifecycle events an agent passes on (the hosted session's ether/log events).
EVENTS = ("exited", "restarting", "ready", "restarted", "failed", "gone")
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_FRAME = 64 << 20


class AgentKeys:
    def __init__(self, site: str):
        self.root = f"ether/{site}/agent"
        self.live_root = f"ether/{site}/live"

    def agent_live(self, host: str, zid: str = "*") -> str:
        return f"{self.live_root}/{host}/agent/{zid}"

    def request(self, host: str, name: str) -> str:
        return f"{self.root}/{host}/req/{name}"

    def requests_of(self, host: str) -> str:
        return f"{self.root}/{host}/req/*"

    def requester(self, key: str, host: str) -> str | None:
        """The certificate name a request key of `host` names; None if it names none
        (a wildcard, a malformed key)."""
        prefix = f"{self.root}/{host}/req/"
        name = key[len(prefix):] if key.startswith(prefix) else ""
        return name if _NAME.fullmatch(name) else None

    def events(self, host: str, session: str) -> str:
        return f"{self.root}/{host}/ev/{encode(session)}"

    def events_for(self, session: str) -> str:
        return f"{self.root}/*/ev/{encode(session)}"

    def host_of_events(self, key: str) -> str | None:
        parts = key[len(self.root) + 1:].split("/") if key.startswith(self.root + "/") else []
        return parts[0] if len(parts) == 3 and parts[1] == "ev" and _NAME.fullmatch(parts[0]) else None


class _Msg(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class Request(_Msg):
    op: Literal["launch", "stop"]
    session: str                 # the main's session: what the hosted session is for
    main_host: str               # the main's bridge host: its liveliness is the main's
    config: dict = {}            # launch: instances, supervision, registry, shutdown_timeout_s
    timeout: float = 30.0        # launch: the start timeout; stop: the shutdown's limit
    graceful: bool = True        # stop: drain and save_all first


class Reply(_Msg):
    ok: bool
    error: str = ""              # what went wrong, for the main's error
    reason: str = ""             # why a request was refused (refusals only)
    session: str = ""            # the hosted session's name
    instances: dict[str, int] = {}   # name -> pid


class Event(_Msg):
    event: str
    name: str
    text: str = ""
    restarts: int = 0
    pid: int = 0


_encoder = msgspec.msgpack.Encoder()
_requests = msgspec.msgpack.Decoder(Request)
_replies = msgspec.msgpack.Decoder(Reply)
_events = msgspec.msgpack.Decoder(Event)


def encode_msg(message) -> bytes:
    return _encoder.encode(message)


def _decode(decoder, data: bytes, what: str):
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        raise ValueError(f"a malformed {what}: {exc}") from None


def decode_request(data: bytes) -> Request:
    return _decode(_requests, data, "launch request")


def decode_reply(data: bytes) -> Reply:
    return _decode(_replies, data, "reply from an agent")


def decode_event(data: bytes) -> Event:
    return _decode(_events, data, "event from an agent")


def write_frame(stream, obj) -> None:
    data = _encoder.encode(obj)
    stream.write(struct.pack(">I", len(data)) + data)
    stream.flush()


def read_frame(stream):
    """The next frame's object; None at the end of the stream. `stream` is a
    binary file, or a file descriptor (an int), read with os.read: a thread
    blocked in a buffered file's read holds its lock, and a child forked
    meanwhile (an instance's restart) would hang closing its copy of stdin."""
    read = (lambda n: _read_fd(stream, n)) if isinstance(stream, int) else stream.read
    head = read(4)
    if len(head) < 4:
        return None
    size, = struct.unpack(">I", head)
    if size > MAX_FRAME:
        raise ValueError(f"a frame of {size} bytes")
    data = read(size)
    if len(data) < size:
        return None
    return msgspec.msgpack.decode(data)


def _read_fd(fd: int, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
