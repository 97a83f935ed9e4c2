"""WebTransport over HTTP/3 on the QUIC port: an aioquic H3 client plays the browser."""

from __future__ import annotations

import asyncio
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import FrameType, H3Connection
from aioquic.h3.events import HeadersReceived, WebTransportStreamDataReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, QuicEvent

from imaccess.embedded import EmbeddedGateway
from imaccess.protocol import (
    AuthRequest,
    AuthResponse,
    Body,
    ChatMessage,
    Code,
    FrameDecoder,
    Heartbeat,
    MessageAck,
    Packet,
    decode_frame,
    encode_packet,
)
from imaccess.settings import Settings

from .conftest import ClientFactory, token_for


class _Protocol(QuicConnectionProtocol):
    def __init__(self, quic: QuicConnection, **kwargs: Any) -> None:
        super().__init__(quic, **kwargs)
        self.h3 = H3Connection(quic, enable_webtransport=True)
        loop = asyncio.get_running_loop()
        self.headers: dict[int, asyncio.Future[dict[bytes, bytes]]] = {}
        self.packets: asyncio.Queue[tuple[int, Packet]] = asyncio.Queue()
        self.terminated: asyncio.Future[ConnectionTerminated] = loop.create_future()
        self._decoders: dict[int, FrameDecoder] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated) and not self.terminated.done():
            self.terminated.set_result(event)
        for h3_event in self.h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived):
                future = self.headers.get(h3_event.stream_id)
                if future is not None and not future.done():
                    future.set_result(dict(h3_event.headers))
            elif isinstance(h3_event, WebTransportStreamDataReceived):
                decoder = self._decoders.setdefault(h3_event.stream_id, FrameDecoder(1 << 24))
                for frame in decoder.feed(h3_event.data):
                    self.packets.put_nowait((h3_event.stream_id, decode_frame(frame)))


class WtPeer:
    """A WebTransport client that speaks our frames on WebTransport bidi streams."""

    def __init__(self, protocol: _Protocol, transport: asyncio.DatagramTransport) -> None:
        self.protocol = protocol
        self.transport = transport
        self.quic = protocol._quic
        self.session_id = -1
        self._seq = 0

    @classmethod
    async def connect(cls, gateway: EmbeddedGateway) -> WtPeer:
        configuration = QuicConfiguration(
            is_client=True,
            alpn_protocols=["h3"],
            server_name="localhost",
            max_datagram_frame_size=65536,
        )
        configuration.load_verify_locations(gateway.cert_file)
        quic = QuicConnection(configuration=configuration)
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _Protocol(quic), local_addr=("127.0.0.1", 0)
        )
        protocol.connect(gateway.address)
        await asyncio.wait_for(protocol.wait_connected(), 5)
        return cls(protocol, transport)

    async def open_session(self, path: str = "/im") -> dict[bytes, bytes]:
        """Send the extended CONNECT; return the response headers."""
        stream_id = self.quic.get_next_available_stream_id()
        future = asyncio.get_running_loop().create_future()
        self.protocol.headers[stream_id] = future
        self.protocol.h3.send_headers(
            stream_id,
            [
                (b":method", b"CONNECT"),
                (b":scheme", b"https"),
                (b":authority", b"127.0.0.1"),
                (b":path", path.encode()),
                (b":protocol", b"webtransport"),
            ],
        )
        self.protocol.transmit()
        headers = await asyncio.wait_for(future, 5)
        self.session_id = stream_id
        return headers

    def new_stream(self) -> int:
        h3 = self.protocol.h3
        stream_id = h3.create_webtransport_stream(self.session_id)
        # aioquic's H3 client does not mark the bidi streams it opens as WebTransport
        # streams, so the server's replies would be parsed as HTTP/3 frames; a browser does.
        with h3._get_or_create_stream(stream_id) as stream:
            stream.frame_type = FrameType.WEBTRANSPORT_STREAM
            stream.session_id = self.session_id
        return stream_id

    def send(self, stream_id: int, body: Body) -> int:
        self._seq += 1
        self.quic.send_stream_data(stream_id, encode_packet(Packet(self._seq, body)))
        self.protocol.transmit()
        return self._seq

    async def next(self, timeout: float = 5.0) -> tuple[int, Packet]:
        return await asyncio.wait_for(self.protocol.packets.get(), timeout)

    async def next_of(self, kind: type, timeout: float = 5.0) -> tuple[int, Packet]:
        while True:
            stream_id, packet = await self.next(timeout)
            if isinstance(packet.body, kind):
                return stream_id, packet

    async def closed(self, timeout: float = 5.0) -> ConnectionTerminated:
        return await asyncio.wait_for(asyncio.shield(self.protocol.terminated), timeout)

    def close(self) -> None:
        self.protocol.close()
        self.transport.close()


async def _authenticated(gateway: EmbeddedGateway, user_id: int) -> tuple[WtPeer, int, int]:
    """A WebTransport peer with an open session, authenticated, and its message stream."""
    peer = await WtPeer.connect(gateway)
    headers = await peer.open_session()
    assert headers[b":status"] == b"200"
    control = peer.new_stream()
    seq = peer.send(control, AuthRequest(token_for(gateway.settings, user_id), "web", "browser"))
    stream_id, packet = await peer.next()
    assert stream_id == control and packet.seq == seq
    assert isinstance(packet.body, AuthResponse) and packet.body.code == Code.OK
    assert packet.body.user_id == user_id
    messages = peer.new_stream()
    seq = peer.send(messages, Heartbeat())
    stream_id, packet = await peer.next()
    assert (stream_id, packet.seq) == (messages, seq) and isinstance(packet.body, Heartbeat)
    return peer, control, messages


async def test_webtransport_chat_with_sdk_client_both_ways(
    gateway: EmbeddedGateway, client: ClientFactory
) -> None:
    bob = await client(2)
    peer, _, messages = await _authenticated(gateway, 1)
    try:
        # browser -> SDK
        seq = peer.send(messages, ChatMessage("wt-1", to_user=2, content="hello from the web"))
        stream_id, ack = await peer.next_of(MessageAck)
        assert stream_id == messages and ack.seq == seq
        assert isinstance(ack.body, MessageAck) and ack.body.code == Code.OK
        got = await bob.next_message(5)
        assert (got.from_user, got.content) == (1, "hello from the web")
        # SDK -> browser: the push arrives on the WebTransport message stream
        sent = await bob.send(1, "hello from the app")
        stream_id, push = await peer.next_of(ChatMessage)
        assert stream_id == messages and push.seq == 0
        assert isinstance(push.body, ChatMessage)
        assert (push.body.msg_id, push.body.from_user, push.body.content) == (
            sent.msg_id,
            2,
            "hello from the app",
        )
        assert (
            gateway.node.metrics.connections.labels(
                node=gateway.node.node_id, transport="webtransport"
            )._value.get()
            == 1
        )
    finally:
        peer.close()


async def test_raw_quic_still_works_next_to_h3(
    gateway: EmbeddedGateway, client: ClientFactory
) -> None:
    alice, bob = await client(1), await client(2)
    peer, _, _ = await _authenticated(gateway, 3)
    try:
        ack = await alice.send(2, "plain QUIC")
        assert (await bob.next_message(5)).msg_id == ack.msg_id
    finally:
        peer.close()


async def test_webtransport_bad_token(gateway: EmbeddedGateway) -> None:
    peer = await WtPeer.connect(gateway)
    try:
        assert (await peer.open_session())[b":status"] == b"200"
        control = peer.new_stream()
        seq = peer.send(control, AuthRequest("not-a-token", "web", "browser"))
        stream_id, packet = await peer.next()
        assert stream_id == control and packet.seq == seq
        assert isinstance(packet.body, AuthResponse)
        assert packet.body.code == Code.AUTH_INVALID_TOKEN
        terminated = await peer.closed()
        assert terminated.error_code == Code.AUTH_INVALID_TOKEN
    finally:
        peer.close()


async def test_webtransport_wrong_path_is_404(gateway: EmbeddedGateway) -> None:
    peer = await WtPeer.connect(gateway)
    try:
        assert (await peer.open_session("/elsewhere"))[b":status"] == b"404"
        # a second try on the right path still works
        assert (await peer.open_session("/im"))[b":status"] == b"200"
    finally:
        peer.close()


async def test_server_offers_both_alpns(settings: Settings) -> None:
    from imaccess.transport.quic import make_server_configuration
    from imaccess.transport.webtransport import WEBTRANSPORT_ALPN

    async with EmbeddedGateway(settings) as gateway:
        configuration = make_server_configuration(
            settings.quic, gateway.cert_file, gateway.key_file
        )
    assert configuration.alpn_protocols == ["im-access", WEBTRANSPORT_ALPN]


async def test_an_h3_connection_without_a_session_is_closed_at_the_auth_deadline(
    settings: Settings,
) -> None:
    settings.auth.deadline = 0.3
    async with EmbeddedGateway(settings) as gw:
        idle = await WtPeer.connect(gw)  # HTTP/3 is up, but no CONNECT ever comes
        assert (await idle.closed()).error_code == Code.AUTH_TIMEOUT
        idle.close()
