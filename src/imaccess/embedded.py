"""Assembling a runnable gateway: an access node listening on QUIC (raw ``im-access`` and,
on the same port, WebTransport over HTTP/3) and on HTTP (the WebSocket fallback) over a
given bus and location store. :class:`EmbeddedGateway` is the one-process default (in-memory bus and
store plus the reference Logic); :func:`cluster_gateway` uses NATS and Redis.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from types import TracebackType
from typing import Any

from .admin import AdminServer
from .auth import TokenVerifier, issue_token
from .bus import Bus, MemoryBus
from .logic import LogicService, MemoryInbox
from .node import AccessNode
from .settings import Settings, SettingsError, split_host_port
from .storage import LocationStore, MemoryLocationStore
from .transport.certs import certificate_sha256, ensure_dev_certificate
from .transport.http import DevEndpoints
from .transport.quic import QuicServer, make_server_configuration, serve_quic
from .transport.reuseport import WorkerListeners
from .transport.websocket import WEBSOCKET_PATH, WebSocketServer, serve_http
from .transport.webtransport import WEBTRANSPORT_PATH

__all__ = ["EmbeddedGateway", "Gateway", "cluster_gateway", "resolve_certificate"]

log = logging.getLogger(__name__)


def resolve_certificate(settings: Settings) -> tuple[str, str]:
    """The configured certificate, or a development one made in the state directory."""
    quic = settings.quic
    if quic.certificate:
        if not quic.private_key:
            raise ValueError("quic.certificate is set but quic.private_key is not")
        return quic.certificate, quic.private_key
    cert, key = ensure_dev_certificate(Path(quic.state_dir))
    return str(cert), str(key)


class Gateway:
    """An access node on ``settings.listen`` (QUIC) and ``settings.http.listen`` (WebSocket)
    over the given bus and location store."""

    dev_endpoints = False
    """Serve ``/dev-config.json`` and ``/dev-token`` on the HTTP listener (development only)."""

    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        locations: LocationStore,
        listeners: WorkerListeners | None = None,
    ) -> None:
        self.settings = settings
        self.listeners = listeners
        """Set in a worker process: its sockets of the node's ports (:mod:`.workers`)."""
        self.bus = bus
        self.locations = locations
        self.node = AccessNode(
            settings, bus=bus, locations=locations, verifier=TokenVerifier(settings.auth)
        )
        self.cert_file, self.key_file = resolve_certificate(settings)
        self._server: QuicServer | None = None
        self.address: tuple[str, int] = settings.listen_address
        self.http: WebSocketServer | None = None
        self.http_address: tuple[str, int] | None = None
        self.admin = AdminServer(self.node.metrics.exposition, self._readiness)

    async def start(self) -> None:
        await self.node.start()
        host, port = self.settings.listen_address
        quic = self.settings.quic
        self._server = await serve_quic(
            host,
            port,
            make_server_configuration(quic, self.cert_file, self.key_file),
            self.node,
            retry=quic.retry,
            max_streams=(quic.max_streams_bidi, quic.max_streams_uni),
            session_deadline=self.settings.auth.deadline,
            socket_buffer=quic.socket_buffer,
            sock=self.listeners.udp if self.listeners else None,
            new_cid=self.listeners.new_cid if self.listeners else None,
        )
        self.quic_server = self._server
        self.address = self._server.sockname
        log.info("listening on %s:%d", *self.address, extra={"node_id": self.node.node_id})
        if self.settings.http.listen:
            http_host, http_port = split_host_port(self.settings.http.listen)
            dev = DevEndpoints(self.dev_config, self._dev_token) if self.dev_endpoints else None
            try:
                self.http = await serve_http(
                    http_host,
                    http_port,
                    self.node,
                    self.settings.limits.max_frame_size,
                    dev,
                    self.listeners.tcp if self.listeners else None,
                )
            except OSError as exc:
                log.error("HTTP listener on %s failed: %s", self.settings.http.listen, exc)
            else:
                self.http_address = self.http.sockname
                log.info("HTTP (WebSocket %s) on %s:%d", WEBSOCKET_PATH, *self.http_address)
        if self.settings.admin.listen:
            admin_host, admin_port = split_host_port(self.settings.admin.listen)
            try:
                await self.admin.start(admin_host, admin_port)
            except OSError as exc:
                log.error("admin listener on %s failed: %s", self.settings.admin.listen, exc)

    @property
    def webtransport_url(self) -> str:
        host, port = self.address
        return f"https://{host}:{port}{WEBTRANSPORT_PATH}"

    @property
    def websocket_url(self) -> str | None:
        if self.http_address is None:
            return None
        host, port = self.http_address
        return f"ws://{host}:{port}{WEBSOCKET_PATH}"

    def dev_config(self) -> dict[str, Any]:
        """What a browser page needs to connect in development (``/dev-config.json``)."""
        digest = certificate_sha256(Path(self.cert_file).read_bytes())
        return {
            "webtransport_url": self.webtransport_url,
            "websocket_url": self.websocket_url,
            "cert_sha256": base64.b64encode(digest).decode(),
            "node_id": self.node.node_id,
        }

    def _dev_token(self, user_id: int) -> str:
        return issue_token(self.settings.auth, user_id)

    async def _readiness(self) -> tuple[bool, str]:
        if not self.node.accepting:
            return False, "not accepting connections (starting or draining)"
        if not self.bus.healthy():
            return False, "bus (NATS) unreachable"
        if not await self.locations.ping():
            return False, "location store (Redis) unreachable"
        return True, "ready"

    async def stop(self) -> None:
        await self.node.stop()  # /readyz answers 503 while it drains
        await self.admin.stop()
        if self.http is not None:
            await self.http.stop()
            self.http = None
        if self._server is not None:
            self._server.close()
            self._server = None
        await self.bus.close()
        await self.locations.close()

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class EmbeddedGateway(Gateway):
    """Access node + memory bus + memory store + Logic, in one process."""

    dev_endpoints = True

    def __init__(self, settings: Settings) -> None:
        if settings.workers > 1:
            raise SettingsError(
                "workers: the embedded gateway (imaccess dev) is one process: its bus, "
                "location store and Logic live in memory and cannot be shared by workers; "
                "run imaccess access on NATS and Redis for more"
            )
        memory_bus = MemoryBus(dedupe_window=settings.logic.dedupe_window)
        locations = MemoryLocationStore()
        super().__init__(settings, memory_bus, locations)
        self.memory_bus = memory_bus
        self.inbox = MemoryInbox(limit=settings.logic.inbox_limit)
        self.logic = LogicService(
            self.inbox, locations, memory_bus, sync_batch=settings.logic.sync_batch
        )
        memory_bus.attach_logic(self.logic)

    async def __aenter__(self) -> EmbeddedGateway:
        await self.start()
        return self


async def cluster_gateway(settings: Settings, listeners: WorkerListeners | None = None) -> Gateway:
    """An access node on NATS (``settings.nats``) and Redis (``settings.redis``); in a
    worker process, on its ``listeners``."""
    from .nats_bus import NatsAccessBus
    from .redis_store import RedisLocationStore, connect_redis

    redis = await connect_redis(settings.redis)
    return Gateway(settings, NatsAccessBus(settings.nats), RedisLocationStore(redis), listeners)
