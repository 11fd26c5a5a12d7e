"""Remote instances: the instances of the config with a `host:` other than this
one, which the agent of that host runs (docs/design/remote-launch.md).

The supervisor hands each host its instances through its own bridge (the only
process of the session that holds zenoh): a request to `service:bridge.launch`
whose reply says that all of them are ready (with their pids), or why not. The
launches are sent as soon as the bridge is up (the local instances fork while
it starts) and awaited after the local instances are ready, so the hosts start
side by side. Afterwards the bridge passes on what the agents say
(`remote` reports: exits, restarts by the agent's supervisor, failures), which
this logs and keeps as the remote instances' states; a remote instance that
fails for good is the session's `on_failure` to decide, as a local one.
At shutdown, after the local instances have stopped, each host's session is
shut down in order (its drain, save_all, cleanup, shutdown, and the stop of
its instances in config order) before the bridge stops.
"""
from __future__ import annotations

import logging
import time

from .. import _errors as errors
from ._control import InstanceState

__all__ = ["RemoteHosts", "Remote"]

log = logging.getLogger("Ether")

REPLY_MARGIN_S = 20.0   # the bridge's own wait for the agent, and a little more


class Remote:
    """What the main knows of one remote instance."""

    def __init__(self, name: str, host: str):
        self.name, self.host = name, host
        self.state = InstanceState.STARTING
        self.pid = 0
        self.restarts = 0

    def as_dict(self) -> dict:
        return {"name": self.name, "host": self.host, "state": self.state.value, "pid": self.pid,
                "restarts": self.restarts}


class RemoteHosts:
    def __init__(self, sup, instances: dict):
        """instances: config key -> EtherInstanceConfig, each with a `host`."""
        self.sup = sup
        self.hosts: dict[str, dict] = {}   # host -> {key: inst}, in config order
        for key, inst in instances.items():
            self.hosts.setdefault(inst.host, {})[key] = inst
        self.instances: dict[str, Remote] = {}
        self.sessions: dict[str, str] = {}   # host -> its session's name
        self._pending: dict[str, int] = {}   # host -> request id of its launch
        self.timings: list[float] = []       # restarts on other hosts, as their agents measured

    def config_for(self, host: str) -> dict:
        config = self.sup.config
        instances = {}
        for key, inst in self.hosts[host].items():
            instances[key] = inst.model_dump(mode="json", exclude_unset=True, exclude={"host"})
        registry = {path: dict(entry.model_dump(mode="json", exclude_unset=True),
                               allow_unused=True) for path, entry in config.registry.items()}
        return {"instances": instances, "registry": registry,
                "supervision": config.supervision.model_dump(mode="json"),
                "shutdown_timeout_s": config.shutdown_timeout_s}

    def launch(self, timeout: float) -> None:
        """Send every host its launch (answered once its instances are ready)."""
        for host in self.hosts:
            for key, inst in self.hosts[host].items():
                name = inst.ether_options().get("ether_name", key)
                self.instances[name] = Remote(name, host)
            params = {"host": host, "config": self.config_for(host), "timeout": timeout}
            self._pending[host], _ = self.sup.node.request(
                "service:bridge.launch", params, what="the bridge", timeout=timeout)

    def await_ready(self, timeout: float) -> None:
        """Wait for every host's answer; raise naming the host and why if one failed."""
        failures = []
        for host, request_id in list(self._pending.items()):
            body = self.sup.node.wait_reply(request_id, timeout + REPLY_MARGIN_S,
                                            what=f"the bridge (the launch on host {host!r})")
            del self._pending[host]
            result = body.get("result") if isinstance(body, dict) else None
            if not isinstance(result, dict) or not result.get("ok"):
                error = (result or {}).get("error") or f"an unexpected answer: {body!r}"
                reason = (result or {}).get("reason") or ""
                failures.append((host, error, reason))
                continue
            self.sessions[host] = str(result.get("session", ""))
            for name, pid in (result.get("instances") or {}).items():
                remote = self.instances.get(name)
                if remote is not None:
                    remote.state, remote.pid = InstanceState.READY, int(pid)
                    self.sup._event("ready", f"{name}@{host}", pid=int(pid))
            names = ", ".join(n for n, r in self.instances.items() if r.host == host)
            log.info("host %r: %s ready (session %s)", host, names, self.sessions[host])
        if failures:
            host, error, reason = failures[0]
            names = ", ".join(repr(n) for n, r in self.instances.items() if r.host == host)
            raise errors.EtherError(
                f"host {host!r} could not start {names}: {error}"
                + (f" ({reason})" if reason and reason not in error else ""))

    def on_event(self, message) -> None:
        """A `remote` report from the bridge (the dispatching thread)."""
        name, host = message.name, message.host
        where = f"instance {name!r} on host {host!r}"
        if message.event == "gone":
            for remote in self.instances.values():
                if remote.host == host and remote.state is not InstanceState.STOPPED:
                    remote.state = InstanceState.EXITED
            log.error("host %r: %s; its instances are gone", host, message.text)
            self.sup._event("exited", f"*@{host}", cause=message.text)
            return
        remote = self.instances.get(name)
        if remote is None or remote.host != host:
            return
        if message.event == "exited":
            remote.state = InstanceState.EXITED
            log.warning("%s exited (%s)", where, message.text)
        elif message.event == "restarting":
            remote.state = InstanceState.RESTARTING
            log.warning("%s: restarting it (its agent's supervisor, by its policy)", where)
        elif message.event == "ready":
            remote.state = InstanceState.READY
            remote.pid = message.pid or remote.pid
        elif message.event == "restarted":
            remote.state, remote.restarts = InstanceState.READY, message.restarts
            log.info("%s is back (restart %d)", where, message.restarts)
            try:
                self.timings.append(float(message.text))
            except ValueError:
                pass
        elif message.event == "failed":
            remote.state = InstanceState.FAILED
            on_failure = self.sup.config.supervision.on_failure
            log.error("%s failed: %s%s", where, message.text,
                      "; on_failure: shutdown ends the session" if on_failure == "shutdown" else "")
            if on_failure == "shutdown" and self.sup.on_failure_shutdown is not None:
                self.sup.on_failure_shutdown(f"{where} failed")
        self.sup._event(message.event, f"{name}@{host}", cause=message.text,
                        restarts=message.restarts)

    def stop(self, graceful: bool, timeout: float) -> None:
        """Shut every host's session down, in config order, each bounded."""
        node = self.sup.node
        for host in self.hosts:
            if host not in self.sessions and host not in self._pending:
                continue
            started = time.monotonic()
            params = {"host": host, "timeout": timeout, "graceful": graceful}
            try:
                request_id, _ = node.request("service:bridge.stop_remote", params,
                                             what="the bridge", timeout=timeout)
                body = node.wait_reply(request_id, timeout + REPLY_MARGIN_S,
                                       what=f"the bridge (the stop on host {host!r})")
            except errors.EtherError as exc:
                log.error("host %r: could not stop its instances: %s", host, exc)
                continue
            result = body.get("result") if isinstance(body, dict) else {}
            for remote in self.instances.values():
                if remote.host == host:
                    remote.state = InstanceState.STOPPED
            if isinstance(result, dict) and result.get("ok"):
                log.info("host %r: its instances stopped (%.3f s)", host, time.monotonic() - started)
            else:
                log.error("host %r: its instances did not stop cleanly: %s", host,
                          (result or {}).get("error"))

    def states(self) -> dict[str, dict]:
        return {f"{n}@{r.host}": r.as_dict() for n, r in self.instances.items()}
