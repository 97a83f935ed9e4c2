"""One imaccess client connection for the load generator.

The protocol is the SDK's sans-I/O core (:class:`ClientCore`: request numbering and
per-stream frame decoding); everything the high-level ``Client`` adds (reconnects,
resends, sync, queues, a task per connection) is left out, because a worker holds
thousands of these and each must cost little more than its QUIC state. The flow is the
SDK's: handshake, AuthRequest on the control stream, AuthAck, then a Heartbeat opens
the message stream where pushes arrive. The QUIC library under it is the mux's
:class:`~.stacks.ClientStack` (qh3 or aioquic).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from imaccess.client.core import ClientCore
from imaccess.protocol.errors import ProtocolError
from imaccess.protocol.messages import (
    AuthRequest,
    AuthResponse,
    ChatMessage,
    Delivery,
    Error,
    Heartbeat,
    Kick,
    MessageAck,
)
from imaccess.transport.quic import ALPN

from .quicmux import NetworkAddress, QuicEvent, QuicLink, QuicMux, SessionTicket
from .recorder import Recorder, content_for, sent_at
from .stacks import ClientStack

__all__ = ["ImClient", "client_configuration"]

_HEARTBEAT, _MESSAGE, _AUTH = 0, 1, 2


def client_configuration(
    stack: ClientStack, idle_timeout: float, ticket: SessionTicket | None = None
) -> Any:
    """The development certificate is self-signed: the load generator does not verify it.
    ``ticket`` must come from the same stack (each has its own SessionTicket class)."""
    return stack.configuration(alpn=ALPN, idle_timeout=idle_timeout, session_ticket=ticket)


class ImClient:
    __slots__ = (
        "_core",
        "_hb_timer",
        "_link",
        "_message_stream",
        "_pending",
        "_ping_uid",
        "_pings",
        "_recorder",
        "_seen",
        "_stack",
        "_started",
        "_token",
        "device_id",
        "on_ack",
        "ready",
        "ticket",
        "user_id",
    )

    def __init__(self, user_id: int, token: str, recorder: Recorder, device_id: str = "") -> None:
        self.user_id = user_id
        self.device_id = device_id or f"bench-{user_id}"
        self._token = token
        self._recorder = recorder
        self._core = ClientCore(max_frame_size=64 * 1024)
        self._link: QuicLink | None = None
        self._stack: ClientStack | None = None
        self._message_stream: int | None = None
        self._pending: dict[int, tuple[int, float]] = {}
        self._seen: set[int] = set()
        self._hb_timer: asyncio.TimerHandle | None = None
        self._ping_uid = 0
        self._pings: dict[int, float] = {}
        self._started = 0.0
        self.ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        """True once authenticated; False if the connection failed first."""
        self.on_ack: Callable[[ImClient], None] | None = None
        self.ticket: SessionTicket | None = None

    @property
    def alive(self) -> bool:
        link = self._link
        return link is not None and not link.closed and self.ready.done() and self.ready.result()

    def connect(self, mux: QuicMux, addr: NetworkAddress, configuration: Any) -> None:
        self._started = time.monotonic()
        self._stack = mux.stack
        link = mux.connect(configuration, addr, session_ticket_handler=self._keep_ticket)
        link.on_event = self._on_event
        self._link = link

    def start_heartbeats(
        self, interval: float, first_delay: float, keepalive: str = "ping"
    ) -> None:
        """Keep alive every ``interval``: with a QUIC PING (``ping``, what the SDK does:
        the RTT is the PING's ACK) or a Heartbeat frame and its echo (``frame``, what a
        browser has to do)."""
        loop = asyncio.get_running_loop()

        def beat() -> None:
            if not self.alive:
                return
            if keepalive == "ping":
                assert self._link is not None
                self._ping_uid += 1
                self._pings[self._ping_uid] = time.monotonic()
                self._link.ping(self._ping_uid)
            else:
                self._request(Heartbeat(), _HEARTBEAT, 0)
            self._recorder.heartbeats_sent += 1
            self._hb_timer = loop.call_later(interval, beat)

        self._hb_timer = loop.call_later(first_delay, beat)

    def send_chat(self, to_user: int, size: int, msg_id: str) -> None:
        """A ChatMessage whose content carries its send time; acked and pushed later."""
        stream = self._message_stream
        if stream is None or not self.alive:
            return
        now = time.monotonic()
        message = ChatMessage(msg_id=msg_id, to_user=to_user, content=content_for(now, size))
        self._request(message, _MESSAGE, stream, now)
        self._recorder.sent += 1

    def close(self) -> None:
        if self._hb_timer is not None:
            self._hb_timer.cancel()
            self._hb_timer = None
        if self._link is not None:
            self._link.close()
        if not self.ready.done():
            self.ready.set_result(False)

    # ------------------------------------------------------------ internals

    def _keep_ticket(self, ticket: SessionTicket) -> None:
        self.ticket = ticket

    def _request(
        self, body: AuthRequest | Heartbeat | ChatMessage, kind: int, stream: int, now: float = 0.0
    ) -> None:
        assert self._link is not None
        seq, frame = self._core.request(body)
        self._pending[seq] = (kind, now or time.monotonic())
        self._link.send(stream, frame)

    def _on_event(self, event: QuicEvent) -> None:
        stack = self._stack
        assert stack is not None
        kind = type(event)
        if kind is stack.StreamDataReceived:
            try:
                packets = self._core.receive(event.stream_id, event.data)
            except ProtocolError as exc:
                self._recorder.error(f"bad frame: {exc.code}")
                self.close()
                return
            for packet in packets:
                self._on_packet(packet.seq, packet.body)
        elif kind is stack.PingAcknowledged:
            sent = self._pings.pop(event.uid, None)
            if sent is not None and sent >= self._recorder.since:
                self._recorder.heartbeats_echoed += 1
                self._recorder.heartbeat.record(time.monotonic() - sent)
        elif kind is stack.HandshakeCompleted:
            if event.session_resumed:
                self._recorder.resumed += 1
            auth = AuthRequest(self._token, self.device_id, "bench")
            self._request(auth, _AUTH, 0)
        elif kind is stack.ConnectionTerminated:
            if self._hb_timer is not None:
                self._hb_timer.cancel()
                self._hb_timer = None
            if not self.ready.done():
                self._recorder.connect_failed += 1
                self._recorder.error(f"connect: {event.error_code} {event.reason_phrase}")
                self.ready.set_result(False)
            elif self.ready.result() and event.error_code != 0:
                self._recorder.disconnects += 1
                self._recorder.error(f"closed: {event.error_code} {event.reason_phrase}")

    def _on_packet(self, seq: int, body: object) -> None:
        pending = self._pending.pop(seq, None) if seq else None
        now = time.monotonic()
        recorder = self._recorder
        if pending is not None:
            kind, sent = pending
            if sent < recorder.since and kind != _AUTH:
                return  # a reply to a request of an earlier phase
            if kind == _MESSAGE and isinstance(body, MessageAck):
                if body.code == 0:
                    recorder.acked += 1
                    recorder.ack.record(now - sent)
                else:
                    recorder.refused += 1
                    recorder.error(f"ack code {body.code}")
                if self.on_ack is not None:
                    self.on_ack(self)
                return
            if kind == _HEARTBEAT and isinstance(body, Heartbeat):
                recorder.heartbeats_echoed += 1
                recorder.heartbeat.record(now - sent)
                return
            if kind == _AUTH and isinstance(body, AuthResponse):
                self._authenticated(body, now)
                return
        match body:
            case ChatMessage(delivery=Delivery.BROADCAST):
                recorder.broadcasts += 1
                sent_time = sent_at(body.content)
                if sent_time is not None:
                    recorder.broadcast.record(now - sent_time)
                if recorder.first_delivery is None:
                    recorder.first_delivery = now
                recorder.last_delivery = now
            case ChatMessage() if body.from_user != self.user_id:
                if body.seq in self._seen:
                    recorder.duplicates += 1
                else:
                    self._seen.add(body.seq)
                    recorder.delivered_now(sent_at(body.content), now)
            case ChatMessage():
                pass  # the sender's own copy, for its other devices
            case Kick(code, reason) | Error(code, reason) if code:
                recorder.error(f"{type(body).__name__} {code} {reason}")
            case _:
                pass

    def _authenticated(self, reply: AuthResponse, now: float) -> None:
        if reply.code != 0:
            self._recorder.connect_failed += 1
            self._recorder.error(f"auth {reply.code} {reply.message}")
            self.close()
            return
        assert self._link is not None
        self._recorder.connected += 1
        self._recorder.auth.record(now - self._started)
        stream = self._link.quic.get_next_available_stream_id()
        self._message_stream = stream
        _, frame = self._core.request(Heartbeat())  # opens the message stream
        self._link.send(stream, frame)
        if not self.ready.done():
            self.ready.set_result(True)
