"""/metrics: the session in Prometheus' text format, through prometheus_client
with a custom collector over the Collector's latest figures (nothing is
counted twice, nothing kept per scrape).

    ether_messages_published_total{session,instance,topic}   counted while watched
    ether_node_published_total{session,instance}              the node's own total
    ether_messages_handled_total{session,instance}
    ether_messages_dropped_total{session,instance,topic}      what a drop-policy inbox refused, as its publishers count it
    ether_inbox_fill_ratio{session,instance}
    ether_handler_errors_total{session,instance,topic}
    ether_handler_seconds{session,instance,topic}             histogram, a sample while watched
    ether_instance_up{session,instance}
"""
from __future__ import annotations

from ether import lowlevel

__all__ = ["registry_for", "render"]


def registry_for(collector):
    from prometheus_client.core import (CollectorRegistry, CounterMetricFamily, GaugeMetricFamily,
                                        HistogramMetricFamily)

    session = collector.session
    bounds = [str(b) for b in lowlevel.STATS_BUCKETS_S] + ["+Inf"]

    class _Session:
        def collect(self):
            stats, rows = collector.stats()
            state = collector.state()
            published = CounterMetricFamily(
                "ether_messages_published", "Messages a node published on a topic (while watched)",
                labels=["session", "instance", "topic"])
            node_published = CounterMetricFamily(
                "ether_node_published", "Messages a node published, all topics",
                labels=["session", "instance"])
            handled = CounterMetricFamily(
                "ether_messages_handled", "Messages a node handled", labels=["session", "instance"])
            dropped = CounterMetricFamily(
                "ether_messages_dropped", "Messages a drop-policy subscriber's full inbox refused",
                labels=["session", "instance", "topic"])
            errors = CounterMetricFamily(
                "ether_handler_errors", "Handler exceptions", labels=["session", "instance", "topic"])
            fill = GaugeMetricFamily("ether_inbox_fill_ratio", "How full a node's inbox is (0-1)",
                                     labels=["session", "instance"])
            up = GaugeMetricFamily("ether_instance_up", "1 while the member's process lives",
                                   labels=["session", "instance"])
            seconds = HistogramMetricFamily(
                "ether_handler_seconds", "Time in a node's handlers per message (a sample of the watched time)",
                labels=["session", "instance", "topic"])
            for name, s in stats.items():
                for topic, n in s.get("topics", {}).items():
                    if not topic.startswith(lowlevel.RESERVED_PREFIXES):
                        published.add_metric([session, name, topic], n)
                node_published.add_metric([session, name], s.get("published", 0))
                handled.add_metric([session, name], s.get("handled", 0))
                for topic, reason, n in s.get("rejected", ()):
                    if reason.startswith("handler raised"):
                        errors.add_metric([session, name, topic], n)
                for topic, (count, total, buckets) in s.get("handler_seconds", {}).items():
                    cumulative, acc = [], 0
                    for bound, n in zip(bounds, buckets):
                        acc += n
                        cumulative.append((bound, acc))
                    seconds.add_metric([session, name, topic], cumulative, total)
            # Per receiving inbox and topic, as the publishers count them (an inbox's own
            # counter in shared memory has no topic: it would count a drop on each topic).
            refused: dict[tuple[str, str], int] = {}
            for s in stats.values():
                for inbox, topic, n in s.get("drops", ()):
                    refused[(inbox, topic)] = refused.get((inbox, topic), 0) + n
            for (inbox, topic), n in sorted(refused.items()):
                dropped.add_metric([session, inbox, topic], n)
            for name, row in rows.items():
                if row.get("inbox_fill") is not None:
                    fill.add_metric([session, name], row["inbox_fill"])
                up.add_metric([session, name], 0 if row["state"] in ("dead", "failed", "restarting", "stuck") else 1)
            yield from (published, node_published, handled, dropped, errors, fill, up, seconds)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Session())
    return registry


def render(registry) -> tuple[bytes, str]:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    return generate_latest(registry), CONTENT_TYPE_LATEST
