"""One QUIC connection of the SDK: its protocol adapter, the streams the client knows of,
and paced writes of files onto their own streams. The :class:`~.sdk.Client` decides when
links open and close; a link only carries bytes and notices loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, BinaryIO

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import QuicEvent

from ..transport.streams import unacked_bytes
from .files import CHUNK, UPLOAD_WINDOW, DownloadStream, Progress

__all__ = ["Link", "LinkLost", "LinkProtocol"]


class LinkLost(Exception):
    """The link this request went out on is gone; the client may retry on the next."""


class LinkProtocol(QuicConnectionProtocol):
    def __init__(self, quic: QuicConnection, **kwargs: Any) -> None:
        super().__init__(quic, **kwargs)
        self.on_event: Callable[[QuicEvent], None] = lambda event: None
        self.ack_waiters: list[asyncio.Future[None]] = []
        self.last_received = time.monotonic()
        """When the server was last heard from: any datagram (the ACK of a keepalive
        PING carries no frame)."""

    def quic_event_received(self, event: QuicEvent) -> None:
        self.on_event(event)

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        self.last_received = time.monotonic()
        super().datagram_received(data, addr)
        waiters, self.ack_waiters = self.ack_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class Link:
    """One QUIC connection and what the client knows about it."""

    def __init__(self, protocol: LinkProtocol, transport: asyncio.DatagramTransport) -> None:
        self.protocol = protocol
        self.transport = transport
        self.quic = protocol._quic
        self.control_stream = self.quic.get_next_available_stream_id()
        self.message_stream: int | None = None
        self.lost: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.close_reason = ""
        self.reconnect_after = 0.0
        self.downloads: dict[int, DownloadStream] = {}

    def write(self, data: bytes, stream_id: int | None = None, end_stream: bool = False) -> None:
        """On ``stream_id``; by default the message stream, or the control stream before it."""
        if self.lost.done():
            raise LinkLost()
        if stream_id is None:
            stream_id = (
                self.message_stream if self.message_stream is not None else self.control_stream
            )
        self.quic.send_stream_data(stream_id, data, end_stream)
        self.protocol.transmit()

    @property
    def last_received(self) -> float:
        return self.protocol.last_received

    def keepalive(self) -> None:
        """A QUIC PING: the node counts any packet as a heartbeat and answers it with a
        bare ACK, which costs it no frame decoding or encoding (PROTOCOL.md "Heartbeat")."""
        if self.lost.done():
            raise LinkLost()
        self.quic.send_ping(0)
        self.protocol.transmit()

    async def write_file(
        self,
        head: bytes,
        source: BinaryIO,
        size: int,
        answered: asyncio.Future[Any],
        on_progress: Progress | None,
    ) -> None:
        """A new unidirectional stream: ``head`` (the offer frame), then ``source`` with at
        most :data:`UPLOAD_WINDOW` bytes unacknowledged, then FIN. Stops early once
        ``answered`` (the server refused); cancelling resets the stream."""
        stream = self.quic.get_next_available_stream_id(is_unidirectional=True)
        try:
            self.write(head, stream)
            sent = 0
            while not answered.done() and (chunk := source.read(CHUNK)):
                self.write(chunk, stream)
                sent += len(chunk)
                if on_progress is not None:
                    on_progress(sent, size)
                while unacked_bytes(self.quic, stream) > UPLOAD_WINDOW and not answered.done():
                    await self._next_ack()
            if not answered.done():
                self.write(b"", stream, end_stream=True)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                self.quic.reset_stream(stream, 0)
                self.protocol.transmit()
            raise

    async def _next_ack(self) -> None:
        """Return after the next datagram from the server (acks ride on those)."""
        if self.lost.done():
            raise LinkLost()
        waiter = asyncio.get_running_loop().create_future()
        self.protocol.ack_waiters.append(waiter)
        await asyncio.wait({waiter, self.lost}, return_when=asyncio.FIRST_COMPLETED)
        if self.lost.done():
            raise LinkLost()

    def mark_lost(self, code: int) -> None:
        if not self.lost.done():
            self.lost.set_result(self.close_code if self.close_code is not None else code)
        downloads, self.downloads = self.downloads, {}
        for download in downloads.values():
            download.abandon(LinkLost())

    def close(self) -> None:
        self.protocol.close()
        self.transport.close()
