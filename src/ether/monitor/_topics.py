"""The rows of `ether topics`, `ether topic info` and `ether services`: who
publishes and who subscribes (inspect()), with rates and counts from the stats
topic where nodes report them."""
from __future__ import annotations

from ether import lowlevel

__all__ = ["topic_rows", "service_rows", "user_topic"]

_SERVICE, _SYNC, _SYSTEM = lowlevel.RESERVED_PREFIXES


def user_topic(topic: str) -> bool:
    return not topic.startswith(lowlevel.RESERVED_PREFIXES)


def topic_rows(snapshot, stats: dict[str, dict] | None = None, rates=None, *,
               system: bool = False) -> list[dict]:
    """One row per topic that someone subscribes to or publishes; Ether's own
    (ether/...) only with system=True, requests and sync never (services)."""
    stats = stats or {}
    inboxes = {i.name: i for i in snapshot.inboxes}
    rows: dict[str, dict] = {}

    def row(topic: str) -> dict | None:
        if topic.startswith((_SERVICE, _SYNC)) or (topic.startswith(_SYSTEM) and not system):
            return None
        r = rows.get(topic)
        if r is None:
            r = rows[topic] = {"topic": topic, "pattern": lowlevel.is_pattern(topic),
                               "publishers": [], "subscribers": [], "published": None,
                               "rate_hz": None, "dropped": 0}
        return r

    for p in snapshot.publishers:
        r = row(p.topic)
        if r is not None and p.inbox not in r["publishers"]:
            r["publishers"].append(p.inbox)
    for s in snapshot.subscriptions:
        r = row(s.topic)
        if r is None:
            continue
        inbox = inboxes.get(s.inbox)
        r["subscribers"].append({"inbox": s.inbox, "policy": s.policy, "timeout": s.timeout,
                                 "fill": inbox.fill if inbox else None,
                                 "dropped": inbox.dropped if inbox else None})
        if s.policy == "drop" and inbox is not None:
            r["dropped"] += inbox.dropped
    for name, s in stats.items():
        for topic, n in s.get("topics", {}).items():
            r = rows.get(topic)
            if r is None:
                continue
            r["published"] = (r["published"] or 0) + n
            if name not in r["publishers"]:
                r["publishers"].append(name)  # published without an advert (ether.pub)
            if rates is not None:
                rate = rates(name).get(f"topic:{topic}")
                if rate is not None:
                    r["rate_hz"] = (r["rate_hz"] or 0.0) + rate
    return sorted(rows.values(), key=lambda r: r["topic"])


def service_rows(snapshot) -> list[dict]:
    """One row per service method (and per sync topic), with the inboxes that serve it."""
    out: dict[str, dict] = {}
    for s in snapshot.subscriptions:
        if s.topic.startswith(_SERVICE):
            target, _, method = s.topic[len(_SERVICE):].rpartition(".")
            key = s.topic
            r = out.setdefault(key, {"kind": "service", "service": target, "method": method,
                                     "topic": s.topic, "served_by": []})
        elif s.topic.startswith(_SYNC):
            r = out.setdefault(s.topic, {"kind": "sync", "service": "", "method": "",
                                         "topic": s.topic[len(_SYNC):], "served_by": []})
        else:
            continue
        if s.inbox not in r["served_by"]:
            r["served_by"].append(s.inbox)
    return sorted(out.values(), key=lambda r: (r["kind"], r["service"], r["method"], r["topic"]))
