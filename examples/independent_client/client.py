#!/usr/bin/env python3
"""Independent imaccess chat client, written only from PROTOCOL.md and schema/message.fbs.

Does not import the ``imaccess`` package. Dependencies: aioquic, flatbuffers, stdlib.
FlatBuffers code is generated into ./gen by ./gen.sh.

Output (stdout, one line each):
    ACK <server_seq>                  the MessageAck (code 0) for the message we sent
    MSG <seq> <from_user> <content>   each chat message handed to the "application"
                                      (exactly once, in inbox order, by the cursor algorithm)
Diagnostics go to stderr (-v for more).

Exit codes: 0 done, 1 timeout, 2 usage, 3 fatal server code (2xxx/4xxx, 1002) or local error.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import random
import struct
import sys
import time
import uuid
from dataclasses import dataclass, field

import flatbuffers
from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, StreamDataReceived, StreamReset

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))
from im.protocol import AuthRequest as FbAuthRequest
from im.protocol import AuthResponse as FbAuthResponse
from im.protocol import ChatMessage as FbChatMessage
from im.protocol import Error as FbError
from im.protocol import Kick as FbKick
from im.protocol import MessageAck as FbMessageAck
from im.protocol import Notice as FbNotice
from im.protocol import Packet as FbPacket
from im.protocol import SyncRequest as FbSyncRequest
from im.protocol import SyncResponse as FbSyncResponse
from im.protocol.MsgType import MsgType
from im.protocol.NoticeKind import NoticeKind

ALPN = "im-access"
MAX_FRAME = 65536  # limits.max_frame_size: bound on `length` (2 + body)
ACK_TIMEOUT = 5.0  # reference client: 5 s, 5 attempts
ACK_ATTEMPTS = 5
BACKOFF_BASE = 0.2
BACKOFF_CAP = 30.0
HANDSHAKE_TIMEOUT = 10.0

VERBOSE = False


def log(*a: object) -> None:
    if VERBOSE:
        print("[client]", *a, file=sys.stderr, flush=True)


def warn(*a: object) -> None:
    print("[client]", *a, file=sys.stderr, flush=True)


def now_ms() -> int:
    return int(time.time() * 1000)


# --------------------------------------------------------------------------- codec


def _s(b: bytes | None) -> str:
    return b.decode("utf-8") if b is not None else ""


def encode_frame(seq: int, msg_type: int, payload: bytes | None) -> bytes:
    """Header (u32 length BE, u16 msg_type BE) + Packet FlatBuffer body."""
    b = flatbuffers.Builder(64 + (len(payload) if payload else 0))
    pv = b.CreateByteVector(payload) if payload else None
    FbPacket.Start(b)
    FbPacket.AddSeq(b, seq)
    FbPacket.AddMsgType(b, msg_type)
    FbPacket.AddTimestamp(b, now_ms())
    if pv is not None:
        FbPacket.AddPayload(b, pv)
    b.Finish(FbPacket.End(b))
    body = bytes(b.Output())
    if 2 + len(body) > MAX_FRAME:
        raise ValueError("frame too large")
    return struct.pack(">IH", 2 + len(body), msg_type & 0xFFFF) + body


def enc_auth(token: str, device_id: str, platform: str) -> bytes:
    b = flatbuffers.Builder(256)
    t, d, p = b.CreateString(token), b.CreateString(device_id), b.CreateString(platform)
    FbAuthRequest.Start(b)
    FbAuthRequest.AddToken(b, t)
    FbAuthRequest.AddDeviceId(b, d)
    FbAuthRequest.AddPlatform(b, p)
    b.Finish(FbAuthRequest.End(b))
    return bytes(b.Output())


def enc_chat(msg_id: str, to_user: int, content: str) -> bytes:
    b = flatbuffers.Builder(128 + len(content))
    c, m = b.CreateString(content), b.CreateString(msg_id)
    FbChatMessage.Start(b)
    FbChatMessage.AddMsgId(b, m)
    FbChatMessage.AddToUser(b, to_user)
    FbChatMessage.AddContent(b, c)
    FbChatMessage.AddContentType(b, 0)
    b.Finish(FbChatMessage.End(b))
    return bytes(b.Output())


def enc_sync(since_seq: int, limit: int) -> bytes:
    b = flatbuffers.Builder(32)
    FbSyncRequest.Start(b)
    FbSyncRequest.AddSinceSeq(b, since_seq)
    FbSyncRequest.AddLimit(b, limit)
    b.Finish(FbSyncRequest.End(b))
    return bytes(b.Output())


@dataclass
class Frame:
    stream_id: int
    msg_type: int
    seq: int
    payload: bytes  # nested FlatBuffer, copied into its own buffer (alignment-safe)


@dataclass
class Chat:
    msg_id: str
    from_user: int
    to_user: int
    content: str
    content_type: int
    timestamp: int
    seq: int


def dec_chat(c: FbChatMessage.ChatMessage) -> Chat:
    return Chat(
        _s(c.MsgId()),
        c.FromUser(),
        c.ToUser(),
        _s(c.Content()),
        c.ContentType(),
        c.Timestamp(),
        c.Seq(),
    )


def root(cls, payload: bytes):
    """Decode a nested payload; schema defaults apply to an empty payload (Sync/Heartbeat)."""
    if len(payload) < 4:
        raise ValueError("payload shorter than 4 bytes")
    return cls.GetRootAs(payload, 0)


class FrameDecoder:
    """One incremental decoder per stream."""

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self.buf += data
        out = []
        while len(self.buf) >= 4:
            (length,) = struct.unpack_from(">I", self.buf, 0)
            if length > MAX_FRAME or length < 2:
                raise ValueError(f"bad frame length {length}")
            if len(self.buf) < 4 + length:
                break
            (mt,) = struct.unpack_from(">H", self.buf, 4)
            body = bytes(self.buf[6 : 4 + length])
            del self.buf[: 4 + length]
            if len(body) < 8:
                raise ValueError("body under 8 bytes")
            pkt = FbPacket.Packet.GetRootAs(body, 0)
            pmt = pkt.MsgType() & 0xFFFF
            if pmt != mt:
                raise ValueError(f"header msg_type {mt} != Packet.msg_type {pmt}")
            o = pkt._tab.Offset(10)  # payload field (vtable slot 3)
            payload = b""
            if o:
                start = pkt._tab.Vector(o)
                payload = bytes(body[start : start + pkt._tab.VectorLen(o)])
            out.append(Frame(self.stream_id, mt, pkt.Seq(), payload))
        return out


# --------------------------------------------------------------------------- connection


class Closed(Exception):
    def __init__(self, code: int | None, why: str) -> None:
        super().__init__(f"code={code} {why}")
        self.code = code
        self.why = why


class Proto(QuicConnectionProtocol):
    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.decoders: dict[int, FrameDecoder] = {}
        self.on_frame = None  # callable(Frame)
        self.on_close = None  # callable(code|None, reason)
        self.last_rx = time.monotonic()
        self.terminated: ConnectionTerminated | None = None

    def send_frame(self, stream_id: int, data: bytes) -> None:
        self._quic.send_stream_data(stream_id, data)
        self.transmit()

    def quic_event_received(self, event) -> None:
        if isinstance(event, StreamDataReceived):
            dec = self.decoders.setdefault(event.stream_id, FrameDecoder(event.stream_id))
            try:
                frames = dec.feed(event.data)
            except Exception as e:
                warn(f"undecodable data from server on stream {event.stream_id}: {e}")
                self.close(error_code=4004, reason_phrase="client: malformed frame")
                if self.on_close:
                    self.on_close(None, f"malformed frame from server: {e}")
                return
            for f in frames:
                self.last_rx = time.monotonic()
                if self.on_frame:
                    self.on_frame(f)
        elif isinstance(event, StreamReset):
            log(f"stream {event.stream_id} reset by server, code {event.error_code}")
        elif isinstance(event, ConnectionTerminated):
            self.terminated = event
            # application CONNECTION_CLOSE (0x1d) -> frame_type None in aioquic;
            # transport close carries a frame type and a transport error code.
            code = event.error_code if event.frame_type is None else None
            if self.on_close:
                self.on_close(
                    code,
                    f"CONNECTION_CLOSE code={event.error_code} "
                    f"frame_type={event.frame_type} reason={event.reason_phrase!r}",
                )


# --------------------------------------------------------------------------- client


@dataclass
class Outgoing:
    msg_id: str
    to_user: int
    content: str
    acked: bool = False


@dataclass
class State:
    last: int = 0  # delivery cursor (highest inbox seq handed to the application)
    user_id: int = 0
    received: int = 0  # delivered messages not sent by this user
    sent_ids: set[str] = field(default_factory=set)
    outgoing: Outgoing | None = None


class Fatal(Exception):
    pass


class Session:
    """One QUIC connection: auth, message stream, heartbeats, sync, send."""

    def __init__(self, client: Client, proto: Proto) -> None:
        self.c = client
        self.p = proto
        self.st = client.st
        self.ctrl: int | None = None
        self.msg: int | None = None
        self.next_seq = 1
        self.pending: dict[int, asyncio.Future] = {}
        self.closed: asyncio.Future = asyncio.get_running_loop().create_future()
        # from the in-band Kick/Error/AuthResponse if one came, else CONNECTION_CLOSE
        self.close_code: int | None = None
        self.syncing = False
        self.gap = False
        self.sync_task: asyncio.Task | None = None
        self.drain_after_ms: int | None = None
        proto.on_frame = self.on_frame
        proto.on_close = self.on_close

    # -- plumbing
    def take_seq(self) -> int:
        s = self.next_seq
        self.next_seq += 1
        return s

    def send(
        self, stream_id: int, msg_type: int, payload: bytes | None, seq: int | None = None
    ) -> int:
        seq = self.take_seq() if seq is None else seq
        self.p.send_frame(stream_id, encode_frame(seq, msg_type, payload))
        return seq

    async def request(
        self, stream_id: int, msg_type: int, payload: bytes | None, timeout: float | None = None
    ) -> Frame:
        seq = self.take_seq()
        fut = asyncio.get_running_loop().create_future()
        self.pending[seq] = fut
        self.send(stream_id, msg_type, payload, seq)
        try:
            waiter = asyncio.ensure_future(asyncio.wait_for(asyncio.shield(fut), timeout))
            done, _ = await asyncio.wait({waiter, self.closed}, return_when=asyncio.FIRST_COMPLETED)
            if waiter in done:
                return waiter.result()
            waiter.cancel()
            raise self.closed.result()
        finally:
            self.pending.pop(seq, None)

    def on_close(self, code: int | None, why: str) -> None:
        if self.closed.done():
            return
        if self.close_code is None:
            self.close_code = code
        log("connection closed:", why)
        self.closed.set_result(Closed(self.close_code, why))

    # -- inbound
    def on_frame(self, f: Frame) -> None:
        try:
            self._on_frame(f)
        except Exception as e:
            warn(f"failed to handle frame type {f.msg_type} seq {f.seq}: {e!r}")

    def _on_frame(self, f: Frame) -> None:
        log(f"<- stream {f.stream_id} type {f.msg_type} seq {f.seq} payload {len(f.payload)}B")
        if f.seq != 0 and f.seq in self.pending:
            fut = self.pending[f.seq]
            if not fut.done():
                fut.set_result(f)
            return
        if f.msg_type == MsgType.Heartbeat:
            return  # echo (seq not tracked); counts as liveness
        if f.msg_type == MsgType.Message:
            self.on_push(dec_chat(root(FbChatMessage.ChatMessage, f.payload)))
        elif f.msg_type == MsgType.Kick:
            k = root(FbKick.Kick, f.payload)
            warn(f"Kick code={k.Code()} reason={_s(k.Reason())!r}")
            self.close_code = k.Code()
        elif f.msg_type == MsgType.Error:
            e = root(FbError.Error, f.payload)
            warn(f"Error code={e.Code()} seq={f.seq} message={_s(e.Message())!r}")
            if e.Code() >= 2000:
                self.close_code = e.Code()
        elif f.msg_type == MsgType.Notice:
            n = root(FbNotice.Notice, f.payload)
            warn(
                f"Notice kind={n.Kind()} code={n.Code()} message={_s(n.Message())!r} "
                f"reconnect_after_ms={n.ReconnectAfterMs()}"
            )
            if n.Kind() == NoticeKind.Drain:
                self.close_code = n.Code() or 3001
                self.drain_after_ms = n.ReconnectAfterMs()
        else:
            log(f"ignoring unsolicited frame type {f.msg_type} seq {f.seq}")

    def on_push(self, m: Chat) -> None:
        st = self.st
        if m.seq == st.last + 1:
            self.c.deliver(m)
        elif m.seq <= st.last:
            log(f"duplicate push seq {m.seq} (last {st.last}) dropped")
        else:
            log(f"gap: push seq {m.seq}, last {st.last}; syncing")
            self.gap = True
            self.start_sync()

    # -- sync
    def start_sync(self) -> None:
        if not self.syncing and self.msg is not None:
            self.sync_task = asyncio.ensure_future(self.sync())

    async def sync(self) -> None:
        if self.syncing:
            return
        self.syncing = True
        try:
            self.gap = False
            attempt = 0
            while True:
                since = self.st.last
                payload = enc_sync(since, self.c.args.sync_limit)
                f = await self.request(self.msg, MsgType.Sync, payload, timeout=30)
                if f.msg_type == MsgType.Error:
                    e = root(FbError.Error, f.payload)
                    raise Fatal(f"Sync refused: Error {e.Code()} {_s(e.Message())}")
                if f.msg_type != MsgType.SyncAck:
                    raise Fatal(f"unexpected reply type {f.msg_type} to Sync")
                r = root(FbSyncResponse.SyncResponse, f.payload)
                if r.Code() != 0:
                    # 1005 UNAVAILABLE: nothing delivered; retry after a backoff
                    attempt += 1
                    d = random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))
                    warn(f"SyncAck code {r.Code()}, retrying in {d:.2f}s")
                    await asyncio.sleep(d)
                    continue
                attempt = 0
                n = r.MessagesLength()
                log(f"SyncAck since={since} n={n} max_seq={r.MaxSeq()} has_more={r.HasMore()}")
                if r.MaxSeq() < since:
                    warn(f"inbox reset (max_seq {r.MaxSeq()} < since_seq {since}); cursor -> 0")
                    self.st.last = 0
                    continue
                for i in range(n):
                    m = dec_chat(r.Messages(i))
                    if m.seq > self.st.last:  # may start above last+1 (retention); accept
                        self.c.deliver(m)
                if r.HasMore():
                    continue
                if self.gap:  # a gap appeared while this sync ran
                    self.gap = False
                    continue
                break
        finally:
            self.syncing = False

    # -- main
    async def run(self) -> None:
        q = self.p._quic
        st = self.st
        args = self.c.args
        # Control stream = first client bidi stream. AuthRequest first.
        self.ctrl = q.get_next_available_stream_id()
        f = await self.request(
            self.ctrl, MsgType.Auth, enc_auth(args.token, args.device_id, args.platform), timeout=15
        )
        if f.msg_type == MsgType.Error:
            e = root(FbError.Error, f.payload)
            raise Fatal(f"Auth answered with Error {e.Code()} {_s(e.Message())}")
        if f.msg_type != MsgType.AuthAck:
            raise Fatal(f"unexpected reply type {f.msg_type} to Auth")
        a = root(FbAuthResponse.AuthResponse, f.payload)
        if a.Code() != 0:
            self.close_code = a.Code()
            warn(f"AuthResponse code={a.Code()} message={_s(a.Message())!r}")
            if a.Code() == 1006:  # early data refused: resend after handshake (reconnect path)
                raise Closed(1006, "early data refused")
            raise Closed(a.Code(), "auth refused")
        if st.user_id and st.user_id != a.UserId():
            raise Fatal("user id changed across reconnect")
        st.user_id = a.UserId()
        hb_ms = a.HeartbeatIntervalMs() or 30000
        warn(
            f"authenticated user_id={a.UserId()} conn_id={a.ConnId()} node={_s(a.NodeId())} "
            f"hb={hb_ms}ms timeout={a.HeartbeatTimeoutMs()}ms"
        )
        self.c.reset_backoff()

        # Message stream = second client bidi stream; open it with a Heartbeat.
        self.msg = q.get_next_available_stream_id()
        self.send(self.msg, MsgType.Heartbeat, None)

        hb = asyncio.ensure_future(self.heartbeats(hb_ms / 1000.0))
        try:
            await self.sync()  # after every connect
            if st.outgoing and not st.outgoing.acked:
                await self.send_chat(st.outgoing)
            while not self.c.done():
                if self.gap and not self.syncing:
                    self.start_sync()
                done, _ = await asyncio.wait(
                    {self.closed, self.c.done_event_task()},
                    timeout=0.5,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if self.closed in done:
                    raise self.closed.result()
                if self.sync_task and self.sync_task.done() and self.sync_task.exception():
                    raise self.sync_task.exception()
        finally:
            hb.cancel()
            if self.sync_task:
                self.sync_task.cancel()

    async def heartbeats(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - self.p.last_rx > 3 * interval:
                warn("nothing from server for 3 heartbeat intervals; link dead")
                self.p.close(error_code=0, reason_phrase="client: link dead")
                self.on_close(None, "link dead")
                return
            self.send(self.ctrl, MsgType.Heartbeat, None)

    async def send_chat(self, o: Outgoing) -> None:
        attempt = 0
        while attempt < ACK_ATTEMPTS:
            attempt += 1
            try:
                payload = enc_chat(o.msg_id, o.to_user, o.content)
                f = await self.request(self.msg, MsgType.Message, payload, timeout=ACK_TIMEOUT)
            except TimeoutError:
                warn(f"no MessageAck within {ACK_TIMEOUT}s (attempt {attempt}); resending")
                continue
            if f.msg_type == MsgType.Error:
                e = root(FbError.Error, f.payload)
                raise Fatal(f"Message answered with Error {e.Code()} {_s(e.Message())}")
            if f.msg_type != MsgType.MessageAck:
                raise Fatal(f"unexpected reply type {f.msg_type} to Message")
            ack = root(FbMessageAck.MessageAck, f.payload)
            if ack.Code() == 0:
                o.acked = True
                dup = " (duplicate)" if ack.Duplicate() else ""
                if ack.Duplicate():
                    warn(f"MessageAck: msg_id {o.msg_id} was a duplicate")
                log(f"MessageAck msg_id={_s(ack.MsgId())} ts={ack.Timestamp()}{dup}")
                self.c.out(f"ACK {ack.ServerSeq()}")
                self.c.check_done()
                return
            if 1000 <= ack.Code() < 2000 and ack.Code() in (1003, 1005):
                d = random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))
                warn(f"MessageAck code {ack.Code()}; retrying same msg_id in {d:.2f}s")
                await asyncio.sleep(d)
                continue
            raise Fatal(f"message refused: MessageAck code {ack.Code()}")
        raise Fatal(f"no MessageAck after {ACK_ATTEMPTS} attempts")


class Client:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.st = State()
        self.attempt = 0
        self._done = asyncio.Event()
        self._done_task: asyncio.Task | None = None
        self.session: Session | None = None
        if args.send_to is not None:
            o = Outgoing(args.msg_id or str(uuid.uuid4()), args.send_to, args.text)
            self.st.outgoing = o
            self.st.sent_ids.add(o.msg_id)

    def out(self, line: str) -> None:
        print(line, flush=True)

    def reset_backoff(self) -> None:
        self.attempt = 0

    def deliver(self, m: Chat) -> None:
        """Hand a message to the application exactly once (caller checked the cursor)."""
        st = self.st
        st.last = m.seq
        own = m.from_user == st.user_id and m.msg_id in st.sent_ids
        if own:
            log(f"own message echoed at seq {m.seq} (msg_id {m.msg_id}); not shown again")
        else:
            content = m.content.replace("\\", "\\\\").replace("\n", "\\n")
            self.out(f"MSG {m.seq} {m.from_user} {content}")
            if m.from_user != st.user_id:
                st.received += 1
        self.check_done()

    def check_done(self) -> None:
        st = self.st
        if st.received >= self.args.expect and (st.outgoing is None or st.outgoing.acked):
            self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    def done_event_task(self) -> asyncio.Task:
        if self._done_task is None:
            self._done_task = asyncio.ensure_future(self._done.wait())
        return self._done_task

    def quic_config(self) -> QuicConfiguration:
        a = self.args
        cfg = QuicConfiguration(is_client=True, alpn_protocols=[ALPN])
        cfg.idle_timeout = 90.0
        if a.insecure:
            import ssl

            cfg.verify_mode = ssl.CERT_NONE
        else:
            cfg.load_verify_locations(cafile=a.ca)
        cfg.server_name = a.server_name or server_name_for(a.host)
        return cfg

    async def run(self) -> int:
        a = self.args
        while True:
            self.session = None
            try:
                protos: list[Proto] = []

                def factory(*pa, _protos: list[Proto] = protos, **kw) -> Proto:
                    _protos.append(Proto(*pa, **kw))
                    return _protos[-1]

                async with connect(
                    a.host,
                    a.port,
                    configuration=self.quic_config(),
                    create_protocol=factory,
                    wait_connected=False,
                ) as proto:
                    await wait_handshake(proto)
                    self.session = Session(self, proto)
                    await self.session.run()
                    return 0
            except Closed as e:
                code = e.code
                drain_ms = self.session.drain_after_ms if self.session else None
            except (ConnectionError, OSError) as e:  # e.g. handshake failure
                ev = protos[-1].terminated if protos else None
                if ev is not None and 0x100 <= ev.error_code <= 0x1FF:
                    # CRYPTO_ERROR (TLS alert): bad certificate, no ALPN, ... Retrying
                    # cannot help, although PROTOCOL.md says "handled like 3xxx".
                    warn(f"TLS handshake failed: {ev.reason_phrase} (0x{ev.error_code:x})")
                    return 3
                warn(f"connect failed: {e!r}")
                code, drain_ms = None, None
            if code is not None and (2000 <= code < 3000 or 4000 <= code < 5000):
                warn(f"connection closed with code {code}: not reconnecting")
                return 3
            self.attempt += 1
            if drain_ms:
                delay = drain_ms / 1000.0
            else:
                delay = random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**self.attempt))
            warn(f"connection lost (code {code}); reconnecting in {delay:.2f}s")
            await asyncio.sleep(delay)


def _consume(f: asyncio.Future) -> None:
    if not f.cancelled():
        f.exception()


async def wait_handshake(proto: Proto) -> None:
    """Send the Initial and wait (bounded) for the QUIC/TLS handshake to complete."""
    proto.transmit()
    try:
        await asyncio.wait_for(proto.wait_connected(), HANDSHAKE_TIMEOUT)
    except TimeoutError:
        raise ConnectionError("QUIC handshake timed out") from None
    finally:
        # aioquic shields its waiter; if we stopped waiting, make sure a later
        # ConnectionError on it is retrieved (avoids "Future exception was never retrieved").
        w = proto._connected_waiter
        if w is not None:
            w.add_done_callback(_consume)


def server_name_for(host: str) -> str:
    try:
        if ipaddress.ip_address(host).is_loopback:
            return "localhost"
    except ValueError:
        if host == "localhost":
            return "localhost"
    return host


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8443)
    ap.add_argument("--ca", help="PEM file trusted as CA (the dev certificate)")
    ap.add_argument("--insecure", action="store_true", help="skip certificate verification")
    ap.add_argument("--server-name", help="TLS server name (default: localhost for loopback)")
    ap.add_argument("--token", required=True, help="JWT")
    ap.add_argument("--device-id", required=True)
    ap.add_argument("--platform", default="desktop")
    ap.add_argument("--send-to", type=int, help="user id to send one message to")
    ap.add_argument("--text", default="hello")
    ap.add_argument("--msg-id", help="msg_id to send (default: a new UUID)")
    ap.add_argument("--expect", type=int, default=0, help="exit after N messages from others")
    ap.add_argument("--timeout", type=float, default=30.0, help="overall timeout, seconds")
    ap.add_argument("--sync-limit", type=int, default=0, help="SyncRequest.limit (0 = server)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if not args.ca and not args.insecure:
        ap.error("--ca is required (or --insecure)")
    if args.send_to is not None and args.send_to <= 0:
        ap.error("--send-to must be > 0")
    return args


async def amain(args: argparse.Namespace) -> int:
    client = Client(args)
    try:
        return await asyncio.wait_for(client.run(), args.timeout)
    except TimeoutError:
        st = client.st
        warn(
            f"timeout after {args.timeout}s: received {st.received}/{args.expect}, "
            f"acked={st.outgoing.acked if st.outgoing else 'n/a'}"
        )
        return 1
    except Fatal as e:
        warn(f"error: {e}")
        return 3


def main(argv: list[str] | None = None) -> int:
    global VERBOSE
    args = parse_args(argv)
    VERBOSE = args.verbose
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
