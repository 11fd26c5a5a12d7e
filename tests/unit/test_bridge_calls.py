"""Calls on their way to another host when that host's bridge dies (bridge/_calls.py):
they fail at once with ServiceGone, once each, and a call sent through the
restarted bridge is not failed by the old one's going."""
from __future__ import annotations

import threading
import time

from ether.bridge import _keys
from ether.bridge._calls import Calls, _Call
from ether.bridge._site import Site
from ether.lowlevel import Request


class _Node:
    def __init__(self):
        self.replies = []

    def reply(self, request, topic, body):
        self.replies.append((request.id, body))


class _Proxy:
    def __init__(self, calls, host):
        self.calls, self.host, self.instance, self.name = calls, host, "svc", f"svc@{host}"
        self.node, self.stop = _Node(), threading.Event()


def _bridge_token(site, zid: str, put: bool) -> None:
    key = _keys.Keys("lab1", "hostB").bridge_live(zid)
    site.apply(_keys.Keys("lab1", "hostA").parse_live(key), put)


def _sent(calls, proxy, request_id: int) -> _Call:
    call = _Call(proxy, Request(request_id, "caller", {}), "service:svc.m", "service:svc.m",
                 time.monotonic() + 10)
    call.bridges = calls.site.bridges_of("hostB")  # what send() records before its query
    calls.track(call)
    return call


def test_calls_through_a_bridge_that_died_fail_at_once_and_once():
    site = Site("lab1", "hostA")
    calls = Calls(None, None, None, None, _keys.Keys("lab1", "hostA"), site, ["*"])
    proxy = _Proxy(calls, "hostB")
    _bridge_token(site, "zid-old", True)
    old = [_sent(calls, proxy, i) for i in (1, 2)]
    _bridge_token(site, "zid-old", False)   # killed; the restarted one comes up
    _bridge_token(site, "zid-new", True)
    new = _sent(calls, proxy, 3)
    calls.bridge_gone("hostB")
    assert sorted((i, b["type"]) for i, b in proxy.node.replies) == [(1, "ServiceGone"),
                                                                      (2, "ServiceGone")]
    old[0]._answer({"status": "success", "result": 1})  # its own end, later: not a second answer
    new._answer({"status": "success", "result": 3})
    assert sorted((i, b.get("type", b.get("status"))) for i, b in proxy.node.replies) == [
        (1, "ServiceGone"), (2, "ServiceGone"), (3, "success")]


def _host_serves(site, host: str, instance: str, topic: str) -> None:
    keys = _keys.Keys("lab1", host)
    for key in (keys.bridge_live(f"zid-{host}"), keys.request_live(instance, topic)):
        site.apply(_keys.Keys("lab1", "hostA").parse_live(key), True)


def test_a_proxy_kept_across_a_change_of_the_view_is_never_without_its_services(session):
    """A second host with the same instance changes what twin@hostB serves (its bare
    name goes to the ambiguity answer): the proxy is changed in place, not remade,
    so a caller of twin@hostB never finds nobody serving it (CI, 2026-12-02)."""
    site = Site("lab1", "hostA")
    calls = Calls(None, session, None, None, _keys.Keys("lab1", "hostA"), site, ["*"])
    try:
        _host_serves(site, "hostB", "twin", "service:twin.where_am_i")
        calls.update(set())
        proxy = calls.proxies["twin@hostB"]
        assert proxy.topics == {"service:twin@hostB.where_am_i", "service:twin.where_am_i"}
        removed = []
        remove = proxy.node.remove_service
        proxy.node.remove_service = lambda topic: (removed.append(topic), remove(topic))
        _host_serves(site, "hostC", "twin", "service:twin.where_am_i")
        calls.update(set())
        assert calls.proxies["twin@hostB"] is proxy and not proxy.node.closed
        assert removed == ["service:twin.where_am_i"]   # only the bare name moved
        assert proxy.topics == {"service:twin@hostB.where_am_i"}
        assert calls.proxies["twin@*"].topics == {"service:twin.where_am_i"}
        assert calls.proxies["twin@hostC"].topics == {"service:twin@hostC.where_am_i"}
        with session._directory as d:     # what a caller's router finds
            servers = {}
            for s in d.subscriptions():
                servers.setdefault(s.topic, []).append(s.inbox)
        assert servers["service:twin@hostB.where_am_i"] == ["twin@hostB"]
        assert servers["service:twin@hostC.where_am_i"] == ["twin@hostC"]
        assert servers["service:twin.where_am_i"] == ["twin@*"]   # the ambiguity answer
    finally:
        for proxy in calls.proxies.values():
            proxy.close()
