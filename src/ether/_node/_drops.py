"""Drops per topic: what this node's publishes lost to full drop-policy inboxes.

A drop happens in the publisher (the receiving inbox counts all refused sends
in one counter in shared memory, without their topic), so the publisher counts
them per (inbox, topic), on the drop path only. A receiver that wants them (a
recorder with `--policy drop`) subscribes to DROPS_TOPIC; `Node.report_drops`
then sends it the cumulative counts of this node's drops into it, as a message
that the drain protocol counts like any other: an instance reports when it
answers `drain`, the main before its drain rounds, so every report is handled
before a graceful shutdown ends. Cumulative counts make a repeated or late
report harmless: the receiver keeps the largest per (sender, topic).
"""
from __future__ import annotations

__all__ = ["DROPS_TOPIC", "DropCounts"]

DROPS_TOPIC = "ether/drops"


class DropCounts:
    """Counted per (sender, topic), the key the publish path has at hand (a sender's
    `inbox` is a property call); summed per inbox when read. A restarted inbox
    gets a new sender, so several senders may count drops into one inbox name."""

    def __init__(self):
        self.by_sender: dict[tuple, int] = {}   # (sender, topic) -> drops; publish adds inline
        self._reported: dict[str, dict[str, int]] = {}

    def add(self, sender, topic: str) -> None:
        key = (sender, topic)
        self.by_sender[key] = self.by_sender.get(key, 0) + 1

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        """{inbox: {topic: drops}}."""
        out: dict[str, dict[str, int]] = {}
        for (sender, topic), n in list(self.by_sender.items()):
            topics = out.setdefault(sender.inbox, {})
            topics[topic] = topics.get(topic, 0) + n
        return out

    def unreported(self) -> dict[str, dict[str, int]]:
        """{inbox: its cumulative counts per topic} for the inboxes with drops not
        reported yet."""
        return {inbox: topics for inbox, topics in self.counts.items()
                if topics != self._reported.get(inbox)}

    def reported(self, inbox: str, counts: dict[str, int]) -> None:
        self._reported[inbox] = counts
