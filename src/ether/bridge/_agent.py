"""`ether agent`: the launcher of one host, for mains on other hosts of the site
(docs/design/remote-launch.md).

It is a standalone zenoh router with the host's certificate (the bridges of the
host's sessions and the other hosts link through it) that answers requests on
`ether/<site>/agent/<host>/req/<name>`:

- who asks is the certificate name `<name>`: zenoh's ACL (_zconfig._acl) lets a
  query on that key in only from the certificate of that name, so the key
  names its sender; the agent answers only the names of `operators` (default:
  `allow_hosts`) and refuses the others, saying why;
- `launch` carries a config (instances, supervision, registry) as data; the
  agent checks it as any config, then starts `python -m ether.bridge._hosted`,
  a main of its own for that session, with the host's bridge section, which taps
  it (the instances fork there; the session's bridge connects to this router);
  the reply comes once every instance is ready, or says why one is not;
- `stop` shuts that session down (drain, save_all, stop in order) and answers
  when it is gone.

What the hosted session's supervisor says (exits, restarts by policy, failures)
goes to the main as events on `ether/<site>/agent/<host>/ev/<session>`. When
the main's bridge leaves the site (its liveliness token goes: the main died, or
the link is cut, at the lease) the agent kills the hosted main after GRACE_S, and
its instances end by the orphan rules within a second.

One session per agent at a time: the host's name is its bridge's, and a site
holds one bridge of each name.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from ether import ConfigError
from ether.config import BridgeConfig, EtherConfig
from ether.lowlevel import launch_trace

from . import _agentwire as wire
from ._keys import Keys
from ._zconfig import zenoh_config

__all__ = ["Agent", "GRACE_S"]

log = logging.getLogger("Ether")

#: How long a main's bridge may be gone before its hosted session is ended: a
#: bridge killed alone comes back (restart: always), but a dead main's does not.
GRACE_S = 0.3
STOP_MARGIN_S = 10.0     # a stop waits the shutdown's limit and this much more
_CONFIG_KEYS = ("instances", "registry", "supervision", "shutdown_timeout_s")


class Hosted:
    """One session this agent runs for a main: its hosted main's process."""

    def __init__(self, agent: "Agent", request: wire.Request, config: dict, proc):
        """proc: a hosted main waiting for its config (spawn())."""
        self.agent, self.main_session, self.main_host = agent, request.session, request.main_host
        self.ended = threading.Event()
        self.stopped = threading.Event()
        self.killed = False
        self.session = ""
        self.proc = proc
        self.reply: wire.Reply | None = None   # the launch's answer, once it is known
        wire.write_frame(self.proc.stdin, {"config": config})
        self._reader: threading.Thread | None = None

    def await_ready(self, timeout: float) -> wire.Reply:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, left))
        if not ready:
            self.kill()
            return wire.Reply(False, error=f"its instances did not start within {timeout:g} s")
        first = _read(self.proc.stdout)
        if not isinstance(first, dict) or first.get("ev") != "ready":
            error = first.get("error") if isinstance(first, dict) else None
            try:
                self.proc.wait(5.0)
            except subprocess.TimeoutExpired:
                pass
            code = self.proc.returncode
            self.kill()   # and forgotten: the host takes the next launch
            return wire.Reply(False, error=error or f"its main exited ({code})")
        self.session = str(first.get("session", ""))
        self._reader = threading.Thread(target=self._read_events, name="ether-agent-events",
                                        daemon=True)
        self._reader.start()
        return wire.Reply(True, session=self.session,
                          instances={str(k): int(v) for k, v in first["instances"].items()})

    def _read_events(self) -> None:
        while True:
            item = _read(self.proc.stdout)
            if item is None:
                break
            if not isinstance(item, dict):
                continue
            if item.get("ev") == "stopped":
                self.stopped.set()
            elif item.get("ev") == "event":
                self.agent.event(self.main_session, wire.Event(
                    str(item.get("event")), str(item.get("name")), str(item.get("text", "")),
                    int(item.get("restarts", 0)), int(item.get("pid", 0))))
        self.proc.wait()
        self.ended.set()
        if not self.stopped.is_set():
            self.agent.event(self.main_session, wire.Event(
                "gone", "*", f"the hosted session ended ({'killed: its main left the site' if self.killed else f'exit {self.proc.returncode}'})"))
        self.agent.forget(self)

    def stop(self, graceful: bool, timeout: float) -> bool:
        try:
            wire.write_frame(self.proc.stdin, {"op": "shutdown", "timeout": timeout,
                                               "graceful": graceful})
        except (BrokenPipeError, OSError, ValueError):
            pass
        if not self.ended.wait(timeout + STOP_MARGIN_S):
            self.kill()
            return False
        return self.stopped.is_set()

    def kill(self) -> None:
        """End it at once: its instances follow by the orphan rules."""
        self.killed = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self._reader is None:
            self.proc.wait(5.0)
            self.ended.set()
            self.agent.forget(self)


def spawn(workdir: str) -> subprocess.Popen:
    """A hosted main, started now, that waits for its config (and starts its
    session's bridge's interpreter meanwhile: _hosted.py)."""
    return subprocess.Popen([sys.executable, "-m", "ether.bridge._hosted"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, cwd=workdir, close_fds=True)


def _read(stream):
    try:
        return wire.read_frame(stream)
    except (OSError, ValueError):
        return None


class Agent:
    """The agent of one host: `Agent(bridge, base_dir=...)`, then `close()`."""

    def __init__(self, bridge: BridgeConfig, *, base_dir: str | os.PathLike[str] | None,
                 workdir: str | None = None, say: Callable[[str], None] = print):
        self.bridge, self.say = bridge, say
        self.base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
        self.workdir = workdir or os.getcwd()
        security = bridge.security
        if security is None:
            raise ConfigError("agent: it needs security (mutual TLS: --ca, --cert, --key): it "
                              "runs what its operators ask for, so it must know who asks")
        if security.launchers() is None:
            raise ConfigError("agent: name the certificates that may launch here: "
                              "--operator NAME (or allow_hosts)")
        if not bridge.listen and bridge.discovery != "multicast":
            raise ConfigError("agent: it needs an endpoint to listen on (--listen tls/ADDRESS:PORT) "
                              "or --discovery multicast: the hosts link through it")
        wild = [e for e in bridge.listen if "/0.0.0.0:" in e or "/[::]:" in e]
        if wild:
            raise ConfigError(f"agent: listen on this host's address, not {', '.join(wild)}: the "
                              "sessions it starts connect to it by that address (and check its name)")
        self.host = bridge.host_name()
        self.operators = list(security.launchers())
        self.keys = wire.AgentKeys(bridge.site)
        self.live = Keys(bridge.site, self.host)
        self._lock = threading.Condition()
        self._hosted: dict[str, Hosted] = {}        # main session -> its hosted session
        self._mains: dict[str, int] = {}             # host -> live bridge tokens
        self._lost: dict[str, float] = {}            # host -> when its last bridge went
        self._requests: queue.Queue = queue.Queue(64)
        self._closed = threading.Event()
        config = zenoh_config(bridge, base_dir=self.base_dir, mode="router")
        import zenoh  # here: `ether agent`'s process never forks
        self.zenoh = zenoh
        try:
            self.z = zenoh.open(zenoh.Config.from_json5(json.dumps(config)))
        except zenoh.ZError as e:
            raise ConfigError(f"agent: zenoh cannot start: {e}") from None
        self._spare = spawn(self.workdir)   # the next launch's hosted main, warm
        self._worker = threading.Thread(target=self._work, name="ether-agent", daemon=True)
        self._watcher = threading.Thread(target=self._watch, name="ether-agent-watch", daemon=True)
        self._worker.start()
        self._watcher.start()
        self._live = self.z.liveliness().declare_subscriber(
            f"ether/{bridge.site}/live/*/bridge/*", self._on_live, history=True)
        self._queryable = self.z.declare_queryable(self.keys.requests_of(self.host), self._on_query)
        # That the agent is there, for a bridge's start (its wait for the site) and a
        # launch (its wait for this agent); the bridges' site view ignores the kind.
        zid = str(self.z.zid())
        self._token = self.z.liveliness().declare_token(self.keys.agent_live(self.host, zid))
        say(f"agent of host {self.host!r} in site {bridge.site!r} (zenoh id {zid}) "
            f"listening on {', '.join(config['listen']['endpoints']) or 'multicast'}; "
            f"operators: {', '.join(self.operators)}")

    # ---- zenoh's threads: queue, never wait ----

    def _on_query(self, query) -> None:
        launch_trace(f"agent@{self.host}", "query in")
        try:
            self._requests.put_nowait(query)
        except queue.Full:
            query.reply(query.key_expr, wire.encode_msg(wire.Reply(
                False, error="the agent is busy", reason="busy")))
            query.drop()

    def _on_live(self, sample) -> None:
        live = self.live.parse_live(str(sample.key_expr))
        if live is None or live.kind != "bridge":
            return
        put = sample.kind == self.zenoh.SampleKind.PUT
        with self._lock:
            count = self._mains.get(live.host, 0) + (1 if put else -1)
            self._mains[live.host] = max(0, count)
            if count <= 0:
                self._lost[live.host] = time.monotonic()
            else:
                self._lost.pop(live.host, None)
            self._lock.notify_all()

    # ---- requests ----

    def _work(self) -> None:
        while True:
            query = self._requests.get()
            if query is None:
                return
            try:
                reply = self._serve(query)
            except Exception as exc:  # noqa: BLE001 - the requester hears of it
                log.exception("agent: a request failed")
                reply = wire.Reply(False, error=f"the agent failed: {type(exc).__name__}: {exc}")
            try:
                query.reply(query.key_expr, wire.encode_msg(reply))
            except Exception as exc:  # noqa: BLE001
                self.say(f"could not answer a request: {exc}")
            finally:
                query.drop()
            if self._spare is None and not self._closed.is_set():
                # The next launch's hosted main, once this one's answer is out.
                self._spare = spawn(self.workdir)

    def _serve(self, query) -> wire.Reply:
        key = str(query.key_expr)
        who = self.keys.requester(key, self.host)
        if who is None:
            return self._refuse(key, "?", "the request's key names no certificate")
        if who not in self.operators:
            return self._refuse(key, who, f"certificate name {who!r} is not among this agent's "
                                          f"operators ({', '.join(self.operators)})")
        try:
            request = wire.decode_request(b"" if query.payload is None else query.payload.to_bytes())
        except ValueError as exc:
            return self._refuse(key, who, str(exc))
        if request.op == "launch":
            return self._launch(request, who)
        return self._stop(request, who)

    def _refuse(self, key: str, who: str, reason: str) -> wire.Reply:
        self.say(f"refused a request from {who!r}: {reason}")
        return wire.Reply(False, error=f"refused: {reason}", reason=reason)

    def _launch(self, request: wire.Request, who: str) -> wire.Reply:
        with self._lock:
            busy = next(iter(self._hosted.values()), None)
        if busy is not None:
            if busy.main_session == request.session and busy.reply is not None and \
                    not busy.killed and not busy.ended.is_set():
                return busy.reply   # the launch again (its answer was lost): the same answer
            return self._refuse("", who, f"host {self.host!r} runs a session for the main "
                                         f"{busy.main_session!r} of {busy.main_host!r} already")
        try:
            config = self._config(request.config)
        except ConfigError as exc:
            return wire.Reply(False, error=f"its config is invalid: {exc}")
        spare, self._spare = self._spare, None
        if spare is None or spare.poll() is not None:
            spare = spawn(self.workdir)
        launch_trace(f"agent@{self.host}", "config checked")
        hosted = Hosted(self, request, config, spare)
        with self._lock:
            self._hosted[request.session] = hosted
            self._lock.notify_all()
        reply = hosted.reply = hosted.await_ready(request.timeout)
        launch_trace(f"agent@{self.host}", "hosted main ready")
        names = ", ".join(reply.instances) or "nothing"
        self.say(f"launched for {request.main_host!r} (session {request.session}): {names}"
                 if reply.ok else f"launch for {request.main_host!r} failed: {reply.error}")
        return reply

    def _bridge_section(self) -> dict:
        """The bridge: section of every session this agent hosts: this host's name,
        certificate and site settings; it connects to this agent, and listens on
        nothing of its own."""
        bridge = self.bridge.model_dump(mode="json")
        security = dict(bridge["security"])
        for what in ("ca", "cert", "key"):
            path = Path(security[what])
            security[what] = str(path if path.is_absolute() else self.base_dir / path)
        security.pop("operators", None)
        bridge.update(host=self.host, security=security, listen=[],
                      connect=list(self.bridge.listen) or [])
        return bridge

    def _config(self, given: dict) -> dict:
        """The hosted session's config: the main's instances for this host, with this
        host's bridge; checked here, as any config, before anything runs."""
        unknown = [k for k in given if k not in _CONFIG_KEYS]
        if unknown:
            raise ConfigError(f"key {', '.join(map(repr, unknown))} may not come with a launch "
                              f"(valid: {', '.join(_CONFIG_KEYS)})")
        config = dict(given)
        config["bridge"] = self._bridge_section()
        supervision = dict(config.get("supervision") or {})
        supervision["on_failure"] = "continue"   # the main decides (its own on_failure)
        config["supervision"] = supervision
        EtherConfig.load(config)   # ConfigError naming the instance and key
        for inst in config.get("instances", {}).values():
            if isinstance(inst, dict):
                inst.pop("host", None)
        return config

    def _stop(self, request: wire.Request, who: str) -> wire.Reply:
        with self._lock:
            hosted = self._hosted.get(request.session)
        if hosted is None:
            return wire.Reply(True, error="no such session here (it ended already)")
        done = hosted.stop(request.graceful, request.timeout)
        self.say(f"stopped the session of {request.main_host!r} ({request.session})"
                 + ("" if done else ": it had to be killed"))
        return wire.Reply(done, session=hosted.session,
                          error="" if done else "it did not shut down in time and was killed")

    # ---- events, orphans ----

    def event(self, main_session: str, event: wire.Event) -> None:
        try:
            self.z.put(self.keys.events(self.host, main_session), wire.encode_msg(event))
        except Exception as exc:  # noqa: BLE001 - closing
            log.debug("agent: event not sent: %s", exc)

    def forget(self, hosted: Hosted) -> None:
        with self._lock:
            if self._hosted.get(hosted.main_session) is hosted:
                del self._hosted[hosted.main_session]
            self._lock.notify_all()

    def _watch(self) -> None:
        """End the hosted sessions whose main's bridge is gone for GRACE_S."""
        while not self._closed.is_set():
            with self._lock:
                now = time.monotonic()
                orphans = [h for h in self._hosted.values() if h.session and
                           self._mains.get(h.main_host, 0) == 0 and
                           now - self._lost.get(h.main_host, now) >= GRACE_S]
                if not orphans:
                    waits = [GRACE_S - (now - self._lost[h.main_host]) for h in self._hosted.values()
                             if h.main_host in self._lost]
                    self._lock.wait(max(0.01, min(waits)) if waits else 1.0)
                    continue
            for hosted in orphans:
                self.say(f"the main of session {hosted.main_session} ({hosted.main_host!r}) left "
                         f"the site; ending its session {hosted.session}")
                hosted.kill()
                hosted.ended.wait(5.0)

    def close(self, timeout: float = 30.0) -> None:
        """Shut every hosted session down (bounded), then leave the site."""
        self._closed.set()
        with self._lock:
            hosted = list(self._hosted.values())
            self._lock.notify_all()
        for h in hosted:
            h.stop(True, min(timeout, 10.0))
        self._requests.put(None)
        self._worker.join(2.0)
        spare, self._spare = self._spare, None
        if spare is not None:
            spare.stdin.close()   # it ends at once
            try:
                spare.wait(5.0)
            except subprocess.TimeoutExpired:
                spare.kill()
            spare.stdout.close()
        try:
            self._queryable.undeclare()
            self._live.undeclare()
            self._token.undeclare()
        except Exception:  # noqa: BLE001
            pass
        closer = threading.Thread(target=self.z.close, daemon=True)
        closer.start()
        closer.join(3.0)
