"""The embedded default: one process with the access node, an in-memory bus and
location store, and the reference Logic service. ``imaccess dev`` runs it; the tests
start it on a free port.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType

from .auth import TokenVerifier
from .bus import MemoryBus
from .logic import LogicService, MemoryInbox
from .node import AccessNode
from .settings import Settings
from .storage import MemoryLocationStore
from .transport.certs import ensure_dev_certificate
from .transport.quic import QuicServer, make_server_configuration, serve_quic

__all__ = ["EmbeddedGateway", "resolve_certificate"]

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


class EmbeddedGateway:
    """Access node + memory bus + memory store + Logic, listening on ``settings.listen``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bus = MemoryBus()
        self.locations = MemoryLocationStore()
        self.inbox = MemoryInbox(
            limit=settings.logic.inbox_limit, dedupe_window=settings.logic.dedupe_window
        )
        self.logic = LogicService(
            self.inbox, self.locations, self.bus, sync_batch=settings.logic.sync_batch
        )
        self.bus.attach_logic(self.logic)
        self.node = AccessNode(
            settings, bus=self.bus, locations=self.locations, verifier=TokenVerifier(settings.auth)
        )
        self.cert_file, self.key_file = resolve_certificate(settings)
        self._server: QuicServer | None = None
        self.address: tuple[str, int] = settings.listen_address

    async def start(self) -> None:
        await self.node.start()
        host, port = self.settings.listen_address
        configuration = make_server_configuration(self.settings.quic, self.cert_file, self.key_file)
        quic = self.settings.quic
        self._server = await serve_quic(
            host,
            port,
            configuration,
            self.node,
            max_streams=(quic.max_streams_bidi, quic.max_streams_uni),
        )
        sockname = self._server.sockname
        self.address = (sockname[0], sockname[1])
        log.info(
            "listening",
            extra={"node_id": self.node.node_id, "address": f"{host}:{self.address[1]}"},
        )

    async def stop(self) -> None:
        await self.node.stop()
        if self._server is not None:
            self._server.close()
            self._server = None
        await self.bus.close()

    async def __aenter__(self) -> EmbeddedGateway:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
