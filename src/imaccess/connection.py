"""One client connection: the sans-I/O session, a bounded coalescing writer, and the
transport under them.

The transport owns the read loop and calls :meth:`Connection.receive`; everything the
session produces goes through the writer, which queues frames and flushes them once per
event-loop turn: consecutive frames for one stream become one write, and one flush
sends one batch of packets. The writer's bound counts both its own queue and what the
transport holds unacknowledged, so a client that stops reading is closed with
SLOW_CONSUMER instead of growing the node's memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from .hub import DeviceLogin
from .protocol.codes import Code
from .protocol.messages import AuthResponse, Body
from .protocol.session import CloseRequested, Event, ServerSession

__all__ = ["Connection", "FileStreams", "OutboundWriter", "Transport", "coalesce"]

log = logging.getLogger(__name__)


class FileStreams(Protocol):
    """Unidirectional streams for files (PROTOCOL.md "Files"), where a transport has them."""

    def open_stream(self) -> int:
        """A new server-initiated unidirectional stream."""
        ...

    def write(self, stream_id: int, data: bytes, end_stream: bool = False) -> None: ...

    def backlog(self, stream_id: int) -> int:
        """Bytes written on the stream and not yet acknowledged by the client."""
        ...

    async def acked(self) -> None:
        """Return once the client has next acknowledged something (or gone)."""

    def reset(self, stream_id: int, code: int) -> None:
        """Abandon a stream we send on (RESET_STREAM)."""
        ...

    def stop(self, stream_id: int, code: int) -> None:
        """Ask the client to stop sending on its stream (STOP_SENDING)."""
        ...

    def transmit(self) -> None: ...


class Transport(Protocol):
    """Write-only towards the connection; the adapter behind it owns reading."""

    kind: str

    @property
    def file_streams(self) -> FileStreams | None:
        """None on a transport without unidirectional streams (WebSocket)."""
        ...

    @property
    def remote_address(self) -> tuple[str, int]: ...

    def send(self, stream_id: int, data: bytes) -> None: ...

    def transmit(self) -> None: ...

    def buffered_bytes(self) -> int: ...

    def close(self, code: int, reason: str) -> None: ...

    @property
    def resumed_user(self) -> int:
        """The user whose authenticated connection issued the session ticket this one
        resumed with, or 0: who 0-RTT early data speaks for."""
        ...

    def bind_identity(self, user_id: int, expires_at: float) -> None:
        """The connection authenticated as ``user_id`` until ``expires_at`` (wall clock);
        a transport with session resumption binds its tickets to it."""
        ...


def coalesce(frames: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """Join runs of frames for the same stream, keeping the order across streams."""
    out: list[tuple[int, bytes]] = []
    run: list[bytes] = []
    current = -1
    for stream_id, data in frames:
        if stream_id != current and run:
            out.append((current, b"".join(run)))
            run = []
        current = stream_id
        run.append(data)
    if run:
        out.append((current, b"".join(run)))
    return out


def _gone() -> None:
    """The overflow callback of a writer whose connection is gone."""


class OutboundWriter:
    __slots__ = (
        "_loop",
        "_max_bytes",
        "_on_overflow",
        "_pending",
        "_pending_bytes",
        "_scheduled",
        "_transport",
        "_transport_bytes",
    )

    def __init__(
        self,
        transport: Transport,
        max_bytes: int,
        on_overflow: Callable[[], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._transport = transport
        self._max_bytes = max_bytes
        self._on_overflow = on_overflow
        self._loop = loop
        self._pending: list[tuple[int, bytes]] = []
        self._pending_bytes = 0
        self._scheduled = False
        self._transport_bytes = 0

    @property
    def has_pending(self) -> bool:
        """Frames are queued: a flush is scheduled in this loop turn, and it transmits."""
        return bool(self._pending)

    @property
    def queued_bytes(self) -> int:
        return self._pending_bytes + self._transport.buffered_bytes()

    def write(self, frames: list[tuple[int, bytes]]) -> None:
        if not frames:
            return
        if not self._scheduled:
            # the transport's backlog is read once per loop turn, not once per frame: it
            # walks the connection's streams, and it only shrinks between turns anyway
            self._transport_bytes = self._transport.buffered_bytes()
        self._pending.extend(frames)
        self._pending_bytes += sum(len(data) for _, data in frames)
        if self._pending_bytes + self._transport_bytes > self._max_bytes:
            self._on_overflow()
            self.discard()  # whatever the callback did, nothing queued here goes out
            return
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        frames, self._pending, self._pending_bytes = self._pending, [], 0
        for stream_id, data in coalesce(frames):
            self._transport.send(stream_id, data)
        self._transport.transmit()

    def discard(self) -> None:
        self._pending.clear()
        self._pending_bytes = 0

    def detach(self) -> None:
        """The connection is gone: drop what is queued, and the overflow callback, which
        refers back to the connection (a cycle only the cyclic collector would break)."""
        self.discard()
        self._on_overflow = _gone


class EventSink(Protocol):
    """The node, as a connection sees it."""

    def on_events(self, connection: Connection, events: list[Event]) -> None: ...

    def on_closed(self, connection: Connection) -> None: ...

    def on_upload(
        self, connection: Connection, stream_id: int, data: bytes, end_stream: bool
    ) -> None: ...

    def on_stream_aborted(self, connection: Connection, stream_id: int) -> None: ...


class Connection:
    __slots__ = (
        "_closed",
        "_lost",
        "_sink",
        "conn_id",
        "gone",
        "ip",
        "login",
        "session",
        "tasks",
        "transport",
        "writer",
    )

    def __init__(
        self,
        conn_id: int,
        transport: Transport,
        session: ServerSession,
        sink: EventSink,
        *,
        max_outbound_bytes: int,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.conn_id = conn_id
        self.transport = transport
        self.session = session
        self.login: DeviceLogin | None = None
        self.ip = ""
        self.tasks: set[asyncio.Task[None]] = set()
        self._sink = sink
        self._closed = False
        self._lost = False
        self.gone: asyncio.Future[None] = loop.create_future()
        """Resolves once the transport is gone and the node has forgotten the connection."""
        self.writer = OutboundWriter(transport, max_outbound_bytes, self._overflow, loop)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def user_id(self) -> int:
        return self.login.user_id if self.login else self.session.resumed_user

    # ---------------------------------------------------------- from the transport

    def receive(self, stream_id: int, data: bytes, now: float, *, early_data: bool = False) -> None:
        if self._closed:
            return
        events = self.session.receive(stream_id, data, now, early_data=early_data)
        self._pump()
        if events:
            self._sink.on_events(self, events)

    def keepalive(self, now: float) -> None:
        """A packet from the client: it is alive, whether or not the packet held a frame."""
        self.session.keepalive(now)

    def receive_upload(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """Bytes on a client unidirectional stream: a file upload."""
        if not self._closed:
            self._sink.on_upload(self, stream_id, data, end_stream)

    def stream_aborted(self, stream_id: int) -> None:
        """The client reset its upload stream, or asked us to stop a download."""
        if not self._closed:
            self._sink.on_stream_aborted(self, stream_id)

    def check_timers(self, now: float) -> None:
        events = self.session.check_timers(now)
        self._pump()
        if events:
            self._sink.on_events(self, events)

    def connection_lost(self) -> None:
        """The transport is gone (closed by either side, or timed out)."""
        if self._lost:
            return
        self._lost = True
        self._closed = True
        self.writer.detach()
        for task in self.tasks:
            task.cancel()
        self._sink.on_closed(self)
        if not self.gone.done():
            self.gone.set_result(None)

    # ------------------------------------------------------------- from the node

    def accept_auth(self, seq: int, response: AuthResponse) -> None:
        self.session.accept_auth(seq, response)
        self._pump()

    def reply(self, stream_id: int, seq: int, body: Body) -> None:
        self.session.reply(stream_id, seq, body)
        self._pump()

    def push_frame(self, frame: bytes) -> None:
        self.session.push_frame(frame)
        self._pump()

    def kick(self, code: Code, reason: str) -> None:
        self.close(self.session.kick(code, reason))

    def announce_drain(self, reconnect_after_ms: int, reason: str) -> None:
        request = self.session.announce_drain(reconnect_after_ms, reason)
        if request is None:
            self._pump()
        else:
            self.close(request)

    def close(self, request: CloseRequested) -> None:
        """Flush what the session queued (the frame that says why), then close."""
        if self._closed:
            return
        self._pump()
        self.writer.flush()
        self._closed = True
        log.info(
            "closing connection",
            extra={"conn_id": self.conn_id, "user_id": self.user_id, "code": int(request.code)},
        )
        self.transport.close(int(request.code), request.reason)

    def _pump(self) -> None:
        if not self._closed:
            self.writer.write(self.session.data_to_send())

    def _overflow(self) -> None:
        # The peer is not reading, so a Kick frame would only queue behind the rest:
        # the code travels in the transport's close instead.
        self.writer.discard()
        request = self.session.kick(Code.SLOW_CONSUMER, "outbound queue bound reached")
        self.session.data_to_send()
        self._closed = True
        self.transport.close(int(request.code), request.reason)
