"""The main's side of remote launch, in its bridge (the process that holds zenoh;
docs/design/remote-launch.md).

The main asks its bridge by two services, `service:bridge.launch` and
`service:bridge.stop_remote`; each request becomes one zenoh query to the agent
of that host, on `ether/<site>/agent/<host>/req/<name>`, where `<name>` is this
host's certificate name (the only key zenoh's ACL lets this certificate
query), and its answer goes back as the service's reply. A query runs in a
thread of its own: the bridge's inbox keeps being read meanwhile. A launch
waits for the agent's liveliness token first, and asks again while a query
finds no agent (the agent answers a repeated launch with its first answer).

What the agents say of the instances they run for this session comes on
`ether/<site>/agent/*/ev/<session>`; each event goes to the main as a `remote`
control report (Member.remote). zenoh's ACL lets `agent/<host>/...` events in
only from the certificate named `<host>`.
"""
from __future__ import annotations

import logging
import threading
import time

import msgspec

from ether.lowlevel import launch_trace, request_of

from . import _agentwire as wire
from ._tokens import await_token

__all__ = ["Launcher"]

log = logging.getLogger("Ether")

RETRY_S = 0.1   # the first pause before a launch that met no agent asks again


def certificate_name(path) -> str | None:
    """The common name of the PEM certificate at `path` (None if it has none)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


class Launcher:
    def __init__(self, bridge):
        self.bridge = bridge
        self.node, self.z, self.member = bridge.node, bridge.z, bridge.member
        self.session = bridge.member.spec.session
        self.keys = wire.AgentKeys(bridge.config.site)
        self.identity = bridge.host
        security = bridge.config.security
        if security is not None:
            from ether.config import check_security_files
            files = check_security_files(security, bridge.base_dir)
            self.identity = certificate_name(files.cert) or bridge.host
        self._events = self.z.declare_subscriber(self.keys.events_for(self.session), self._on_event)
        self.node.add_service("service:bridge.launch", self._serve("launch"))
        self.node.add_service("service:bridge.stop_remote", self._serve("stop"))

    def _serve(self, op: str):
        def serve(envelope) -> None:
            request = request_of(envelope)
            threading.Thread(target=self._ask, args=(op, request, envelope.topic),
                             name=f"ether-bridge-{op}", daemon=True).start()
        return serve

    def _ask(self, op: str, request, topic: str) -> None:
        try:
            params = msgspec.msgpack.decode(request.params)
            host = str(params["host"])
            timeout = float(params.get("timeout", 30.0))
            message = wire.Request(op, self.session, self.bridge.host, params.get("config") or {},
                                   timeout, bool(params.get("graceful", True)))
            reply = self._query(host, message, timeout + wire_margin(op))
            result = msgspec.structs.asdict(reply)
        except Exception as exc:  # noqa: BLE001 - the main hears of it
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "reason": ""}
        self.node.reply(request, topic, {"status": "success", "instance": "bridge",
                                         "result": result})

    def _query(self, host: str, message: wire.Request, timeout: float) -> wire.Reply:
        """The agent's answer. A launch first waits for the agent's token (the link
        may still be coming up, or the agent starting), and asks again while time
        is left if a query finds no agent: zenoh ends a query that meets no
        queryable at once. A second launch of one session gets the first's answer."""
        key = self.keys.request(host, self.identity)
        deadline = time.monotonic() + timeout
        pause, missing = RETRY_S, "answered"
        while True:
            if message.op == "launch" and not self._await_agent(host, deadline):
                missing = "was seen"
                break
            launch_trace(f"bridge@{self.bridge.host}", f"{message.op} query to {host}")
            asked = message
            if message.op == "launch":
                # The agent's own wait: what is left of the caller's, not all of it
                # again (its answer would come after this query gave up).
                left = deadline - time.monotonic() - wire_margin("launch")
                asked = msgspec.structs.replace(message, timeout=max(0.1, min(message.timeout, left)))
            payload = wire.encode_msg(asked)
            reply = self._ask_once(key, payload, host, max(0.1, deadline - time.monotonic()))
            launch_trace(f"bridge@{self.bridge.host}", f"{message.op} reply from {host}")
            if reply is not None:
                return reply
            if message.op != "launch" or time.monotonic() + pause >= deadline:
                break
            time.sleep(pause)   # a pause before asking again, not a wait for an event
            pause = min(2 * pause, 1.0)
        return wire.Reply(False, error=(
            f"no agent {missing} within {timeout:g} s"), reason=(
            f"is `ether agent` running on {host!r}, linked to this host, and are this host's "
            f"certificate name {self.identity!r} and {host!r} in each other's allow_hosts?"))

    def _await_agent(self, host: str, deadline: float) -> bool:
        def waiting() -> None:
            log.info("bridge: the launch on host %r waits for its agent (none seen yet; "
                     "up to %.0f s)", host, max(0.0, deadline - time.monotonic()))
        return await_token(self.z, self.keys.agent_live(host),
                           max(0.0, deadline - time.monotonic()), waiting=waiting)

    def _ask_once(self, key: str, payload: bytes, host: str, timeout: float) -> wire.Reply | None:
        for reply in self.z.get(key, payload=payload, timeout=timeout):
            if reply.ok is not None:
                try:
                    return wire.decode_reply(reply.ok.payload.to_bytes())
                except ValueError as exc:   # an answer, unreadable: asking again would not help
                    log.warning("bridge: %s from host %r", exc, host)
                    return wire.Reply(False, error=f"its agent's answer could not be read: {exc}")
        return None

    def _on_event(self, sample) -> None:
        host = self.keys.host_of_events(str(sample.key_expr))
        try:
            event = wire.decode_event(sample.payload.to_bytes())
        except ValueError as exc:
            log.warning("bridge: %s (%s)", exc, sample.key_expr)
            return
        if host is None or event.event not in wire.EVENTS:
            return
        try:
            self.member.remote(host, event.event, event.name, event.text, max(0, event.restarts),
                               max(0, event.pid))
        except Exception as exc:  # noqa: BLE001 - the main is gone
            log.debug("bridge: an agent's event not passed on: %s", exc)

    def close(self) -> None:
        try:
            self._events.undeclare()
        except Exception:  # noqa: BLE001
            pass


def wire_margin(op: str) -> float:
    """How much longer than the request's own timeout its query may take."""
    return 5.0 if op == "launch" else 15.0
