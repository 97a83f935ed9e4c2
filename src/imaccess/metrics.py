"""Prometheus metrics of an access node, with the seed's names.

Each node owns its own registry (several nodes can live in one test process). Counters
follow the OpenMetrics convention: ``access_messages_received`` is exposed as
``access_messages_received_total``. ``access_connections_total`` is a gauge of the
connections open now (the seed's name, kept although it reads like a counter).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["NodeMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class NodeMetrics:
    def __init__(self, node_id: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = {"node": node_id}
        r = self.registry
        self.connections = Gauge(
            "access_connections_total", "Connections open now", ["node", "transport"], registry=r
        )
        self.messages_received = Counter(
            "access_messages_received", "Chat messages received from clients", ["node"], registry=r
        ).labels(**labels)
        self.messages_sent = Counter(
            "access_messages_sent", "Chat messages pushed to connections", ["node"], registry=r
        ).labels(**labels)
        self.auth_success = Counter(
            "access_auth_success", "Successful authentications", ["node"], registry=r
        ).labels(**labels)
        self.auth_failed = Counter(
            "access_auth_failed", "Refused authentications", ["node", "code"], registry=r
        )
        self.message_latency = Histogram(
            "access_message_latency",
            "Seconds from receiving a chat message to sending its MessageAck",
            ["node"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        ).labels(**labels)
        self.disconnects = Counter(
            "access_disconnects",
            "Connections closed by the server, by code",
            ["node", "code"],
            registry=r,
        )
        self.rate_limited = Counter(
            "access_rate_limited",
            "Chat messages refused by the per-user rate limit",
            ["node"],
            registry=r,
        ).labels(**labels)
        self.backend_errors = Counter(
            "access_backend_errors",
            "Failed calls to NATS or Redis",
            ["node", "backend"],
            registry=r,
        )
        self._file_transfers = Counter(
            "access_file_transfers",
            "File transfers ended, by direction (upload, download) and outcome",
            ["node", "direction", "outcome"],
            registry=r,
        )
        self._file_bytes = Counter(
            "access_file_bytes",
            "File content bytes moved by completed transfers, by direction",
            ["node", "direction"],
            registry=r,
        )
        self._node = node_id

    def file_transfer(self, direction: str, outcome: str, size: int = 0) -> None:
        self._file_transfers.labels(node=self._node, direction=direction, outcome=outcome).inc()
        if size:
            self._file_bytes.labels(node=self._node, direction=direction).inc(size)

    def watch_outbound(self, queued_bytes: Callable[[], float]) -> None:
        """Report the bytes queued towards clients, summed when scraped (not per write)."""
        gauge = Gauge(
            "access_outbound_queue_bytes",
            "Bytes queued towards clients, not yet acknowledged by them",
            ["node"],
            registry=self.registry,
        )
        gauge.labels(node=self._node).set_function(queued_bytes)

    def connection_opened(self, transport: str) -> None:
        self.connections.labels(node=self._node, transport=transport).inc()

    def connection_closed(self, transport: str) -> None:
        self.connections.labels(node=self._node, transport=transport).dec()

    def auth_refused(self, code: int) -> None:
        self.auth_failed.labels(node=self._node, code=str(code)).inc()

    def disconnected(self, code: int) -> None:
        self.disconnects.labels(node=self._node, code=str(code)).inc()

    def backend_error(self, backend: str) -> None:
        self.backend_errors.labels(node=self._node, backend=backend).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
