"""The bridge process: one per host and session, `python -m ether.bridge`, started
by the supervisor in a fresh interpreter (never a fork: a forked child that opens
a zenoh session hangs, and breaks its parent's). zenoh is imported here and
nowhere else in Ether.

It is an ordinary member of the session (ether.lowlevel.Member): its inbox
`bridge`, its log `bridge.log`, the readiness handshake, Stop. Its threads:

    main      reads the bridge's inbox: topics other hosts want (_outbound.py),
              replies from local instances to calls it serves, control messages
    control   applies liveliness changes (the site view, _site.py) and the
              session directory's (watched through its generation counter) to
              tokens, subscriptions and proxies
    in        checks and forwards what other hosts send (_inbound.py)
    calls     answer other hosts' calls; each proxy reads its inbox (_calls.py)

At start it refuses a host name another live bridge of the site holds. At Stop
(after the instances stopped) it sends what its inbox still holds, then closes
its zenoh session: its tokens vanish, and the other hosts' pending calls to it
fail with ServiceGone.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time

from ether import ConfigError
from ether.config import BridgeConfig
from ether.lowlevel import (BRIDGE_CLASS, BRIDGE_LINKS, RESERVED_PREFIXES, Member, launch_trace,
                            matches, request_of)

from . import _malloc, _zconfig
from ._calls import Calls
from ._inbound import Inbound
from ._keys import Keys
from ._outbound import Outbound
from ._site import Site
from ._tokens import await_token
from ._wire import Checker

__all__ = ["Bridge", "main"]

log = logging.getLogger("Ether")

# How often the control thread looks at the directory's generation (site changes wake
# it at once). Each wake-up costs an idle bridge about 0.1 ms of CPU on a 2-vCPU VM:
# at 20 ms that alone was 0.6 % of a core (bench_bridge.py, idle row); at 100 ms a
# local subscription reaches the other hosts at most 0.1 s later.
WATCH_S = 0.1
# Once nothing changed for SETTLE_S, it looks every WATCH_IDLE_S: an idle bridge
# wakes about 3 times a second instead of 10 (bench_bridge's idle row: its target
# is 0.5 % of a core), and a change after a quiet spell reaches the other hosts at
# most 0.3 s later; the next ones, for SETTLE_S, within 0.1 s again.
WATCH_IDLE_S = 0.3
SETTLE_S = 5.0
TRIM_QUIET_S = 1.0      # traffic stopped this long: the allocator's free memory goes back
CLASH_WAIT_S = 0.5      # how long the start-up asks the site who holds our host name
CLOSE_WAIT_S = 3.0      # zenoh's close may hang (zenoh#2675): the process ends regardless
_STRONGER = {"block": 2, "drop": 1}
MAX_CLASS = 116         # bytes of a class name in the session directory


def _strongest(table: dict[str, str], topic: str, policy: str) -> None:
    if _STRONGER[policy] > _STRONGER.get(table.get(topic, ""), 0):
        table[topic] = policy


class Bridge:
    def __init__(self, member: Member, opened: tuple | None = None):
        """opened: (zenoh config, session), the session __main__.py opened."""
        self.member = member
        self._opened = opened
        self.config = BridgeConfig(**member.options["bridge"])
        self.base_dir = member.options.get("base_dir") or os.getcwd()
        self.host = self.config.host_name()
        self.keys = Keys(self.config.site, self.host)
        self.site = Site(self.config.site, self.host)
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._tokens: dict[str, object] = {}
        self._stop = threading.Event()
        self._control = threading.Thread(target=self._run_control, name="ether-bridge-control",
                                         daemon=True)
        self.z = None
        self._described = ""

    # ---- start ----

    def start(self) -> None:
        who = f"bridge@{self.host}"
        launch_trace(who, "start")
        session, node = self.member.join()
        self.session, self.node = session, node
        zconf = _zconfig.bridge_zenoh_config(self.config, base_dir=self.base_dir)
        quick = _zconfig.connects_out(self.config)   # it waits for the site itself
        import zenoh  # here, in this process only
        self.zenoh = zenoh
        opened, self._opened = self._opened, None
        if opened is not None and opened[0] == json.loads(json.dumps(zconf)):
            self.z = opened[1]   # opened before the imports, with this config
        else:
            if opened is not None:
                _close(opened[1])
            self.z = zenoh.open(zenoh.Config.from_json5(json.dumps(zconf)))
        self.zid = str(self.z.zid())
        launch_trace(who, "zenoh open" + (" (the session opened ahead)" if self.z is (opened or (0, 0))[1]
                                          else ""))
        if quick:
            self._await_the_site(CLASH_WAIT_S)
            launch_trace(who, "site seen")
        self._refuse_a_taken_name()
        launch_trace(who, "name checked")
        self.outbound = Outbound(node, self.z, zenoh, self.keys, self.config.export)
        from ether.lowlevel import Node  # noqa: F401  (the inline limit is the node's)
        self.inbound = Inbound(node, self.z, zenoh, self.keys, Checker(node.inline_limit),
                               self.config.max_message_bytes)
        self.calls = Calls(node, session, self.z, zenoh, self.keys, self.site, self.config.export)
        node.add_service("service:bridge.site", self._answer(lambda: self.site.to_dict()))
        node.add_service("service:bridge.statistics", self._answer(self.statistics))
        node.add_service(BRIDGE_LINKS, self._answer(self.inbound.links))   # for ether.statistics()
        from ._launcher import Launcher
        self.launcher = Launcher(self)   # remote launch: the main's requests to agents
        self.inbound.start()
        self.calls.start()
        self._declare(self.keys.bridge_live(self.zid))
        # What the site holds now (history), then every change.
        self._liveliness = self.z.liveliness().declare_subscriber(
            self.keys.live_all, self._on_live, history=True)
        self._apply_events()
        self._reconcile()
        self._control.start()
        launch_trace(who, "up")
        again = self.member.spec.restarts
        log.info("bridge: host %r of site %r (zenoh id %s) is up%s", self.host, self.config.site,
                 self.zid, f" again (restart {again})" if again else "")

    def _await_the_site(self, timeout: float) -> None:
        """Until a liveliness token of the site arrives (or `timeout`): zenoh's own
        wait at open is off for a bridge that connects out (start()), and the name
        check must see the site. A token means the link is up and the site's
        declarations flow (any bridge's, or an `ether agent`'s); a site with none
        waits the whole timeout, as zenoh's open did."""
        await_token(self.z, self.keys.live_all, timeout)

    def _refuse_a_taken_name(self) -> None:
        holders = []
        for reply in self.z.liveliness().get(self.keys.bridges_of(self.host), timeout=CLASH_WAIT_S):
            if reply.ok is not None:
                holders.append(str(reply.ok.key_expr).rsplit("/", 1)[-1])
        holders = [h for h in holders if h != self.zid]
        if holders:
            raise ConfigError(
                f"bridge: host name {self.host!r} is already in use in site {self.config.site!r} "
                f"by the bridge with zenoh id {holders[0]}; this bridge (zenoh id {self.zid}) "
                f"refuses to start: give this host another name (bridge: host: ...)")

    def _answer(self, make):
        def serve(envelope) -> None:
            request = request_of(envelope)
            self.node.reply(request, envelope.topic,
                            {"status": "success", "instance": "bridge", "result": make()})
        return serve

    # ---- liveliness and the directory: the control thread ----

    def _on_live(self, sample) -> None:
        self._events.put((str(sample.key_expr), sample.kind == self.zenoh.SampleKind.PUT))

    def _apply_events(self) -> bool:
        changed = False
        while True:
            try:
                key, put = self._events.get_nowait()
            except queue.Empty:
                return changed
            live = self.keys.parse_live(key)
            if live is not None:
                self.site.apply(live, put)
                if live.kind == "bridge" and not put:
                    self.calls.bridge_gone(live.host)
                changed = True

    def _run_control(self) -> None:
        generation = self.session.generation()
        changed_at = quiet_since = time.monotonic()
        traffic = trimmed = self._traffic()
        while not self._stop.is_set():
            settled = time.monotonic() - changed_at >= SETTLE_S
            try:
                key, put = self._events.get(timeout=WATCH_IDLE_S if settled else WATCH_S)
            except queue.Empty:
                changed = False
            else:
                self._events.put((key, put))  # applied in order with the rest
                changed = self._apply_events()
            try:
                now = self.session.generation()
                if changed or now != generation:
                    generation = now
                    changed_at = time.monotonic()
                    self._reconcile()
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("bridge: could not follow a change of the site or the session")
            # Memory: once traffic stopped for TRIM_QUIET_S, give back what the
            # allocator keeps of the large frames' buffers (each crossed as bytes).
            now_traffic = self._traffic()
            if now_traffic != traffic:
                traffic, quiet_since = now_traffic, time.monotonic()
            elif traffic != trimmed and time.monotonic() - quiet_since >= TRIM_QUIET_S:
                trimmed = traffic
                _malloc.trim()

    def _traffic(self) -> tuple:
        return (self.inbound.received, self.inbound.rejected, self.outbound.sent_frames,
                self.calls.served)

    def _exported(self, topic: str) -> bool:
        name = topic.split(":", 1)[1] if topic.startswith(("service:", "sync:")) else topic
        return any(matches(p, name) for p in self.config.export)

    def _reconcile(self) -> None:
        """Tokens, subscriptions and proxies, from the directory and the site view."""
        snapshot = self.session.inspect()
        own = self.node.inbox.name
        members = {m.name: m for m in snapshot.members}
        instances = {n: m.class_name for n, m in members.items()
                     if m.class_name and "@" not in n and n not in (own, "main")
                     and not m.class_name.startswith("bridge proxy")}
        interest: dict[str, str] = {}
        requests: set[tuple[str, str]] = set()
        for sub in snapshot.subscriptions:
            if sub.inbox == own or "@" in sub.inbox:
                continue
            if sub.topic.startswith(("service:", "sync:")):
                if sub.inbox in instances and self._exported(sub.topic):
                    requests.add((sub.inbox, sub.topic))
            elif not sub.topic.startswith(RESERVED_PREFIXES):
                _strongest(interest, sub.topic, sub.policy)
        self.inbound.update(interest)
        wanted = {self.keys.bridge_live(self.zid)}
        wanted |= {self.keys.instance_live(n, c) for n, c in instances.items()}
        wanted |= {self.keys.request_live(n, t) for n, t in requests}
        for key in list(self._tokens):
            if key not in wanted:
                self._tokens.pop(key).undeclare()
        for key in wanted:
            self._declare(key)
        remote: dict[str, str] = {}
        hosts: dict[str, set] = {}
        for host, view in self.site.others().items():
            for topic, policies in view.subs.items():
                for policy in policies:
                    if policy in _STRONGER:
                        _strongest(remote, topic, policy)
                        hosts.setdefault(topic, set()).add(host)
        self.outbound.update(remote, {t: frozenset(h) for t, h in hosts.items()})
        self.calls.update(set(instances))
        self._describe({h for h, view in self.site.others().items()
                        if any("block" in p for p in view.subs.values())})

    def _describe(self, blocking: set[str]) -> None:
        """The bridge's class name in the directory names the hosts with subscribers
        under block: a local publisher that the bridge's full inbox held up names them
        in its InboxFull (ether.lowlevel.BRIDGE_CLASS)."""
        names = ", ".join(sorted(blocking))
        text = BRIDGE_CLASS + names
        if len(text.encode()) > MAX_CLASS:
            text = text.encode()[:MAX_CLASS - 4].decode(errors="ignore") + " ..."
        if text != self._described:
            self._described = text
            self.node.describe(text)

    def _declare(self, key: str) -> None:
        if key not in self._tokens:
            self._tokens[key] = self.z.liveliness().declare_token(key)

    # ---- running and stopping ----

    def serve(self) -> None:
        """Read the bridge's inbox until Stop (or the main's death)."""
        self.node.serve(owner_check=False, stop=self.member.stopping)

    def statistics(self) -> dict:
        return {"host": self.host, "inbound": self.inbound.statistics(),
                "outbound": self.outbound.statistics(), "calls": self.calls.statistics(),
                "rejections": [list(r) for r in self.node.rejections.counts()],
                "senders": [{"inbox": s.inbox, "policy": s.policy, "sent": s.sent,
                             "dropped": s.dropped, "blocked": s.blocked}
                            for s in self.node.statistics()]}

    def close(self) -> None:
        self._stop.set()
        for part in ("outbound",):
            if hasattr(self, part):
                getattr(self, part).flush()
        if self._control.is_alive():
            self._control.join(2.0)
        for part in ("inbound", "calls", "launcher"):
            if hasattr(self, part):
                try:
                    getattr(self, part).close()
                except Exception:
                    log.exception("bridge: closing its %s", part)
        z, self.z = self.z, None
        if z is not None:
            _close(z)


def _close(z) -> None:
    closer = threading.Thread(target=z.close, name="ether-bridge-close", daemon=True)
    closer.start()
    closer.join(CLOSE_WAIT_S)
    if closer.is_alive():
        log.warning("bridge: zenoh's session did not close within %g s", CLOSE_WAIT_S)


def _preload() -> None:
    """The rest of what start() needs, loaded while the link comes up."""
    try:
        from cryptography import x509  # noqa: F401  (the certificate's name: _launcher.py)
    except ImportError:
        pass
    from ._launcher import Launcher  # noqa: F401


def main(member: Member, opened: tuple | None = None) -> None:
    """member: from its spec (Member.from_stdin); opened: (zenoh config, session)
    opened before the rest of the imports (__main__.py)."""
    _preload()
    launch_trace("bridge", "preloaded")
    bridge = None
    code = 1
    try:
        try:
            bridge = Bridge(member, opened)
            bridge.start()
        except BaseException as exc:
            member.fail(exc)
            raise
        member.ready()
        bridge.serve()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        log.exception("bridge: stopped by an error")
    finally:
        try:
            if bridge is not None:
                bridge.close()
        finally:
            try:
                member.close()
            finally:
                logging.shutdown()
                os._exit(code)
