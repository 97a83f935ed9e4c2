"""The WebSocket fallback and the browser HTTP listener, with the websockets client."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from imaccess.auth import TokenVerifier
from imaccess.bus import MemoryBus
from imaccess.embedded import EmbeddedGateway, Gateway
from imaccess.protocol import (
    AuthRequest,
    AuthResponse,
    Body,
    ChatMessage,
    Code,
    Error,
    FileHeader,
    FileRequest,
    FrameDecoder,
    Heartbeat,
    MessageAck,
    Packet,
    SyncRequest,
    SyncResponse,
    decode_frame,
    encode_packet,
)
from imaccess.settings import Settings
from imaccess.storage import MemoryLocationStore
from imaccess.transport.certs import certificate_sha256
from imaccess.transport.websocket import websocket_close_code

from .conftest import ClientFactory, token_for


class WsPeer:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._decoder = FrameDecoder(1 << 24)
        self._ready: list[Packet] = []
        self._seq = 0

    @classmethod
    async def connect(cls, gateway: Gateway) -> WsPeer:
        assert gateway.websocket_url is not None
        return cls(await connect(gateway.websocket_url, subprotocols=["imaccess"]))  # type: ignore[list-item]

    def frame(self, body: Body) -> tuple[int, bytes]:
        self._seq += 1
        return self._seq, encode_packet(Packet(self._seq, body))

    async def send(self, body: Body) -> int:
        seq, data = self.frame(body)
        await self.ws.send(data)
        return seq

    async def next(self, timeout: float = 5.0) -> Packet:
        while not self._ready:
            message = await asyncio.wait_for(self.ws.recv(), timeout)
            assert isinstance(message, bytes)
            self._ready.extend(decode_frame(f) for f in self._decoder.feed(message))
        return self._ready.pop(0)

    async def next_of(self, kind: type, timeout: float = 5.0) -> Packet:
        while True:
            packet = await self.next(timeout)
            if isinstance(packet.body, kind):
                return packet

    async def close_code(self, timeout: float = 5.0) -> int | None:
        """Read until the server closes; the close code it sent."""
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(timeout):
                while True:
                    await self.ws.recv()
        assert closed.value.rcvd is not None
        return closed.value.rcvd.code


async def _authenticated(gateway: Gateway, user_id: int) -> WsPeer:
    peer = await WsPeer.connect(gateway)
    assert peer.ws.subprotocol == "imaccess"
    # a frame split over two messages, then two frames in one message
    seq, auth = peer.frame(AuthRequest(token_for(gateway.settings, user_id), "web", "browser"))
    await peer.ws.send(auth[:7])
    await peer.ws.send(auth[7:])
    packet = await peer.next()
    assert packet.seq == seq and isinstance(packet.body, AuthResponse)
    assert packet.body.code == Code.OK and packet.body.user_id == user_id
    first, one = peer.frame(Heartbeat())
    second, two = peer.frame(Heartbeat())
    await peer.ws.send(one + two)
    assert [(await peer.next()).seq, (await peer.next()).seq] == [first, second]
    return peer


def _cert_digest(cert_file: str) -> bytes:
    return certificate_sha256(Path(cert_file).read_bytes())


async def _http_get(address: tuple[str, int], path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(*address)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length)
    writer.close()
    await writer.wait_closed()
    return int(head.split()[1]), body


async def test_websocket_chat_with_sdk_client_both_ways(
    gateway: EmbeddedGateway, client: ClientFactory
) -> None:
    bob = await client(2)
    peer = await _authenticated(gateway, 1)
    try:
        seq = await peer.send(ChatMessage("ws-1", to_user=2, content="hello from the web"))
        ack = await peer.next_of(MessageAck)
        assert ack.seq == seq and isinstance(ack.body, MessageAck) and ack.body.code == Code.OK
        got = await bob.next_message(5)
        assert (got.from_user, got.content) == (1, "hello from the web")
        sent = await bob.send(1, "hello from the app")
        push = await peer.next_of(ChatMessage)
        assert push.seq == 0 and isinstance(push.body, ChatMessage)
        assert (push.body.msg_id, push.body.from_user) == (sent.msg_id, 2)
        assert push.body.content == "hello from the app"
        assert (
            gateway.node.metrics.connections.labels(
                node=gateway.node.node_id, transport="websocket"
            )._value.get()
            == 1
        )
    finally:
        await peer.ws.close()


async def test_websocket_sync(gateway: EmbeddedGateway, client: ClientFactory) -> None:
    bob = await client(2)
    acks = [await bob.send(1, f"while you were away {i}") for i in range(3)]
    peer = await _authenticated(gateway, 1)
    try:
        seq = await peer.send(SyncRequest(since_seq=0, limit=10))
        reply = await peer.next_of(SyncResponse)
        assert reply.seq == seq and isinstance(reply.body, SyncResponse)
        assert [m.msg_id for m in reply.body.messages] == [a.msg_id for a in acks]
        assert not reply.body.has_more
    finally:
        await peer.ws.close()


async def test_malformed_frame_gets_error_then_close(gateway: EmbeddedGateway) -> None:
    peer = await WsPeer.connect(gateway)
    await peer.ws.send(b"\x00\x00\x00\x01\x00")  # length 1 < 2
    packet = await peer.next()
    assert packet.seq == 0 and isinstance(packet.body, Error)
    assert packet.body.code == Code.MALFORMED_FRAME
    assert await peer.close_code() == 4004


async def test_bad_token_gets_auth_response_then_mapped_close(gateway: EmbeddedGateway) -> None:
    peer = await WsPeer.connect(gateway)
    seq = await peer.send(AuthRequest("not-a-token", "web", "browser"))
    packet = await peer.next()
    assert packet.seq == seq and isinstance(packet.body, AuthResponse)
    assert packet.body.code == Code.AUTH_INVALID_TOKEN
    assert await peer.close_code() == websocket_close_code(Code.AUTH_INVALID_TOKEN) == 4601


async def test_text_message_is_refused(gateway: EmbeddedGateway) -> None:
    peer = await WsPeer.connect(gateway)
    await peer.ws.send("hello")
    assert await peer.close_code() == 1003


async def test_oversized_message_closes_1009(gateway: EmbeddedGateway) -> None:
    peer = await WsPeer.connect(gateway)
    await peer.ws.send(b"\x00" * (2 * gateway.settings.limits.max_frame_size + 1))
    assert await peer.close_code() == 1009


def test_close_code_mapping() -> None:
    assert websocket_close_code(0) == 1000
    assert websocket_close_code(3004) == 3004
    assert websocket_close_code(4004) == 4004
    assert websocket_close_code(2002) == 4602
    assert websocket_close_code(1006) == 4506
    assert websocket_close_code(70000) == 1011


async def test_dev_endpoints(gateway: EmbeddedGateway) -> None:
    assert gateway.http_address is not None
    status, body = await _http_get(gateway.http_address, "/dev-config.json")
    assert status == 200
    config = json.loads(body)
    host, port = gateway.address
    http_host, http_port = gateway.http_address
    assert config["webtransport_url"] == f"https://{host}:{port}/im"
    assert config["websocket_url"] == f"ws://{http_host}:{http_port}/ws"
    digest = _cert_digest(gateway.cert_file)
    assert base64.b64decode(config["cert_sha256"]) == digest
    assert config["node_id"] == gateway.node.node_id

    status, body = await _http_get(gateway.http_address, "/dev-token?user_id=42")
    assert status == 200
    token = json.loads(body)["token"]
    assert TokenVerifier(gateway.settings.auth).verify(token).user_id == 42
    assert (await _http_get(gateway.http_address, "/dev-token?user_id=x"))[0] == 400

    status, body = await _http_get(gateway.http_address, "/")
    assert status == 200 and b"imaccess" in body
    assert (await _http_get(gateway.http_address, "/static/../settings.py"))[0] == 404
    assert (await _http_get(gateway.http_address, "/nothing"))[0] == 404


async def test_no_dev_endpoints_outside_dev_mode(settings: Settings) -> None:
    gateway = Gateway(settings, MemoryBus(), MemoryLocationStore())
    async with gateway:
        assert gateway.http_address is not None
        assert (await _http_get(gateway.http_address, "/dev-config.json"))[0] == 404
        assert (await _http_get(gateway.http_address, "/dev-token?user_id=1"))[0] == 404
        assert (await _http_get(gateway.http_address, "/"))[0] == 200


async def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await asyncio.get_running_loop().sock_recv(sock, size - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


def _client_frame(payload: bytes) -> bytes:
    """One masked binary WebSocket frame (mask key 0, so the payload is unchanged)."""
    assert len(payload) < 1 << 16
    return b"\x82\xfe" + len(payload).to_bytes(2, "big") + b"\x00\x00\x00\x00" + payload


async def test_client_that_stops_reading_is_closed_as_slow_consumer(
    gateway: EmbeddedGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imaccess.transport.websocket import WebSocketTransport

    codes: list[int] = []
    original = WebSocketTransport.close

    def close(self: WebSocketTransport, code: int, reason: str) -> None:
        codes.append(code)
        original(self, code, reason)

    monkeypatch.setattr(WebSocketTransport, "close", close)
    assert gateway.http_address is not None
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, gateway.http_address)
        await loop.sock_sendall(
            sock,
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n",
        )
        received = b""
        while b"\r\n\r\n" not in received:
            received += await loop.sock_recv(sock, 1)
        assert received.startswith(b"HTTP/1.1 101"), received
        token = token_for(gateway.settings, 9)
        await loop.sock_sendall(
            sock, _client_frame(encode_packet(Packet(1, AuthRequest(token, "w", "browser"))))
        )
        # the AuthResponse: one unmasked server frame
        header = await _recv_exact(sock, 2)
        size = header[1] & 0x7F
        if size == 126:
            size = int.from_bytes(await _recv_exact(sock, 2), "big")
        body = await _recv_exact(sock, size)
        packet = decode_frame(FrameDecoder(1 << 16).feed(body)[0])
        assert isinstance(packet.body, AuthResponse) and packet.body.code == Code.OK
        (conn,) = [c for c in gateway.node.hub if c.user_id == 9]
        content = "x" * gateway.settings.limits.max_content_bytes
        for i in range(10_000):  # far more than the bound plus the socket buffers
            if conn.closed:
                break
            message = ChatMessage(f"m{i}", from_user=1, to_user=9, content=content)
            conn.push_frame(encode_packet(Packet(0, message)))
            await asyncio.sleep(0)  # let the writer flush this turn
        assert conn.closed and codes == [Code.SLOW_CONSUMER]
        # the client never reads the close frame: the TCP connection is cut after a timeout
        await asyncio.wait_for(conn.gone, 10)
    finally:
        sock.close()


async def test_websocket_clients_are_told_files_need_streams(gateway: EmbeddedGateway) -> None:
    peer = await _authenticated(gateway, 1)
    try:
        seq = await peer.send(FileRequest("0" * 32))
        reply = await peer.next_of(FileHeader)
        assert reply.seq == seq and isinstance(reply.body, FileHeader)
        assert reply.body.code == Code.NOT_SUPPORTED_ON_TRANSPORT
        await peer.send(Heartbeat())  # and the connection stays open
        assert isinstance((await peer.next()).body, Heartbeat)
    finally:
        await peer.ws.close()
