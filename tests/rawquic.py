"""A bare QUIC peer for tests: writes arbitrary bytes on streams, reads frames back,
and reports the close code. It uses the protocol codec only to build and read frames,
so tests can send exactly the malformed input they mean to.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import (
    ConnectionTerminated,
    HandshakeCompleted,
    PingAcknowledged,
    QuicEvent,
    StreamDataReceived,
)
from aioquic.tls import SessionTicket

from imaccess.protocol import (
    AuthRequest,
    AuthResponse,
    Body,
    FrameDecoder,
    Packet,
    decode_frame,
    encode_packet,
)


class _Protocol(QuicConnectionProtocol):
    def __init__(self, quic: QuicConnection, **kwargs: Any) -> None:
        super().__init__(quic, **kwargs)
        self.peer: RawPeer | None = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if self.peer is not None:
            self.peer.on_event(event)

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        if self.peer is None:
            super().datagram_received(data, addr)
            return
        before = self.peer.stream_events
        super().datagram_received(data, addr)
        self.peer.arrivals.append(self.peer.stream_events > before)


class _Recording:
    """A datagram transport that keeps a copy of what it sends, for replay tests."""

    def __init__(self, transport: asyncio.DatagramTransport, sent: list[bytes]) -> None:
        self._transport = transport
        self._sent = sent

    def sendto(self, data: bytes, addr: Any = None) -> None:
        self._sent.append(data)
        self._transport.sendto(data, addr)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class RawPeer:
    def __init__(self, protocol: _Protocol, transport: asyncio.DatagramTransport) -> None:
        self.protocol = protocol
        self.transport = transport
        self.quic = protocol._quic
        self.packets: asyncio.Queue[tuple[int, Packet]] = asyncio.Queue()
        self.terminated: asyncio.Future[ConnectionTerminated] = (
            asyncio.get_running_loop().create_future()
        )
        self._decoders: dict[int, FrameDecoder] = {}
        self._seq = 0
        self.tickets: list[SessionTicket] = []
        # aioquic's wait_connected() misses a handshake that completed before it was called
        self.handshake: asyncio.Future[HandshakeCompleted] = (
            asyncio.get_running_loop().create_future()
        )
        self._old_transports: list[asyncio.DatagramTransport] = []
        self.pings_acked: asyncio.Queue[int] = asyncio.Queue()
        self.sent_datagrams: list[bytes] = []
        """Every datagram sent, when connected with ``record=True``."""
        self.stream_events = 0
        self.arrivals: list[bool] = []
        """For each datagram from the server: whether it carried stream data."""

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        ca_file: str,
        *,
        local_port: int = 0,
        local_host: str = "127.0.0.1",
        wait: bool = True,
        session_ticket: SessionTicket | None = None,
        record: bool = False,
    ) -> RawPeer:
        configuration = QuicConfiguration(
            is_client=True, alpn_protocols=["im-access"], server_name="localhost"
        )
        configuration.load_verify_locations(ca_file)
        configuration.session_ticket = session_ticket
        tickets: list[SessionTicket] = []
        quic = QuicConnection(configuration=configuration, session_ticket_handler=tickets.append)
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _Protocol(quic), local_addr=(local_host, local_port)
        )
        peer = cls(protocol, transport)
        peer.tickets = tickets
        protocol.peer = peer
        if record:
            protocol._transport = _Recording(transport, peer.sent_datagrams)  # type: ignore[assignment]
        protocol.connect((host, port))
        if wait:
            await asyncio.wait_for(protocol.wait_connected(), 5)
        return peer

    def on_event(self, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived):
            self.stream_events += 1
            decoder = self._decoders.setdefault(event.stream_id, FrameDecoder(1 << 24))
            for frame in decoder.feed(event.data):
                self.packets.put_nowait((event.stream_id, decode_frame(frame)))
        elif isinstance(event, HandshakeCompleted) and not self.handshake.done():
            self.handshake.set_result(event)
        elif isinstance(event, ConnectionTerminated) and not self.terminated.done():
            self.terminated.set_result(event)
        elif isinstance(event, PingAcknowledged):
            self.pings_acked.put_nowait(event.uid)

    async def ping(self, uid: int, timeout: float = 5.0) -> None:
        """A QUIC PING (the SDK's keepalive), until the server acknowledges it."""
        self.quic.send_ping(uid)
        self.protocol.transmit()
        assert await asyncio.wait_for(self.pings_acked.get(), timeout) == uid

    def new_stream(self) -> int:
        return self.quic.get_next_available_stream_id()

    def write(self, stream_id: int, data: bytes) -> None:
        self.quic.send_stream_data(stream_id, data)
        self.protocol.transmit()

    def send(self, stream_id: int, body: Body) -> int:
        self._seq += 1
        self.write(stream_id, encode_packet(Packet(self._seq, body)))
        return self._seq

    async def authenticate(self, token: str, device_id: str = "d") -> int:
        """Open the control stream with an AuthRequest; the AuthAck must be OK. Returns
        the control stream."""
        control = self.new_stream()
        self.send(control, AuthRequest(token, device_id, "test"))
        _, reply = await self.next()
        assert isinstance(reply.body, AuthResponse) and reply.body.code == 0, reply
        return control

    async def next(self, timeout: float = 5.0) -> tuple[int, Packet]:
        return await asyncio.wait_for(self.packets.get(), timeout)

    async def next_of(self, kind: type, timeout: float = 5.0) -> Packet:
        """The next packet whose body is a ``kind``; others (such as pushes) are skipped."""
        while True:
            _, packet = await self.next(timeout)
            if isinstance(packet.body, kind):
                return packet

    async def closed(self, timeout: float = 5.0) -> ConnectionTerminated:
        return await asyncio.wait_for(asyncio.shield(self.terminated), timeout)

    async def rebind(self) -> int:
        """Move to a new local port, as a phone does when it changes networks; returns it.

        The old socket stays open (late packets to it still reach this peer)."""
        loop = asyncio.get_running_loop()
        self._old_transports.append(self.transport)
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self.protocol, local_addr=("127.0.0.1", 0)
        )
        self.transport = transport
        return int(transport.get_extra_info("sockname")[1])

    def vanish(self) -> None:
        """Go silent like a device that lost power: read nothing, send nothing, ack nothing."""
        self.protocol.datagram_received = lambda data, addr: None  # type: ignore[method-assign]
        self.protocol.transmit = lambda: None  # type: ignore[method-assign]

    def close(self) -> None:
        self.protocol.close()
        self.transport.close()
        for old in self._old_transports:
            old.close()
