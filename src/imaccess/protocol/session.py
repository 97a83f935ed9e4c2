"""Server-side session state, free of I/O.

Rules (PROTOCOL.md "Streams" and "Handshake"):

* The first bidirectional stream a client opens is the **control** stream; its first
  frame must be an AuthRequest (a Heartbeat may precede it, for 0-RTT keepalive).
* While authentication is pending only Heartbeats may arrive; anything else closes the
  connection with PROTOCOL_ERROR. An AuthRequest in 0-RTT early data is refused with
  EARLY_DATA_REFUSED and the connection stays open for a retry after the handshake.
* After a successful AuthAck the client opens its second bidirectional stream, the
  **message** stream. Pushes go there, or on the control stream while there is none.
  Replies go on the stream the request came on. A third bidirectional stream is a
  protocol error.
* A connection that resumed a session ticket issued to an authenticated connection
  (``resumed_user``) may send ChatMessage and SyncRequest in 0-RTT early data, as that
  user, before its AuthRequest: they are idempotent (messages are de-duplicated by
  ``msg_id``), unlike an AuthRequest, whose replay could kick the user's other devices.
* Any frame counts as activity, and so does any packet the transport reports with
  ``keepalive`` (raw-QUIC clients keep alive with QUIC PINGs, which never reach the
  session as frames); silence for ``heartbeat_timeout`` closes with HEARTBEAT_TIMEOUT;
  no AuthRequest within ``auth_deadline`` closes with AUTH_TIMEOUT.

The session never reads a clock: every call that depends on time takes ``now``
(seconds, any monotonic origin). Inputs are ``receive`` / ``check_timers`` and the
outcomes the adapter reports (``accept_auth`` ...); outputs are events from those calls
and frames taken with ``data_to_send``. Once closed, the session ignores input.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .codec import UnknownMsgType, decode_frame, encode_packet
from .codes import Code
from .errors import ProtocolError, StreamViolation
from .framing import DEFAULT_MAX_FRAME_SIZE, FrameDecoder
from .messages import (
    AuthRequest,
    AuthResponse,
    Body,
    ChatMessage,
    Error,
    FileRequest,
    Heartbeat,
    Kick,
    Notice,
    NoticeKind,
    Packet,
    SyncRequest,
)

__all__ = [
    "AuthRequested",
    "ChatReceived",
    "CloseRequested",
    "Event",
    "FileRequested",
    "ServerSession",
    "SessionState",
    "SyncRequested",
]


class SessionState(Enum):
    AWAITING_AUTH = "awaiting_auth"
    AUTHENTICATING = "authenticating"
    ACTIVE = "active"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class AuthRequested:
    seq: int
    request: AuthRequest


@dataclass(frozen=True, slots=True)
class ChatReceived:
    seq: int
    stream_id: int
    message: ChatMessage
    early_data: bool


@dataclass(frozen=True, slots=True)
class SyncRequested:
    seq: int
    stream_id: int
    request: SyncRequest


@dataclass(frozen=True, slots=True)
class FileRequested:
    seq: int
    stream_id: int
    request: FileRequest


@dataclass(frozen=True, slots=True)
class CloseRequested:
    """Send what is queued, then close the connection with ``code``."""

    code: Code
    reason: str


Event = AuthRequested | ChatReceived | SyncRequested | FileRequested | CloseRequested


class ServerSession:
    __slots__ = (
        "_auth_deadline",
        "_decoders",
        "_heartbeat_timeout",
        "_last_active",
        "_max_control_frame_size",
        "_max_frame_size",
        "_outbound",
        "close_code",
        "control_stream",
        "message_stream",
        "opened_at",
        "resumed_user",
        "state",
        "user_id",
    )

    def __init__(
        self,
        now: float,
        *,
        auth_deadline: float,
        heartbeat_timeout: float,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_control_frame_size: int | None = None,
        resumed_user: int = 0,
    ) -> None:
        self.state = SessionState.AWAITING_AUTH
        self.resumed_user = resumed_user
        """Who early data speaks for: the user the resumed session ticket was bound to."""
        self.opened_at = now
        self.control_stream: int | None = None
        self.message_stream: int | None = None
        self.user_id = 0
        self.close_code: Code | None = None
        self._auth_deadline = auth_deadline
        self._heartbeat_timeout = heartbeat_timeout
        self._max_frame_size = max_frame_size
        self._max_control_frame_size = max_control_frame_size or max_frame_size
        self._last_active = now
        self._decoders: dict[int, FrameDecoder] = {}
        self._outbound: list[tuple[int, bytes]] = []

    # ------------------------------------------------------------------ input

    def receive(
        self, stream_id: int, data: bytes, now: float, *, early_data: bool = False
    ) -> list[Event]:
        """Bytes arrived on a client bidirectional stream."""
        if self.state is SessionState.CLOSED:
            return []
        events: list[Event] = []
        try:
            decoder = self._decoders.get(stream_id) or self._open_stream(stream_id)
            violation: ProtocolError | None = None
            try:
                frames = decoder.feed(data)
            except ProtocolError as exc:  # handle what came before the bad header first
                frames, violation = exc.frames_before, exc
            for frame in frames:
                self._last_active = now
                try:
                    packet = decode_frame(frame)
                except UnknownMsgType as exc:
                    if self.state is not SessionState.ACTIVE:
                        raise StreamViolation(f"msg_type {exc.msg_type} before AuthAck") from None
                    self._send(stream_id, Packet(exc.seq, Error(exc.code, exc.message)))
                    continue
                event = self._dispatch(stream_id, packet, early_data)
                if event is not None:
                    events.append(event)
                if self.close_code is not None:
                    break
            if violation is not None and self.close_code is None:
                raise violation
        except ProtocolError as exc:
            events.append(self._violation(stream_id, exc))
        return events

    def keepalive(self, now: float) -> None:
        """The transport heard from the client (a packet, not necessarily a frame)."""
        self._last_active = now

    def check_timers(self, now: float) -> list[Event]:
        """Call at or after ``next_deadline()``; closes a silent or unauthenticated peer."""
        if self.state in (SessionState.AWAITING_AUTH, SessionState.AUTHENTICATING):
            if now >= self.opened_at + self._auth_deadline:
                return [self.kick(Code.AUTH_TIMEOUT, "no AuthRequest within the deadline")]
        elif (
            self.state is SessionState.ACTIVE and now >= self._last_active + self._heartbeat_timeout
        ):
            return [self.kick(Code.HEARTBEAT_TIMEOUT, "no heartbeat within the timeout")]
        return []

    def next_deadline(self) -> float | None:
        if self.state in (SessionState.AWAITING_AUTH, SessionState.AUTHENTICATING):
            return self.opened_at + self._auth_deadline
        if self.state is SessionState.ACTIVE:
            return self._last_active + self._heartbeat_timeout
        return None

    # ------------------------------------------------------------ outcomes

    def accept_auth(self, seq: int, response: AuthResponse) -> None:
        """The adapter verified the token and registered the connection."""
        if self.state is not SessionState.AUTHENTICATING:
            return
        self.state = SessionState.ACTIVE
        self.user_id = response.user_id
        assert self.control_stream is not None
        self._send(self.control_stream, Packet(seq, response))

    def reject_auth(self, seq: int, code: Code, message: str) -> CloseRequested:
        """The token was refused: answer with the code, then close."""
        if self.control_stream is not None and self.state is not SessionState.CLOSED:
            self._send(
                self.control_stream, Packet(seq, AuthResponse(code=int(code), message=message))
            )
        return self._close(code, message)

    def reply(self, stream_id: int, seq: int, body: Body) -> None:
        if self.state is not SessionState.CLOSED:
            self._send(stream_id, Packet(seq, body))

    def push(self, body: Body, seq: int = 0) -> None:
        """Server-initiated frame: on the message stream, else the control stream."""
        self.push_frame(encode_packet(Packet(seq, body)))

    def push_frame(self, frame: bytes) -> None:
        """``push`` of a frame already encoded (one message to many connections is
        encoded once)."""
        stream = self.message_stream if self.message_stream is not None else self.control_stream
        if stream is not None and self.state is SessionState.ACTIVE:
            self._outbound.append((stream, frame))

    def kick(self, code: Code, reason: str) -> CloseRequested:
        """Tell the client why (a Kick frame on the control stream), then close."""
        if self.state is not SessionState.CLOSED and self.control_stream is not None:
            self._send(self.control_stream, Packet(0, Kick(int(code), reason)))
        return self._close(code, reason)

    def announce_drain(self, reconnect_after_ms: int, reason: str) -> CloseRequested | None:
        """The node is going away. An authenticated client gets a Drain notice and may
        finish what it has in flight, then reconnects elsewhere after the delay (the node
        closes it with DRAINING at its deadline if it has not gone by then). A client that
        has not authenticated is kicked at once."""
        if self.state is SessionState.ACTIVE:
            self.push(Notice(NoticeKind.DRAIN, int(Code.DRAINING), reason, reconnect_after_ms))
            return None
        return self.kick(Code.DRAINING, reason)

    def data_to_send(self) -> list[tuple[int, bytes]]:
        """Frames produced since the last call, as ``(stream_id, frame)`` in order."""
        out, self._outbound = self._outbound, []
        return out

    # ------------------------------------------------------------ internals

    def _open_stream(self, stream_id: int) -> FrameDecoder:
        if self.control_stream is None:
            self.control_stream = stream_id
            decoder = FrameDecoder(self._max_control_frame_size)
            self._decoders[stream_id] = decoder
            return decoder
        if self.message_stream is None and self.state is SessionState.ACTIVE:
            self.message_stream = stream_id
        else:
            raise StreamViolation(
                f"stream {stream_id} not allowed: control and message streams only, "
                "the message stream after AuthAck"
            )
        decoder = FrameDecoder(self._max_frame_size)
        self._decoders[stream_id] = decoder
        return decoder

    def _dispatch(self, stream_id: int, packet: Packet, early_data: bool) -> Event | None:
        body = packet.body
        if isinstance(body, Heartbeat):
            self._send(stream_id, Packet(packet.seq, Heartbeat()))
            return None
        if self.state is SessionState.AWAITING_AUTH:
            if early_data and self.resumed_user and isinstance(body, ChatMessage | SyncRequest):
                return self._request(stream_id, packet, early_data)
            if not isinstance(body, AuthRequest):
                raise StreamViolation(f"the first frame must be Auth, got {body.msg_type.name}")
            if early_data:
                self._send(
                    stream_id,
                    Packet(
                        packet.seq,
                        AuthResponse(
                            code=int(Code.EARLY_DATA_REFUSED),
                            message="AuthRequest is not accepted in 0-RTT data; resend it",
                        ),
                    ),
                )
                return None
            self.state = SessionState.AUTHENTICATING
            return AuthRequested(packet.seq, body)
        if self.state is SessionState.AUTHENTICATING:
            raise StreamViolation(f"{body.msg_type.name} before AuthAck")
        return self._request(stream_id, packet, early_data)

    def _request(self, stream_id: int, packet: Packet, early_data: bool) -> Event | None:
        body = packet.body
        match body:
            case ChatMessage():
                return ChatReceived(packet.seq, stream_id, body, early_data)
            case SyncRequest():
                return SyncRequested(packet.seq, stream_id, body)
            case FileRequest() if not early_data:
                return FileRequested(packet.seq, stream_id, body)
            case AuthRequest():
                self._send(
                    stream_id,
                    Packet(
                        packet.seq, Error(int(Code.ALREADY_AUTHENTICATED), "already authenticated")
                    ),
                )
                return None
        self._send(
            stream_id,
            Packet(
                packet.seq,
                Error(int(Code.UNKNOWN_MSG_TYPE), f"{body.msg_type.name} is not sent by clients"),
            ),
        )
        return None

    def _violation(self, stream_id: int, exc: ProtocolError) -> CloseRequested:
        if self.state is not SessionState.CLOSED:
            self._send(stream_id, Packet(0, Error(int(exc.code), exc.message)))
        return self._close(exc.code, exc.message)

    def _close(self, code: Code, reason: str) -> CloseRequested:
        if self.close_code is not None:  # the first reason to close is the one that counts
            return CloseRequested(self.close_code, reason)
        self.state = SessionState.CLOSED
        self.close_code = code
        return CloseRequested(code, reason)

    def _send(self, stream_id: int, packet: Packet) -> None:
        self._outbound.append((stream_id, encode_packet(packet)))
