"""Node.remove_service: a request routed to a node before it stopped serving the
topic is answered ServiceNotFound at once, not left for its caller's timeout."""
from __future__ import annotations

import pytest

from ether._node._node import Node


@pytest.mark.timeout(20)
def test_a_request_for_a_removed_service_is_answered_service_not_found(session):
    server, caller = Node(session, "srv"), Node(session, "cli")
    try:
        server.add_service("service:srv.m", lambda envelope: None)
        request_id, _ = caller.request("service:srv.m", {}, what="srv.m", timeout=5.0)
        server.remove_service("service:srv.m")   # the request is in its inbox already
        with session._directory as d:
            assert not [s for s in d.subscriptions() if s.topic == "service:srv.m"]
        with server._consumer:
            server.pump(5.0)
        with caller._consumer:
            while caller._pending.get(request_id) is None:
                caller.pump(1.0)
        body = caller.wait_reply(request_id, 1.0, what="srv.m")
        assert body["status"] == "failed" and body["type"] == "ServiceNotFound"
        assert "srv does not serve 'service:srv.m'" in body["error"]
    finally:
        caller.close()
        server.close()


def test_a_replaced_service_keeps_its_one_subscription(session):
    server = Node(session, "srv")
    try:
        server.add_service("service:srv.m", lambda envelope: 1)
        server.add_service("service:srv.m", lambda envelope: 2, replace=True)
        with session._directory as d:
            assert [s.inbox for s in d.subscriptions() if s.topic == "service:srv.m"] == ["srv"]
        assert server._services["service:srv.m"](None) == 2
    finally:
        server.close()
