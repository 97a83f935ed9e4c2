"""What one worker counts, shipped to the coordinator after each phase.

Counters and log histograms only (no raw samples), so a phase's report is a few KB
whatever the load. Times are ``time.monotonic()``: CLOCK_MONOTONIC is one clock for the
whole machine, so a send time written into a message by one process can be compared
with the delivery time seen by another.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .hist import LogHistogram

__all__ = ["Recorder", "content_for", "sent_at"]

_SEPARATOR = "|"


def content_for(sent: float, size: int) -> str:
    """Message text carrying its send time, padded to ``size`` characters."""
    head = f"{sent!r}{_SEPARATOR}"
    return head + "x" * max(0, size - len(head))


def sent_at(content: str) -> float | None:
    head, sep, _ = content.partition(_SEPARATOR)
    if not sep:
        return None
    try:
        return float(head)
    except ValueError:
        return None


@dataclass(slots=True)
class Recorder:
    auth: LogHistogram = field(default_factory=LogHistogram)
    """Connect call to AuthAck (or Socket.IO connect) received."""
    heartbeat: LogHistogram = field(default_factory=LogHistogram)
    ack: LogHistogram = field(default_factory=LogHistogram)
    """ChatMessage sent to its MessageAck (Socket.IO: to its ack callback)."""
    delivery: LogHistogram = field(default_factory=LogHistogram)
    """ChatMessage sent to the recipient's push."""
    broadcast: LogHistogram = field(default_factory=LogHistogram)
    connected: int = 0
    connect_failed: int = 0
    resumed: int = 0
    sent: int = 0
    acked: int = 0
    refused: int = 0
    delivered: int = 0
    duplicates: int = 0
    heartbeats_sent: int = 0
    heartbeats_echoed: int = 0
    keepalives_answered: int = 0
    broadcasts: int = 0
    disconnects: int = 0
    datagrams_out: int = 0
    """UDP datagrams the worker's QUIC clients sent (what the server had to receive)."""
    datagrams_in: int = 0
    first_delivery: float | None = None
    last_delivery: float | None = None
    errors: dict[str, int] = field(default_factory=dict)
    since: float = field(default_factory=time.monotonic)
    """Replies to requests sent before this (a reset) are not counted: a phase measures
    only its own requests."""

    def reset(self) -> None:
        """Zero in place: every client of the worker keeps a reference to this object."""
        fresh = Recorder()
        for name in self.__slots__:
            setattr(self, name, getattr(fresh, name))

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    def delivered_now(self, sent: float | None, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.delivered += 1
        if sent is not None:
            self.delivery.record(now - sent)
        if self.first_delivery is None:
            self.first_delivery = now
        self.last_delivery = now

    def snapshot(self) -> dict[str, Any]:
        """Picklable and mergeable: see :func:`merge`."""
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            out[name] = dict(value) if isinstance(value, dict) else value
        return out

    @classmethod
    def merge(cls, snapshots: list[dict[str, Any]]) -> Recorder:
        total = cls()
        for snap in snapshots:
            for name, value in snap.items():
                mine = getattr(total, name)
                if isinstance(mine, LogHistogram):
                    mine.merge(value)
                elif name == "errors":
                    for key, n in value.items():
                        total.errors[key] = total.errors.get(key, 0) + n
                elif name == "first_delivery":
                    if value is not None and (mine is None or value < mine):
                        total.first_delivery = value
                elif name == "since":
                    total.since = min(total.since, value)
                elif name == "last_delivery":
                    if value is not None and (mine is None or value > mine):
                        total.last_delivery = value
                else:
                    setattr(total, name, mine + value)
        return total
