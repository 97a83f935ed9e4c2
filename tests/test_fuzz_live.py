"""Fuzzing a live embedded gateway over real QUIC on loopback: hostile peers get the
documented answer, and the node keeps serving everyone else.

* ``test_fuzzed_peers_leave_the_node_serving``: Hypothesis draws batches of hostile
  connections (garbage bytes, bad headers, bad bodies, huge lengths, frames cut at random
  points, truncated frames then a close, unknown and server-only types, many frames per
  write, extra bidirectional streams, unidirectional streams (uploads), resets,
  STOP_SENDING, garbage tokens). Each answer is checked against a model of PROTOCOL.md,
  then a control pair of SDK clients must still chat and the node must have forgotten
  every hostile connection.
* ``test_corpus``: named malformed inputs, each with the outcome PROTOCOL.md documents.
* ``test_stream_misuse``: streams used against the rules, then the same health checks.
* The last tests: regressions for the defects this fuzzing found.

The gateway is created once per test function. The Hypothesis test is synchronous and
drives its own event loop, so one gateway serves every example.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import struct
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import flatbuffers
import hypothesis
import jwt
import pytest
from aioquic.quic.events import (
    ConnectionTerminated,
    QuicEvent,
    StopSendingReceived,
    StreamDataReceived,
)
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from imaccess.auth import issue_token
from imaccess.client import Client
from imaccess.connection import Connection, Transport
from imaccess.embedded import EmbeddedGateway
from imaccess.protocol import (
    CONTENT_TYPE_FILE,
    DEFAULT_MAX_FRAME_SIZE,
    AuthRequest,
    AuthResponse,
    Body,
    ChatMessage,
    Code,
    Delivery,
    Error,
    FileAck,
    Frame,
    FrameDecoder,
    Heartbeat,
    Kick,
    MalformedFrame,
    MessageAck,
    MsgType,
    Notice,
    NoticeKind,
    Packet,
    Reconnect,
    SyncRequest,
    SyncResponse,
    UnknownMsgType,
    decode_frame,
    encode_frame,
    encode_packet,
    reconnect_for,
)
from imaccess.protocol.codec import encode_body
from imaccess.settings import Settings

from .conftest import token_for
from .rawquic import RawPeer

MAX_FRAME = DEFAULT_MAX_FRAME_SIZE  # limits.max_frame_size: the message stream
MAX_CONTROL = 32 * 1024  # limits.max_control_frame_size: the control stream
MAX_CONTENT = 16384
ALICE, BOB = 1, 2
CORPUS_USER = 77  # the user of valid tokens the corpus sends
FAR_USER = 10**12  # never connected: chats to it are stored and pushed to nobody
SEQ = 7
TIMEOUT = 3.0  # for an answer on loopback; failures shrink faster with less
# For a close: aioquic reports it after a draining period of 3 PTO, and one slow RTT
# sample (the node busy with a 60 KB token) inflates the PTO through its variance.
CLOSE_TIMEOUT = 10.0
KNOWN_TYPES = frozenset(int(t) for t in MsgType)
_probe_seqs = itertools.count(0x5EED << 48)

Reply = tuple[int, int, str]  # (stream, seq, kind) of a frame the server sends


# ------------------------------------------------------------------ frame builders


def frame(body: Body, seq: int = SEQ) -> bytes:
    return encode_packet(Packet(seq, body))


def with_header_type(wire: bytes, msg_type: int) -> bytes:
    return wire[:4] + struct.pack(">H", msg_type) + wire[6:]


def packet_body(seq: int, msg_type: int, payload: bytes | None) -> bytes:
    """A Packet built field by field (schema order: seq, msg_type, timestamp, payload),
    so tests can write what the codec never would: any int16, an empty payload vector."""
    b = flatbuffers.Builder(64)
    vector = b.CreateByteVector(payload) if payload is not None else None
    b.StartObject(4)
    b.PrependUint64Slot(0, seq, 0)
    b.PrependInt16Slot(1, msg_type - 0x10000 if msg_type >= 0x8000 else msg_type, 0)
    if vector is not None:
        b.PrependUOffsetTRelativeSlot(3, vector, 0)
    b.Finish(b.EndObject())
    return bytes(b.Output())


def heartbeat_of_length(length: int) -> bytes:
    """A Heartbeat whose header says ``length``: a FlatBuffer may carry trailing bytes."""
    body = encode_body(SEQ, int(MsgType.HEARTBEAT), b"")[6:]
    return struct.pack(">IH", length, 0) + body + bytes(length - 2 - len(body))


def chat_payload(*, delivery: int) -> bytes:
    """ChatMessage{msg_id "m-1", to_user FAR_USER, delivery}: fields 0, 2 and 7."""
    b = flatbuffers.Builder(64)
    msg_id = b.CreateString("m-1")
    b.StartObject(9)
    b.PrependUOffsetTRelativeSlot(0, msg_id, 0)
    b.PrependInt64Slot(2, FAR_USER, 0)
    b.PrependInt8Slot(7, delivery, 0)
    b.Finish(b.EndObject())
    return bytes(b.Output())


def notice_payload(*, kind: int) -> bytes:
    """Notice{kind, code 3001}: fields 0 (short) and 1."""
    b = flatbuffers.Builder(32)
    b.StartObject(4)
    b.PrependInt16Slot(0, kind, 0)
    b.PrependInt32Slot(1, 3001, 0)
    b.Finish(b.EndObject())
    return bytes(b.Output())


def payload_past_body() -> bytes:
    """A Sync whose payload vector claims more bytes than the body holds."""
    wire = bytearray(frame(SyncRequest(1, 1)))
    body = bytes(wire[6:])
    # root -> Packet table -> its vtable -> slot 3 (payload) -> the vector's length field
    table = struct.unpack_from("<I", body, 0)[0]
    vtable = table - struct.unpack_from("<i", body, table)[0]
    slot = table + struct.unpack_from("<H", body, vtable + 4 + 2 * 3)[0]
    vector = slot + struct.unpack_from("<I", body, slot)[0]
    struct.pack_into("<I", wire, 6 + vector, len(body))
    return bytes(wire)


def invalid_utf8_chat() -> bytes:
    wire = frame(ChatMessage("m-utf8", to_user=FAR_USER, content="XYZW"))
    assert wire.count(b"XYZW") == 1
    return wire.replace(b"XYZW", b"\xff\xfe\xfd\xfc")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(claims: dict[str, Any]) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


def signed_token(settings: Settings, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, settings.auth.secret, algorithm="HS256")


OTHER_SECRET = "another-secret-long-enough-for-hs256-0123456789"


# ------------------------------------------------------------------ the live node


def for_fuzzing(settings: Settings) -> Settings:
    """Defaults, except that every raw peer comes from 127.0.0.1 and hundreds of them are
    refused a token: the per-address cap on failed authentications (tested on its own in
    test_limits) would refuse the rest at accept. The per-user message rate stays: each
    raw peer is its own user and sends fewer chats than the burst."""
    settings.limits.auth_failures_per_minute = 1_000_000
    settings.drain.deadline = 2.0  # nothing should be left to drain; do not hang if so
    limits = settings.limits
    assert (limits.max_frame_size, limits.max_control_frame_size) == (MAX_FRAME, MAX_CONTROL)
    assert limits.max_content_bytes == MAX_CONTENT and limits.message_burst >= 30
    return settings


def _port(peer: RawPeer) -> int:
    return int(peer.transport.get_extra_info("sockname")[1])


class ServerSide:
    """The node's Connection behind each raw peer, found by the peer's UDP port.

    Wraps ``open_connection`` on the node instance (the QUIC server calls it through
    the instance), so a test can await the server side of a peer that never got an
    answer, without polling.
    """

    def __init__(self, gateway: EmbeddedGateway) -> None:
        self._futures: dict[int, asyncio.Future[Connection]] = {}
        node = gateway.node
        opened = node.open_connection

        def open_connection(transport: Transport) -> Connection | None:
            conn = opened(transport)
            if conn is not None:
                future = self._future(transport.remote_address[1])
                if not future.done():
                    future.set_result(conn)
            return conn

        node.open_connection = open_connection  # type: ignore[method-assign]

    def _future(self, port: int) -> asyncio.Future[Connection]:
        if port not in self._futures:
            self._futures[port] = asyncio.get_running_loop().create_future()
        return self._futures[port]

    async def connection(self, port: int) -> Connection:
        return await asyncio.wait_for(asyncio.shield(self._future(port)), CLOSE_TIMEOUT)

    async def gone(self, port: int) -> None:
        """The node forgot the connection from ``port``: transport gone, tasks ended."""
        async with asyncio.timeout(CLOSE_TIMEOUT):
            conn = await self._future(port)
            await conn.gone
        del self._futures[port]
        assert conn.closed and not conn.tasks, "connection left work running"


class PeerLog:
    """What RawPeer does not keep: STOP_SENDING codes, and bytes delivered per stream."""

    def __init__(self, peer: RawPeer) -> None:
        self.delivered: Counter[int] = Counter()
        self._stops: dict[int, asyncio.Future[int]] = {}
        forward = peer.on_event

        def on_event(event: QuicEvent) -> None:
            if isinstance(event, StreamDataReceived):
                self.delivered[event.stream_id] += len(event.data)
            elif isinstance(event, StopSendingReceived):
                future = self.stopped(event.stream_id)
                if not future.done():
                    future.set_result(event.error_code)
            forward(event)

        peer.on_event = on_event  # type: ignore[method-assign]

    def stopped(self, stream_id: int) -> asyncio.Future[int]:
        """Resolves with the code of a STOP_SENDING for ``stream_id``."""
        if stream_id not in self._stops:
            self._stops[stream_id] = asyncio.get_running_loop().create_future()
        return self._stops[stream_id]

    async def stop_code(self, stream_id: int) -> int:
        return await asyncio.wait_for(asyncio.shield(self.stopped(stream_id)), TIMEOUT)


LoopErrors = list[dict[str, Any]]


def _describe(errors: LoopErrors) -> list[str]:
    return [f"{e.get('message')}: {e.get('exception')!r}" for e in errors]


class Node:
    """A live gateway, two SDK control clients on it, and raw peers aimed at it."""

    def __init__(self, gateway: EmbeddedGateway, errors: LoopErrors) -> None:
        self.gateway = gateway
        self.settings = gateway.settings
        self.errors = errors
        self.server_side = ServerSide(gateway)
        self.alice: Client | None = None
        self.bob: Client | None = None
        self._conn_ids = (0, 0)
        self._users = itertools.count(10_000)
        self._raw_users: list[int] = [CORPUS_USER]  # also the user of corpus tokens
        self._open: dict[int, RawPeer] = {}  # port -> peer not yet closed
        self._logs: dict[int, PeerLog] = {}
        self._user_of: dict[int, int] = {}  # port -> raw user
        self._closing: list[int] = []  # ports closed but not yet seen gone
        self.cases: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()

    async def start(self) -> Node:
        self.alice, self.bob = await self._client(ALICE), await self._client(BOB)
        self._conn_ids = (self.alice.conn_id, self.bob.conn_id)
        return self

    async def _client(self, user_id: int) -> Client:
        host, port = self.gateway.address
        c = Client(
            host,
            port,
            token=issue_token(self.settings.auth, user_id),
            ca_file=self.gateway.cert_file,
            server_name="localhost",
            ack_timeout=2.0,
        )
        return await c.connect()

    async def aclose(self) -> None:
        """Close what is left; wait for the node to forget it so shutdown sees none."""
        for port, peer in list(self._open.items()):
            peer.close()
            self._closing.append(port)
        self._open.clear()
        for port in self._closing:
            with contextlib.suppress(TimeoutError):
                await self.server_side.gone(port)
        self._closing.clear()
        for c in (self.alice, self.bob):
            if c is not None:
                await c.close()

    # ------------------------------------------------------------ raw peers

    async def peer(self) -> RawPeer:
        host, port = self.gateway.address
        peer = await RawPeer.connect(host, port, self.gateway.cert_file)
        self._open[_port(peer)] = peer
        self._logs[_port(peer)] = PeerLog(peer)
        return peer

    def log(self, peer: RawPeer) -> PeerLog:
        return self._logs[_port(peer)]

    async def closed(
        self, peer: RawPeer, stream: int
    ) -> tuple[ConnectionTerminated, list[tuple[int, Packet]]]:
        """The close, and every frame that came before it (pushes left out). Frames the
        node wrote on ``stream`` before closing but QUIC did not deliver are included:
        aioquic sends no stream data once a connection closes, and the node closes at once
        (unlike its WebTransport path, which waits for the last frame's ACK), so a lost or
        congestion-held packet takes the in-band frame with it. Counted, not failed: what
        the node owes is to write the frame before the close."""
        terminated = await peer.closed(CLOSE_TIMEOUT)
        frames = received(peer)
        conn = await self.server_side.connection(_port(peer))
        quic_stream = conn.transport.quic._streams.get(stream)  # type: ignore[attr-defined]
        if quic_stream is not None:
            sender = quic_stream.sender  # keeps what was never acknowledged
            delivered = self.log(peer).delivered[stream]
            assert delivered >= sender._buffer_start
            tail = bytes(sender._buffer[delivered - sender._buffer_start :])
            if tail:
                decoder = peer._decoders.get(stream)
                partial = bytes(decoder._buffer) if decoder is not None else b""
                lost = [decode_frame(f) for f in FrameDecoder(1 << 24).feed(partial + tail)]
                frames += [(stream, packet) for packet in lost if not is_push(packet)]
                self.outcomes["in-band frame written, not delivered before the close"] += 1
        return terminated, frames

    async def finish(self, peer: RawPeer) -> None:
        """Close our side, if the server has not, and wait until the node forgets it."""
        port = _port(peer)
        peer.close()
        self._open.pop(port, None)
        self._logs.pop(port, None)
        self._user_of.pop(port, None)
        await self.server_side.gone(port)

    def abandon(self, peer: RawPeer) -> None:
        """Close after a failure; the next health check waits for the node to catch up."""
        port = _port(peer)
        peer.close()
        if self._open.pop(port, None) is not None:
            self._closing.append(port)

    async def authenticate(self, peer: RawPeer) -> tuple[int, int]:
        """AuthRequest on the control stream, then a Heartbeat opens the message stream."""
        user = next(self._users)
        self._raw_users.append(user)
        self._user_of[_port(peer)] = user
        control = peer.new_stream()
        seq = peer.send(control, AuthRequest(token_for(self.settings, user), f"fuzz-{user}", "t"))
        stream, reply = await next_reply(peer)
        assert (stream, reply.seq) == (control, seq)
        assert isinstance(reply.body, AuthResponse) and reply.body.code == Code.OK, reply
        message = peer.new_stream()
        await probe(peer, message)
        return control, message

    @property
    def last_user(self) -> int:
        return self._raw_users[-1]

    def user_of(self, peer: RawPeer) -> int:
        return self._user_of[_port(peer)]

    # ------------------------------------------------------------ health

    async def assert_serving(self) -> None:
        """The control pair still chats on its original connections, and nothing leaked."""
        for port in self._closing:
            await self.server_side.gone(port)
        self._closing.clear()
        assert self.alice is not None and self.bob is not None
        ack = await self.alice.send(BOB, "still serving?")
        arrived = await self.bob.next_message(TIMEOUT)
        while arrived.msg_id != ack.msg_id:  # only if a fuzzed peer managed to write to Bob
            arrived = await self.bob.next_message(TIMEOUT)
        assert arrived.from_user == ALICE
        assert (self.alice.conn_id, self.bob.conn_id) == self._conn_ids, "a control reconnected"
        node = self.gateway.node
        assert len(node.hub) == 2 and node.hub.users() == 2, "leaked connections"
        assert node._per_ip == {"127.0.0.1": 2}, "leaked per-address connection counts"
        assert self.gateway._server is not None
        assert self.gateway._server.peer_count == 2, "the QUIC layer kept a connection"
        # Closed connections are unregistered by a background task the node starts on close.
        closing = [t for t in node._background if t.get_coro().__name__ == "_unregister_closed"]
        await asyncio.gather(*closing)
        for user in self._raw_users:
            assert await self.gateway.locations.locations(user) == [], f"location of {user}"
        self._raw_users = [CORPUS_USER]
        running = {t.get_coro().__name__ for t in node._background if not t.done()}
        assert {"_sweep_timers", "_refresh", "_keep_alive"} <= running
        assert not self.errors, _describe(self.errors)


# ------------------------------------------------------------------ reading answers


def is_push(packet: Packet) -> bool:
    return isinstance(packet.body, ChatMessage)


async def next_reply(peer: RawPeer) -> tuple[int, Packet]:
    """The next frame that is not a push."""
    while True:
        stream, packet = await peer.next(TIMEOUT)
        if not is_push(packet):
            return stream, packet


async def probe(peer: RawPeer, stream: int) -> None:
    """A Heartbeat on ``stream`` comes back: the connection is open and every earlier
    frame on that stream was handled."""
    seq = next(_probe_seqs)
    peer.write(stream, encode_packet(Packet(seq, Heartbeat())))
    got, packet = await next_reply(peer)
    assert (got, packet.seq, packet.body) == (stream, seq, Heartbeat()), packet


def received(peer: RawPeer) -> list[tuple[int, Packet]]:
    """Every frame queued so far, pushes left out."""
    out = []
    while not peer.packets.empty():
        stream, packet = peer.packets.get_nowait()
        if not is_push(packet):
            out.append((stream, packet))
    return out


def reply_key(stream: int, packet: Packet) -> Reply:
    body = packet.body
    kind = type(body).__name__
    if isinstance(body, Error | MessageAck | SyncResponse | AuthResponse):
        kind += str(body.code)
    return stream, packet.seq, kind


def assert_closing_frame(
    stream: int, packet: Packet, code: int, *, where: int, auth_seq: int | None = None
) -> None:
    """Error{code} with seq 0 for 4xxx; AuthResponse{code} echoing the Auth for 2xxx."""
    if 2000 <= code < 3000:
        assert isinstance(packet.body, AuthResponse), packet
        assert (stream, packet.seq, packet.body.code) == (where, auth_seq, code)
    else:
        assert isinstance(packet.body, Error), packet
        assert (stream, packet.seq, packet.body.code) == (where, 0, code)


# ------------------------------------------------------------------ the model


@dataclass
class Prediction:
    """What PROTOCOL.md says the server answers to some bytes on one stream."""

    required: Counter[Reply] = field(default_factory=Counter)
    optional: Counter[Reply] = field(default_factory=Counter)
    close: frozenset[int] = frozenset()  # acceptable close codes; empty: stays open
    auth_seq: int | None = None
    boundary: bool = True  # the bytes end where a frame ends


def ack_code(message: ChatMessage) -> int:
    valid = (
        1 <= len(message.msg_id) <= 128
        and message.to_user > 0
        and len(message.content.encode()) <= MAX_CONTENT
        and message.content_type != CONTENT_TYPE_FILE  # only the node announces files
    )
    return int(Code.OK) if valid else int(Code.INVALID_MESSAGE)


def _cut(data: bytes, limit: int) -> tuple[list[Frame], int | None, int]:
    """The frames in ``data`` by the header rules alone, the code of the first bad header
    if there is one, and where the last complete frame ends."""
    frames: list[Frame] = []
    offset = 0
    while len(data) - offset >= 4:
        (length,) = struct.unpack_from(">I", data, offset)
        if length > limit:
            return frames, Code.FRAME_TOO_LARGE, offset
        if length < 2:
            return frames, Code.MALFORMED_FRAME, offset
        end = offset + 4 + length
        if end > len(data):
            break
        (msg_type,) = struct.unpack_from(">H", data, offset + 4)
        frames.append(Frame(msg_type, data[offset + 6 : end]))
        offset = end
    return frames, None, offset


def predict(data: bytes, *, stream: int, authed: bool, limit: int) -> Prediction:
    """Apply PROTOCOL.md to ``data`` arriving on ``stream`` (the control stream of a fresh
    connection, or either stream of an authenticated one), whose frame limit is ``limit``.

    Frames are cut out by the header rules; bodies are classified with the codec (the
    live test is about what the node does with them). What the spec leaves to timing
    makes some outcomes optional:

    * a refused token (2001) can close the connection before later frames are read;
    * replies that wait on Logic (MessageAck, SyncAck) may lose the race with a close;
    * the node drops the complete frames that arrive in the same read as a bad header
      (see framing.FrameDecoder.feed), so with a bad header anywhere in ``data`` its code
      is a possible outcome even after an earlier violation, and no reply is certain.
    """
    p = Prediction()
    frames, header_error, end = _cut(data, limit)
    now: list[Reply] = []  # answered while the frame is handled
    later: list[Reply] = []  # answered by a task
    maybe: list[Reply] = []  # after an AuthRequest: the refusal may come first
    authenticating = False
    violation: int | None = None
    for frame in frames:
        answers = maybe if authenticating else now
        try:
            packet = decode_frame(frame)
        except UnknownMsgType as exc:
            if not authed:
                violation = Code.PROTOCOL_ERROR
                break
            answers.append((stream, exc.seq, f"Error{Code.UNKNOWN_MSG_TYPE}"))
            continue
        except MalformedFrame:
            violation = Code.MALFORMED_FRAME
            break
        request = packet.body
        if isinstance(request, Heartbeat):
            answers.append((stream, packet.seq, "Heartbeat"))
        elif not authed:
            if authenticating or not isinstance(request, AuthRequest):
                violation = Code.PROTOCOL_ERROR
                break
            authenticating = True
            p.auth_seq = packet.seq
        elif isinstance(request, AuthRequest):
            answers.append((stream, packet.seq, f"Error{Code.ALREADY_AUTHENTICATED}"))
        elif isinstance(request, ChatMessage):
            later.append((stream, packet.seq, f"MessageAck{ack_code(request)}"))
        elif isinstance(request, SyncRequest):
            later.append((stream, packet.seq, "SyncResponse0"))
        else:  # a server-to-client type
            answers.append((stream, packet.seq, f"Error{Code.UNKNOWN_MSG_TYPE}"))
    closes = {int(code) for code in (violation, header_error) if code is not None}
    if authenticating:
        closes.add(int(Code.AUTH_INVALID_TOKEN))  # no token we generate is valid
    p.close = frozenset(closes)
    p.boundary = end == len(data) and not closes
    p.optional.update(maybe)
    if header_error is not None:
        p.optional.update(now + later)
    elif violation is not None:
        p.required.update(now)
        p.optional.update(later)
    else:
        p.required.update(now + later)
    return p


async def expect(node: Node, peer: RawPeer, p: Prediction, *, stream: int) -> None:
    """The live answers match the prediction."""
    if p.close:
        terminated, frames = await node.closed(peer, stream)
        code = terminated.error_code
        assert code in p.close, f"closed with {code}, expected one of {set(p.close)}"
        assert frames, f"closed with {code} without the frame that says why"
        assert_closing_frame(*frames[-1], code, where=stream, auth_seq=p.auth_seq)
        seen = Counter(reply_key(s, packet) for s, packet in frames[:-1])
        assert p.required <= seen, f"missing {p.required - seen}"
        assert seen <= p.required + p.optional, f"unexpected {seen - p.required - p.optional}"
        return
    seen = Counter[Reply]()
    while not p.required <= seen:
        s, packet = await next_reply(peer)
        seen[reply_key(s, packet)] += 1
        assert seen <= p.required, f"unexpected {packet}"
    assert not peer.terminated.done(), peer.terminated.result()


# ------------------------------------------------------------------ fuzz cases


def _short(data: bytes) -> str:
    """All of a short chunk; length and start of a long one (Hypothesis reports a failure
    with its seed, which reproduces it whole)."""
    return repr(data) if len(data) <= 64 else f"<{len(data)} bytes {data[:32]!r}...>"


class _Pretty:
    """Hypothesis prints dataclasses field by field; a 60 KB token made a 33 kB report
    (and a HypothesisWarning, an error under filterwarnings=error)."""

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


@dataclass(frozen=True)
class BytesCase(_Pretty):
    """Bytes on one stream, written in chunks, then an ending if the connection is open."""

    authed: bool
    on_message_stream: bool
    chunks: tuple[bytes, ...]
    ending: str  # probe | close | fin | reset | stop
    code: int  # for close, reset and stop
    transport_close: bool  # close with a transport error instead of an application one

    kind = "bytes"

    def __repr__(self) -> str:
        chunks = ", ".join(_short(c) for c in self.chunks)
        return (
            f"BytesCase(authed={self.authed}, message_stream={self.on_message_stream}, "
            f"ending={self.ending!r}, code={self.code}, chunks=[{chunks}])"
        )

    async def run(self, node: Node, peer: RawPeer) -> None:
        if self.authed:
            control, message = await node.authenticate(peer)
            stream, other = (message, control) if self.on_message_stream else (control, message)
        else:
            stream, other = peer.new_stream(), None
        limit = MAX_FRAME if self.on_message_stream else MAX_CONTROL
        prediction = predict(b"".join(self.chunks), stream=stream, authed=self.authed, limit=limit)
        for chunk in self.chunks:
            peer.write(stream, chunk)
        await expect(node, peer, prediction, stream=stream)
        if prediction.close:
            node.outcomes[f"closed {peer.terminated.result().error_code}"] += 1
            return
        node.outcomes[
            f"open, then {self.ending if prediction.boundary else 'cut ' + self.ending}"
        ] += 1
        quic = peer.quic
        if self.ending == "probe" and prediction.boundary:
            await probe(peer, stream)
        elif self.ending == "fin":
            quic.send_stream_data(stream, b"", end_stream=True)
            peer.protocol.transmit()
        elif self.ending == "reset":
            quic.reset_stream(stream, self.code)
            peer.protocol.transmit()
            if other is None:  # the control stream is gone: no other stream may start
                extra = peer.new_stream()
                peer.send(extra, Heartbeat())
                terminated, frames = await node.closed(peer, extra)
                assert terminated.error_code == Code.PROTOCOL_ERROR
                assert_closing_frame(*frames[-1], Code.PROTOCOL_ERROR, where=extra)
                return
        elif self.ending == "stop":
            quic.stop_stream(stream, self.code)
            peer.protocol.transmit()
            if other is not None:  # the node then writes where the peer stopped reading
                await probe(peer, other)
                assert node.alice is not None
                await node.alice.send(node.user_of(peer), "a push after STOP_SENDING")
        else:
            frame_type = 0x08 if self.transport_close else None
            quic.close(error_code=self.code, frame_type=frame_type, reason_phrase="fuzz")
            peer.protocol.transmit()
            return
        if other is not None:
            await probe(peer, other)


@dataclass(frozen=True)
class ExtraStreamsCase(_Pretty):
    """Bidirectional streams beyond the two allowed (3+ in all), written at once."""

    authed: bool
    data: tuple[bytes, ...]

    kind = "extra-streams"

    def __repr__(self) -> str:
        data = ", ".join(_short(d) for d in self.data)
        return f"ExtraStreamsCase(authed={self.authed}, data=[{data}])"

    async def run(self, node: Node, peer: RawPeer) -> None:
        if self.authed:
            await node.authenticate(peer)
        else:
            await probe(peer, peer.new_stream())
        extra = []
        for data in self.data:
            extra.append(peer.new_stream())
            peer.write(extra[-1], data)
        terminated, frames = await node.closed(peer, extra[0])
        assert terminated.error_code == Code.PROTOCOL_ERROR
        assert [s for s, _ in frames] == [extra[0]], frames
        assert_closing_frame(*frames[-1], Code.PROTOCOL_ERROR, where=extra[0])
        node.outcomes["closed 4003 (extra stream)"] += 1


@dataclass(frozen=True)
class UniStreamsCase(_Pretty):
    """Client unidirectional streams. Before auth each is refused with STOP_SENDING 4003;
    after it each is an upload (ended with FIN here) whose garbage offer gets a FileAck
    with a 1xxx code on the control stream. The connection stays open either way."""

    authed: bool
    writes: tuple[tuple[bytes, ...], ...]  # per stream, the writes on it

    kind = "uni-streams"

    def __repr__(self) -> str:
        shown = ", ".join("[" + ", ".join(_short(w) for w in ws) + "]" for ws in self.writes)
        return f"UniStreamsCase(authed={self.authed}, writes=[{shown}])"

    async def run(self, node: Node, peer: RawPeer) -> None:
        log = node.log(peer)
        control = (await node.authenticate(peer))[0] if self.authed else None
        streams = []
        for writes in self.writes:
            stream = peer.quic.get_next_available_stream_id(is_unidirectional=True)
            streams.append(stream)
            for i, data in enumerate(writes):  # all before a refusal can arrive
                last = self.authed and i == len(writes) - 1
                peer.quic.send_stream_data(stream, data, end_stream=last)
            peer.protocol.transmit()
        if control is None:
            for stream in streams:
                assert await log.stop_code(stream) == Code.PROTOCOL_ERROR
            await probe(peer, peer.new_stream())
            node.outcomes["STOP_SENDING 4003, open"] += 1
            return
        for _ in streams:
            ack = await peer.next_of(FileAck)
            assert isinstance(ack.body, FileAck)
            assert Reconnect.STAYS_OPEN is reconnect_for(ack.body.code) and ack.body.code, ack
        await probe(peer, control)
        node.outcomes["uploads refused with FileAck, open"] += 1


# ------------------------------------------------------------------ strategies

i32 = st.integers(-(2**31), 2**31 - 1)
u32 = st.integers(0, 2**32 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
u64 = st.integers(0, 2**64 - 1)
text = st.text(max_size=24)

any_chats = st.builds(
    ChatMessage,
    msg_id=text,
    from_user=i64,
    to_user=i64,
    content=text,
    content_type=i32,
    timestamp=u64,
    seq=u64,
    delivery=st.sampled_from(Delivery),
    group_id=i64,
)
#: Chats a raw peer sends: never to a connected user, sometimes invalid (MessageAck 1002).
client_chats = st.builds(
    ChatMessage,
    msg_id=st.one_of(text, st.text(min_size=126, max_size=130)),
    to_user=st.one_of(st.integers(FAR_USER, FAR_USER + 99), st.integers(-(2**63), 0)),
    content=st.one_of(text, st.integers(MAX_CONTENT - 2, MAX_CONTENT + 2).map("x".__mul__)),
    content_type=st.one_of(st.just(CONTENT_TYPE_FILE), i32),
    delivery=st.sampled_from(Delivery),
)
_segment = st.binary(max_size=48).map(_b64)
garbage_tokens = st.one_of(
    st.text(max_size=80),
    st.tuples(_segment, _segment, _segment).map(".".join),  # shaped like a JWT
    st.fixed_dictionaries({"sub": text, "exp": u32}).map(unsigned_token),  # alg none
    st.builds(  # signed with a key the node does not know
        lambda sub: jwt.encode({"sub": sub, "exp": 2**31}, OTHER_SECRET, algorithm="HS256"),
        st.sampled_from(["1", "42", "10000"]),
    ),
    # 20 to 66 KB in one frame: over the control stream's limit (4005) from 32 KB on, and
    # with multi-byte characters sometimes over the message stream's too
    st.builds(str.__mul__, st.characters(), st.integers(20_000, 66_000)),
)
client_bodies = st.one_of(
    st.just(Heartbeat()),
    st.builds(AuthRequest, token=garbage_tokens, device_id=text, platform=text),
    client_chats,
    st.builds(SyncRequest, since_seq=u64, limit=u32),
)
server_bodies = st.one_of(
    st.builds(
        AuthResponse,
        code=i32,
        user_id=i64,
        message=text,
        conn_id=u64,
        node_id=text,
        heartbeat_interval_ms=u32,
        heartbeat_timeout_ms=u32,
    ),
    st.builds(
        MessageAck, msg_id=text, code=i32, server_seq=u64, timestamp=u64, duplicate=st.booleans()
    ),
    st.builds(
        SyncResponse,
        code=i32,
        messages=st.lists(any_chats, max_size=3).map(tuple),
        max_seq=u64,
        has_more=st.booleans(),
    ),
    st.builds(Kick, code=i32, reason=text),
    st.builds(Error, code=i32, message=text),
    st.builds(
        Notice, kind=st.sampled_from(NoticeKind), code=i32, message=text, reconnect_after_ms=u32
    ),
)
unknown_types = st.integers(0, 0xFFFF).filter(lambda t: t not in KNOWN_TYPES)
unknown_type_frames = st.builds(
    encode_body, seq=u64, msg_type=unknown_types, payload=st.binary(max_size=32), timestamp=u64
)
valid_frames = st.one_of(
    st.builds(Packet, seq=u64, body=client_bodies, timestamp=u64).map(encode_packet),
    st.builds(Packet, seq=u64, body=server_bodies, timestamp=u64).map(encode_packet),
    unknown_type_frames,
)
msg_types = st.one_of(st.sampled_from(sorted(KNOWN_TYPES)), st.integers(0, 0xFFFF))


def _mismatched(wire: bytes, delta: int) -> bytes:
    (msg_type,) = struct.unpack_from(">H", wire, 4)
    return with_header_type(wire, (msg_type + delta) % 0x10000)


def _packets(bodies: st.SearchStrategy[Body]) -> st.SearchStrategy[bytes]:
    return st.builds(Packet, seq=u64, body=bodies, timestamp=u64).map(encode_packet)


heartbeats = _packets(st.just(Heartbeat()))
garbage_auths = _packets(
    st.builds(AuthRequest, token=garbage_tokens, device_id=text, platform=text)
)
#: Frames an authenticated connection answers and stays open for.
answered_frames = st.one_of(
    heartbeats,
    _packets(client_chats),
    _packets(st.builds(SyncRequest, since_seq=u64, limit=u32)),
    _packets(server_bodies),
    unknown_type_frames,
    garbage_auths,  # ALREADY_AUTHENTICATED (or over the control stream's limit)
)


def payloads(authed: bool) -> st.SearchStrategy[bytes]:
    frames = st.lists(answered_frames if authed else heartbeats, min_size=1, max_size=30)
    return st.one_of(
        st.binary(min_size=1, max_size=300),  # noise
        st.builds(encode_frame, msg_types, st.binary(max_size=200)),  # valid header, random body
        st.builds(_mismatched, valid_frames, st.integers(1, 0xFFFF)),  # header type != Packet's
        st.builds(  # a length over a limit, maybe followed by anything
            lambda length, rest: struct.pack(">I", length) + rest,
            st.integers(
                MAX_CONTROL + 1, 2**32 - 1
            ),  # between the limits: fine on the message stream
            st.binary(max_size=40),
        ),
        st.lists(valid_frames, min_size=1, max_size=30).map(b"".join),  # anything, one write
        frames.map(b"".join),  # what the state allows, many frames in one write
        # before auth: Heartbeats, then a garbage token (2001, or 4005 when over 32 KB)
        st.tuples(st.lists(heartbeats, max_size=3).map(b"".join), garbage_auths).map(b"".join),
    )


@st.composite
def bytes_cases(draw: st.DrawFn) -> BytesCase:
    authed = draw(st.booleans())
    data = draw(payloads(authed))
    if draw(st.booleans()):  # end with a truncated frame
        whole = draw(valid_frames)
        data += whole[: draw(st.integers(1, len(whole) - 1))]
    cuts: list[int] = []
    if len(data) > 1:
        cuts = sorted(draw(st.lists(st.integers(1, len(data) - 1), max_size=8, unique=True)))
    bounds = [0, *cuts, len(data)]
    return BytesCase(
        authed=authed,
        on_message_stream=authed and draw(st.booleans()),
        chunks=tuple(data[a:b] for a, b in itertools.pairwise(bounds)),
        ending=draw(st.sampled_from(["probe", "close", "fin", "reset", "stop"])),
        code=draw(st.integers(0, 2**62 - 1)),
        transport_close=draw(st.booleans()),
    )


@st.composite
def extra_streams_cases(draw: st.DrawFn) -> ExtraStreamsCase:
    authed = draw(st.booleans())
    count = draw(st.integers(1 if authed else 2, 4))  # 3 to 5 bidirectional streams in all
    data = draw(st.lists(st.binary(min_size=1, max_size=64), min_size=count, max_size=count))
    return ExtraStreamsCase(authed, tuple(data))


uni_streams_cases = st.builds(
    UniStreamsCase,
    authed=st.booleans(),
    writes=st.lists(
        st.lists(st.binary(min_size=1, max_size=200), min_size=1, max_size=3).map(tuple),
        min_size=1,
        max_size=4,
    ).map(tuple),
)
#: Mostly bytes: that is where the variety is.
cases = st.one_of(*(bytes_cases() for _ in range(6)), extra_streams_cases(), uni_streams_cases)
FuzzCase = BytesCase | ExtraStreamsCase | UniStreamsCase


async def run_case(node: Node, case: FuzzCase) -> None:
    peer = await node.peer()
    try:
        await case.run(node, peer)
    except BaseException:
        node.abandon(peer)
        raise
    await node.finish(peer)
    node.cases[case.kind] += 1


async def run_batch(node: Node, batch: list[FuzzCase]) -> None:
    """Hostile peers at the same time, then the health check."""
    async with asyncio.TaskGroup() as group:
        for case in batch:
            group.create_task(run_case(node, case))
    await node.assert_serving()


@pytest.mark.timeout(600)  # passes in ~15 s; a failure needs time to shrink (waits time out)
def test_fuzzed_peers_leave_the_node_serving(settings: Settings) -> None:
    """Synchronous on purpose: Hypothesis calls the inner test once per example, and
    each example runs on this test's own loop, where the gateway lives throughout."""
    for_fuzzing(settings)
    errors: LoopErrors = []
    with asyncio.Runner() as runner:
        runner.get_loop().set_exception_handler(lambda _loop, context: errors.append(context))
        gateway = EmbeddedGateway(settings)
        runner.run(gateway.start())
        node = Node(gateway, errors)
        try:
            runner.run(node.start())

            @hypothesis.settings(
                max_examples=80,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )
            @given(batch=st.lists(cases, min_size=1, max_size=3))
            def fuzz(batch: list[FuzzCase]) -> None:
                for case in batch:
                    hypothesis.event(case.kind)
                runner.run(run_batch(node, batch))

            fuzz()
            print(f"\nfuzzed peers: {sum(node.cases.values())} {dict(node.cases)}")
            print(f"outcomes: {dict(node.outcomes.most_common())}")
        finally:
            runner.run(node.aclose())
            runner.run(gateway.stop())
    assert not errors, _describe(errors)


# ------------------------------------------------------------------ fixtures


@pytest.fixture
async def loop_errors() -> AsyncIterator[LoopErrors]:
    """What the event loop would otherwise only log: exceptions in callbacks and tasks."""
    loop = asyncio.get_running_loop()
    errors: LoopErrors = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield errors
    loop.set_exception_handler(previous)


@pytest.fixture
def fuzz_settings(settings: Settings) -> Settings:
    return for_fuzzing(settings)


@pytest.fixture
async def node(
    fuzz_settings: Settings, gateway: EmbeddedGateway, loop_errors: LoopErrors
) -> AsyncIterator[Node]:
    live = Node(gateway, loop_errors)
    await live.start()
    yield live
    await live.aclose()


# ------------------------------------------------------------------ corpus

Data = Callable[[Settings], bytes]


@dataclass(frozen=True)
class Closes:
    """The in-band frame (Error with seq 0, or AuthResponse echoing the Auth), then a
    CONNECTION_CLOSE with the same code; nothing else before it."""

    code: int


@dataclass(frozen=True)
class Answers:
    """These replies, in order, on the stream written to; then the connection is open."""

    replies: tuple[tuple[int, type, int | None], ...]  # (seq, body type, code)


@dataclass(frozen=True)
class Refused:
    """STOP_SENDING with this code on the stream; the connection stays open."""

    code: int


@dataclass(frozen=True)
class Entry:
    setup: str  # fresh | opened (control stream has seen a Heartbeat) | authed
    target: str  # control | message | new (another bidi stream) | uni
    data: Data
    expect: Closes | Answers | Refused
    byte_by_byte: bool = False


def answers(*replies: tuple[int, type, int | None]) -> Answers:
    return Answers(tuple(replies))


def one(kind: type, code: int | None = None, seq: int = SEQ) -> Answers:
    return answers((seq, kind, code))


def const(data: bytes) -> Data:
    return lambda _settings: data


def auth_with(token: Callable[[Settings], str]) -> Data:
    return lambda s: frame(AuthRequest(token(s), "corpus", "test"))


def valid_auth(s: Settings) -> bytes:
    return frame(AuthRequest(token_for(s, CORPUS_USER), "corpus", "test"))


def chat(msg_id: str = "m-1", to_user: int = FAR_USER, content: str = "hi") -> Data:
    return const(frame(ChatMessage(msg_id, to_user=to_user, content=content)))


def _exp() -> int:
    return int(time.time()) + 3600


HEARTBEAT_EXAMPLE = "0000001a00000c000000000006000c000400060000000100000000000000"
MESSAGE_EXAMPLE = (
    "00000072000a100000000c00240018001600080004000c000000200000000068e5cf8b0100000000000000"
    "000a0007000000000000000000000038000000100000000c00180014000000080004000c00000014000000"
    "2a00000000000000000000000c0000000200000068690000030000006d2d3100"
)
OK, E1001 = int(Code.OK), int(Code.UNKNOWN_MSG_TYPE)

CORPUS = [
    # Framing: the header
    pytest.param(Entry("fresh", "control", const(b"\0\0\0\0"), Closes(4004)), id="length-0"),
    pytest.param(Entry("fresh", "control", const(b"\0\0\0\1\0"), Closes(4004)), id="length-1"),
    pytest.param(
        Entry("fresh", "control", const(struct.pack(">I", MAX_CONTROL + 1)), Closes(4005)),
        id="control-length-32769-header-only",
    ),
    pytest.param(Entry("fresh", "control", const(b"\xff" * 4), Closes(4005)), id="length-u32-max"),
    pytest.param(
        Entry("authed", "message", const(struct.pack(">I", MAX_FRAME + 1)), Closes(4005)),
        id="message-length-65537-header-only",
    ),
    pytest.param(
        Entry("fresh", "control", const(heartbeat_of_length(MAX_CONTROL)), one(Heartbeat)),
        id="control-frame-at-32768-is-read",
    ),
    pytest.param(
        Entry("fresh", "control", const(heartbeat_of_length(MAX_CONTROL + 1)), Closes(4005)),
        id="control-frame-at-32769",
    ),
    pytest.param(
        Entry("authed", "control", const(heartbeat_of_length(MAX_FRAME)), Closes(4005)),
        id="control-frame-at-65536-after-auth",
    ),
    pytest.param(
        Entry("authed", "message", const(heartbeat_of_length(MAX_FRAME)), one(Heartbeat)),
        id="message-frame-at-65536-is-read",
    ),
    pytest.param(
        Entry("authed", "message", const(heartbeat_of_length(MAX_FRAME + 1)), Closes(4005)),
        id="message-frame-at-65537",
    ),
    # Framing: the body
    pytest.param(
        Entry("fresh", "control", const(encode_frame(0, bytes(7))), Closes(4004)), id="body-7-bytes"
    ),
    pytest.param(
        Entry(
            "authed",
            "control",
            const(encode_frame(10, b"\x01\x02\x03 not a flatbuffer")),
            Closes(4004),
        ),
        id="body-not-a-packet",
    ),
    pytest.param(
        Entry("fresh", "control", const(with_header_type(frame(Heartbeat()), 1)), Closes(4004)),
        id="header-type-differs-from-packet",
    ),
    pytest.param(
        Entry("authed", "message", const(with_header_type(frame(SyncRequest()), 10)), Closes(4004)),
        id="header-type-differs-after-auth",
    ),
    pytest.param(
        Entry("authed", "control", const(encode_body(SEQ, 0xFFFF, b"")), one(Error, E1001)),
        id="header-0xffff-equals-packet-minus-1-unknown-type",
    ),
    pytest.param(
        Entry(
            "authed",
            "control",
            const(encode_frame(0xFFFF, packet_body(SEQ, 0x7FFF, None))),
            Closes(4004),
        ),
        id="header-0xffff-differs-from-packet-0x7fff",
    ),
    pytest.param(
        Entry("fresh", "control", const(encode_body(SEQ, 1, b"\x01\x02")), Closes(4004)),
        id="auth-payload-under-4-bytes",
    ),
    pytest.param(
        Entry("authed", "message", const(encode_body(SEQ, 30, b"\x01\x02\x03")), Closes(4004)),
        id="kick-payload-under-4-bytes-after-auth",
    ),
    pytest.param(
        Entry("fresh", "control", lambda _s: payload_past_body(), Closes(4004)),
        id="payload-vector-past-body",
    ),
    pytest.param(
        Entry("authed", "message", lambda _s: invalid_utf8_chat(), Closes(4004)),
        id="chat-invalid-utf8",
    ),
    pytest.param(
        Entry(
            "authed", "message", const(encode_body(SEQ, 10, chat_payload(delivery=7))), Closes(4004)
        ),
        id="chat-delivery-outside-enum",
    ),
    pytest.param(
        Entry(
            "authed", "message", const(encode_body(SEQ, 32, notice_payload(kind=5))), Closes(4004)
        ),
        id="notice-kind-outside-enum-after-auth",
    ),
    pytest.param(
        Entry("fresh", "control", const(encode_body(SEQ, 0, b"ignored payload")), one(Heartbeat)),
        id="heartbeat-payload-ignored",
    ),
    pytest.param(
        Entry("fresh", "control", const(bytes.fromhex(HEARTBEAT_EXAMPLE)), one(Heartbeat, seq=1)),
        id="heartbeat-worked-example",
    ),
    pytest.param(
        Entry("authed", "message", const(bytes.fromhex(MESSAGE_EXAMPLE)), one(MessageAck, OK)),
        id="message-worked-example",
    ),
    pytest.param(
        Entry("authed", "message", const(encode_body(SEQ, 20, b"")), one(SyncResponse, OK)),
        id="sync-absent-payload",
    ),
    pytest.param(
        Entry(
            "authed",
            "message",
            const(encode_frame(20, packet_body(SEQ, 20, b""))),
            one(SyncResponse, OK),
        ),
        id="sync-empty-payload-vector",
    ),
    # Streams and state
    pytest.param(Entry("fresh", "control", chat(), Closes(4003)), id="chat-before-auth"),
    pytest.param(
        Entry("fresh", "control", const(frame(SyncRequest())), Closes(4003)), id="sync-before-auth"
    ),
    pytest.param(
        Entry("fresh", "control", const(encode_body(SEQ, 99, b"")), Closes(4003)),
        id="unknown-type-before-auth",
    ),
    pytest.param(
        Entry("fresh", "control", const(frame(Kick(4001, "x"))), Closes(4003)),
        id="server-type-before-auth",
    ),
    pytest.param(
        Entry("opened", "control", lambda s: valid_auth(s) + chat()(s), Closes(4003)),
        id="chat-while-authenticating",
    ),
    pytest.param(
        Entry("opened", "control", lambda s: valid_auth(s) + valid_auth(s), Closes(4003)),
        id="second-auth-while-authenticating",
    ),
    pytest.param(
        Entry("authed", "control", const(encode_body(SEQ, 99, b"\x01\x02")), one(Error, E1001)),
        id="unknown-type-after-auth",
    ),
    *(
        pytest.param(
            Entry("authed", "message", const(frame(body)), one(Error, E1001)),
            id=f"server-type-{type(body).__name__}-after-auth",
        )
        for body in (
            AuthResponse(0, 5, "ok", 1, "n", 1, 2),
            MessageAck("m", 0, 1, 2),
            SyncResponse(0, (ChatMessage("m", 3, 4, "x"),), 9, True),
            Kick(4001, "x"),
            Error(1001, "x"),
            Notice(NoticeKind.DRAIN, 3001, "x", 5),
        )
    ),
    pytest.param(
        Entry("authed", "message", valid_auth, one(Error, int(Code.ALREADY_AUTHENTICATED))),
        id="second-auth-after-ack",
    ),
    pytest.param(
        Entry("opened", "new", const(frame(Heartbeat())), Closes(4003)),
        id="second-stream-before-ack",
    ),
    pytest.param(
        Entry("authed", "new", const(frame(Heartbeat())), Closes(4003)), id="third-bidi-stream"
    ),
    pytest.param(Entry("fresh", "uni", const(b"uni"), Refused(4003)), id="uni-stream-before-auth"),
    pytest.param(
        Entry("authed", "uni", const(frame(Heartbeat())), Refused(1017)),
        id="uni-stream-after-auth-without-an-offer",
    ),
    # Authentication
    pytest.param(
        Entry("fresh", "control", auth_with(lambda _s: "not-a-jwt"), Closes(2001)),
        id="auth-garbage-token",
    ),
    pytest.param(
        Entry("fresh", "control", auth_with(lambda _s: ""), Closes(2001)), id="auth-empty-token"
    ),
    pytest.param(
        Entry("fresh", "control", auth_with(lambda _s: "x" * 30_000), Closes(2001)),
        id="auth-30kb-token",
    ),
    pytest.param(
        Entry("fresh", "control", auth_with(lambda _s: "x" * 60_000), Closes(4005)),
        id="auth-60kb-token-over-control-limit",
    ),
    pytest.param(
        Entry(
            "authed",
            "message",
            auth_with(lambda _s: "x" * 60_000),
            one(Error, int(Code.ALREADY_AUTHENTICATED)),
        ),
        id="auth-60kb-token-on-message-stream-after-auth",
    ),
    pytest.param(
        Entry(
            "fresh",
            "control",
            auth_with(lambda _s: unsigned_token({"sub": "77", "exp": _exp()})),
            Closes(2001),
        ),
        id="auth-alg-none",
    ),
    pytest.param(
        Entry(
            "fresh",
            "control",
            auth_with(
                lambda _s: jwt.encode({"sub": "77", "exp": _exp()}, OTHER_SECRET, algorithm="HS256")
            ),
            Closes(2001),
        ),
        id="auth-signed-with-another-secret",
    ),
    pytest.param(
        Entry(
            "fresh",
            "control",
            auth_with(lambda s: signed_token(s, {"sub": "077", "exp": _exp()})),
            Closes(2001),
        ),
        id="auth-sub-not-canonical",
    ),
    pytest.param(
        Entry(
            "fresh",
            "control",
            auth_with(lambda s: signed_token(s, {"sub": str(2**63), "exp": _exp()})),
            Closes(2001),
        ),
        id="auth-sub-over-int64",
    ),
    pytest.param(
        Entry(
            "fresh",
            "control",
            auth_with(lambda s: token_for(s, CORPUS_USER, ttl=60, now=time.time() - 3600)),
            Closes(2002),
        ),
        id="auth-expired",
    ),
    pytest.param(
        Entry(
            "fresh",
            "control",
            auth_with(lambda s: signed_token(s, {"sub": "77", "exp": _exp(), "nbf": _exp()})),
            Closes(2001),
        ),
        id="auth-nbf-in-the-future",
    ),
    # ChatMessage validation: MessageAck 1002, connection stays
    pytest.param(
        Entry("authed", "message", chat(msg_id=""), one(MessageAck, 1002)), id="chat-empty-msg-id"
    ),
    pytest.param(
        Entry("authed", "message", chat(msg_id="é" * 129), one(MessageAck, 1002)),
        id="chat-msg-id-129-code-points",
    ),
    pytest.param(
        Entry("authed", "message", chat(msg_id="é" * 128), one(MessageAck, OK)),
        id="chat-msg-id-128-code-points",
    ),
    pytest.param(
        Entry("authed", "message", chat(to_user=0), one(MessageAck, 1002)), id="chat-to-user-0"
    ),
    pytest.param(
        Entry("authed", "message", chat(to_user=-5), one(MessageAck, 1002)),
        id="chat-to-user-negative",
    ),
    pytest.param(
        Entry("authed", "message", chat(content="x" * (MAX_CONTENT + 1)), one(MessageAck, 1002)),
        id="chat-content-16385-bytes",
    ),
    pytest.param(
        Entry("authed", "message", chat(content="é" * (MAX_CONTENT // 2)), one(MessageAck, OK)),
        id="chat-content-16384-bytes",
    ),
    # Packing and splitting
    pytest.param(
        Entry(
            "fresh",
            "control",
            const(b"".join(frame(Heartbeat(), seq) for seq in range(1, 101))),
            answers(*((seq, Heartbeat, None) for seq in range(1, 101))),
        ),
        id="100-heartbeats-one-write",
    ),
    pytest.param(
        Entry(
            "fresh",
            "control",
            lambda s: frame(Heartbeat(), 1) + valid_auth(s),
            answers((1, Heartbeat, None), (SEQ, AuthResponse, OK)),
            byte_by_byte=True,
        ),
        id="heartbeat-and-auth-byte-by-byte",
    ),
]


async def _setup(node: Node, peer: RawPeer, setup: str) -> tuple[int | None, int | None]:
    if setup == "authed":
        return await node.authenticate(peer)
    if setup == "opened":
        control = peer.new_stream()
        await probe(peer, control)
        return control, None
    return None, None


@pytest.mark.parametrize("entry", CORPUS)
async def test_corpus(node: Node, entry: Entry) -> None:
    peer = await node.peer()
    log = node.log(peer)
    control, message = await _setup(node, peer, entry.setup)
    if entry.target == "uni":
        stream = peer.quic.get_next_available_stream_id(is_unidirectional=True)
    elif entry.target == "message":
        assert message is not None
        stream = message
    elif entry.target == "control" and control is not None:
        stream = control
    else:  # the fresh connection's first stream, or one more
        stream = peer.new_stream()
    data = entry.data(node.settings)
    if entry.byte_by_byte:
        for i in range(len(data)):
            peer.write(stream, data[i : i + 1])
    else:
        peer.write(stream, data)

    expected = entry.expect
    if isinstance(expected, Closes):
        where = control if control is not None and expected.code < 3000 else stream
        terminated, frames = await node.closed(peer, where)
        assert terminated.error_code == expected.code
        assert len(frames) == 1, frames
        assert_closing_frame(*frames[0], expected.code, where=where, auth_seq=SEQ)
    elif isinstance(expected, Answers):
        for seq, kind, code in expected.replies:
            got, packet = await next_reply(peer)
            assert (got, packet.seq, type(packet.body)) == (stream, seq, kind), packet
            if code is not None:
                assert getattr(packet.body, "code", None) == code, packet
        await probe(peer, stream)
    else:
        assert await log.stop_code(stream) == expected.code
        if reconnect_for(expected.code) is Reconnect.STAYS_OPEN:  # a refused upload
            ack = await peer.next_of(FileAck)
            assert isinstance(ack.body, FileAck) and ack.body.code == expected.code
        await probe(peer, control if control is not None else peer.new_stream())
    await node.finish(peer)
    await node.assert_serving()


# ------------------------------------------------------------------ stream misuse

Scenario = Callable[[Node, RawPeer], Awaitable[None]]


async def third_streams_at_once(node: Node, peer: RawPeer) -> None:
    await node.authenticate(peer)
    extra = [peer.new_stream() for _ in range(3)]
    for stream in extra:
        peer.send(stream, Heartbeat())
    terminated, frames = await node.closed(peer, extra[0])
    assert terminated.error_code == Code.PROTOCOL_ERROR
    assert_closing_frame(*frames[-1], Code.PROTOCOL_ERROR, where=extra[0])


async def uni_streams_around_auth(node: Node, peer: RawPeer) -> None:
    log = node.log(peer)
    first = peer.quic.get_next_available_stream_id(is_unidirectional=True)
    peer.write(first, valid_auth(node.settings))  # an Auth there is not an Auth
    assert await log.stop_code(first) == Code.PROTOCOL_ERROR
    control, message = await node.authenticate(peer)
    for _ in range(3):  # uploads now, but without an offer
        stream = peer.quic.get_next_available_stream_id(is_unidirectional=True)
        for _ in range(3):
            peer.quic.send_stream_data(stream, frame(Heartbeat()))
        peer.protocol.transmit()
        assert await log.stop_code(stream) == Code.INVALID_OFFER
        assert (await peer.next_of(FileAck)).body == FileAck(
            int(Code.INVALID_OFFER), "an upload stream starts with a FileOffer"
        )
    await probe(peer, control)
    await probe(peer, message)


async def reset_control_stream(node: Node, peer: RawPeer) -> None:
    control, message = await node.authenticate(peer)
    half = valid_auth(node.settings)
    peer.write(control, half[: len(half) // 2])
    peer.quic.reset_stream(control, 0x77)
    peer.protocol.transmit()
    await probe(peer, message)
    seq = peer.send(message, SyncRequest())
    got, packet = await next_reply(peer)
    assert (got, packet.seq, reply_key(got, packet)[2]) == (message, seq, "SyncResponse0")
    # a push still reaches the message stream
    assert node.alice is not None
    await node.alice.send(node.last_user, "to the raw peer")
    stream, push = await peer.next(TIMEOUT)
    assert stream == message and isinstance(push.body, ChatMessage), push


async def reset_control_stream_before_auth(node: Node, peer: RawPeer) -> None:
    control = peer.new_stream()
    half = valid_auth(node.settings)
    peer.write(control, half[:20])
    peer.quic.reset_stream(control, 0x78)
    peer.protocol.transmit()
    # The control stream can carry no Auth now, and no other stream may start before one.
    extra = peer.new_stream()
    peer.write(extra, half)
    terminated, frames = await node.closed(peer, extra)
    assert terminated.error_code == Code.PROTOCOL_ERROR
    assert_closing_frame(*frames[-1], Code.PROTOCOL_ERROR, where=extra)


async def stop_sending_message_stream(node: Node, peer: RawPeer) -> None:
    control, message = await node.authenticate(peer)
    peer.write(message, frame(Heartbeat())[:9])
    peer.quic.stop_stream(message, 0x79)
    peer.protocol.transmit()
    await probe(peer, control)
    seq = peer.send(control, SyncRequest())
    got, packet = await next_reply(peer)
    assert (got, packet.seq, reply_key(got, packet)[2]) == (control, seq, "SyncResponse0")


async def fin_mid_frame(node: Node, peer: RawPeer) -> None:
    control, message = await node.authenticate(peer)
    peer.quic.send_stream_data(message, frame(SyncRequest())[:11], end_stream=True)
    peer.protocol.transmit()
    await probe(peer, control)


async def close_mid_frame_after_auth(node: Node, peer: RawPeer) -> None:
    _, message = await node.authenticate(peer)
    wire = frame(ChatMessage("half", to_user=FAR_USER, content="y" * 3000))
    peer.write(message, wire[:1500])
    peer.quic.close(error_code=0x1234, reason_phrase="crash")
    peer.protocol.transmit()


async def close_mid_auth_with_transport_error(node: Node, peer: RawPeer) -> None:
    peer.write(peer.new_stream(), valid_auth(node.settings)[:50])
    peer.quic.close(error_code=0x0A, frame_type=0x08, reason_phrase="protocol violation")
    peer.protocol.transmit()


MISUSE: dict[str, Scenario] = {
    "third-fourth-fifth-stream-at-once": third_streams_at_once,
    "uni-streams-before-and-after-auth": uni_streams_around_auth,
    "reset-control-stream-mid-frame": reset_control_stream,
    "reset-control-stream-before-auth": reset_control_stream_before_auth,
    "stop-sending-message-stream-mid-frame": stop_sending_message_stream,
    "fin-message-stream-mid-frame": fin_mid_frame,
    "close-mid-frame-after-auth": close_mid_frame_after_auth,
    "close-mid-auth-with-transport-error": close_mid_auth_with_transport_error,
}


@pytest.mark.parametrize("scenario", MISUSE.values(), ids=MISUSE.keys())
async def test_stream_misuse(node: Node, scenario: Scenario) -> None:
    peer = await node.peer()
    await scenario(node, peer)
    await node.finish(peer)
    await node.assert_serving()


# ------------------------------------------------------------------ found by fuzzing
# Each failed before the fixes in transport/quic.py (QuicPeer.send), node.py
# (AccessNode._sweep_timers) and auth.py (_time_claim).


async def test_push_to_a_stream_the_client_stopped_is_dropped(node: Node) -> None:
    """QuicPeer.send raised RuntimeError for a stream the client sent STOP_SENDING for;
    the writer's flush died in a loop callback, losing frames for other streams."""
    peer = await node.peer()
    control, message = await node.authenticate(peer)
    peer.quic.stop_stream(message, 0x7A)
    peer.protocol.transmit()
    await probe(peer, control)
    assert node.alice is not None
    await node.alice.send(node.last_user, "pushed to a stopped stream")
    await probe(peer, control)
    await node.finish(peer)
    assert not node.errors, _describe(node.errors)


async def test_violation_after_stop_sending_on_control_still_closes(node: Node) -> None:
    """The Error frame for the violation raised in Connection.close before
    transport.close: the session was closed, the connection never was."""
    peer = await node.peer()
    log = node.log(peer)
    control, _ = await node.authenticate(peer)
    peer.quic.stop_stream(control, 0x7B)
    peer.write(control, b"\0\0\0\0")  # length 0: MALFORMED_FRAME, Error on this stream
    # A closing node ignores later packets; a live one refuses a uni stream: whichever
    # comes first says whether the violation closed the connection.
    barrier = peer.quic.get_next_available_stream_id(is_unidirectional=True)
    peer.write(barrier, b"barrier")
    await asyncio.wait(
        [asyncio.shield(log.stopped(barrier)), asyncio.shield(peer.terminated)],
        timeout=CLOSE_TIMEOUT,
        return_when=asyncio.FIRST_COMPLETED,
    )
    try:
        assert peer.terminated.done(), "the node kept the connection open after a violation"
        assert peer.terminated.result().error_code == Code.MALFORMED_FRAME
    finally:
        await node.finish(peer)


@pytest.fixture
def short_auth_deadline(settings: Settings) -> Settings:
    settings.auth.deadline = 0.5
    return settings


async def test_auth_deadline_after_stop_sending_on_control(
    short_auth_deadline: Settings, node: Node
) -> None:
    """The Kick raised inside AccessNode._sweep_timers: the sweeper task died, and no
    connection on the node was timed out any more."""
    peer = await node.peer()
    control = peer.new_stream()
    await probe(peer, control)
    peer.quic.stop_stream(control, 0x7C)
    peer.protocol.transmit()
    try:
        terminated = await peer.closed(3.0)  # the deadline is 0.5 s
        assert terminated.error_code == Code.AUTH_TIMEOUT
        other = await node.peer()
        await probe(other, other.new_stream())
        assert (await other.closed(3.0)).error_code == Code.AUTH_TIMEOUT
        await node.finish(other)
    finally:
        await node.finish(peer)


@pytest.fixture
def one_second_auth_deadline(settings: Settings) -> Settings:
    settings.auth.deadline = 1.0
    return settings


async def test_exp_beyond_float_range_is_an_invalid_token(
    one_second_auth_deadline: Settings, node: Node
) -> None:
    """math.isfinite() raised OverflowError for an int exp beyond float range; it escaped
    verify() and killed the auth task, so the connection timed out (3003) instead."""
    peer = await node.peer()
    control = peer.new_stream()
    token = signed_token(node.settings, {"sub": "77", "exp": 10**400})
    peer.write(control, frame(AuthRequest(token, "d", "t")))
    try:
        terminated, frames = await node.closed(peer, control)
        assert terminated.error_code == Code.AUTH_INVALID_TOKEN
        assert_closing_frame(*frames[-1], 2001, where=control, auth_seq=SEQ)
    finally:
        await node.finish(peer)
