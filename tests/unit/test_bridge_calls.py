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
