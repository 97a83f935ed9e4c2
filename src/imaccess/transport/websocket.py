"""WebSocket fallback (RFC 6455) for browsers without WebTransport.

``GET /ws`` on the HTTP listener (``http.listen``) upgrades to a WebSocket. The socket is
one byte stream, the connection's control stream (stream id 0): binary messages carry our
frames, several to a message or one split over several messages. Text messages are refused
(close 1003). With no message stream, the session sends pushes on the control stream.
Subprotocol ``imaccess`` is accepted when offered; none is required.

Closing: the in-band frame (Error, Kick, AuthResponse) goes first, then a close frame whose
code is :func:`websocket_close_code` of ours. Memory: incoming messages are capped at
``2 x limits.max_frame_size`` (larger: close 1009), outgoing messages are cut to the same
size, and ``buffered_bytes`` is the TCP transport's write buffer, so a client that stops
reading reaches the connection's outbound bound and is closed as a slow consumer.
Keepalive pings (every 20 s) and pong replies are websockets' own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Sequence

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Subprotocol

from .http import DevEndpoints, HttpRoutes
from .quic import ConnectionAcceptor

__all__ = [
    "WEBSOCKET_PATH",
    "WebSocketServer",
    "WebSocketTransport",
    "serve_http",
    "websocket_close_code",
]

WEBSOCKET_PATH = "/ws"
SUBPROTOCOL = Subprotocol("imaccess")
CONTROL_STREAM = 0
"""The stream id the whole WebSocket stands for."""
_CLOSE_TIMEOUT = 5.0
"""Seconds a closed WebSocket waits for the client's close frame before the TCP abort."""

log = logging.getLogger(__name__)


def websocket_close_code(code: int) -> int:
    """Our close code as a WebSocket close code (RFC 6455 §7.4).

    * 0 (OK) → 1000 (normal closure);
    * 3000-4999 (all kicks, closes and protocol violations) → unchanged;
    * 1000-2999 (request and auth codes, such as 2001 AUTH_INVALID_TOKEN) →
      ``4500 + (code // 1000 - 1) * 100 + code % 100``: 1xyz → 45yz, 2xyz → 46yz
      (2001 → 4601, 2002 → 4602);
    * anything else → 1011 (internal error).
    """
    if code == 0:
        return 1000
    if 3000 <= code <= 4999:
        return code
    if 1000 <= code <= 2999:
        return 4500 + (code // 1000 - 1) * 100 + code % 100
    return 1011


def _select_subprotocol(
    connection: ServerConnection, subprotocols: Sequence[Subprotocol]
) -> Subprotocol | None:
    """``imaccess`` when the client offers it; no subprotocol otherwise (never a refusal)."""
    return SUBPROTOCOL if SUBPROTOCOL in subprotocols else None


class WebSocketTransport:
    """The ``Transport`` of a Connection over one WebSocket."""

    kind = "websocket"

    def __init__(self, websocket: ServerConnection, max_message: int) -> None:
        self._ws = websocket
        self._max_message = max_message
        self._abort: asyncio.TimerHandle | None = None
        address = websocket.remote_address
        self._address = (str(address[0]), int(address[1])) if address else ("", 0)

    @property
    def remote_address(self) -> tuple[str, int]:
        return self._address

    def send(self, stream_id: int, data: bytes) -> None:
        protocol = self._ws.protocol
        if protocol.state is not State.OPEN:
            return
        step = self._max_message
        for start in range(0, len(data), step):
            protocol.send_binary(data[start : start + step])

    def transmit(self) -> None:
        self._ws.send_data()

    def buffered_bytes(self) -> int:
        return self._ws.transport.get_write_buffer_size()

    resumed_user = 0
    """Early data is a raw QUIC feature only (PROTOCOL.md "0-RTT")."""
    file_streams = None
    """No unidirectional streams: files are refused with 1016 (PROTOCOL.md "Files")."""

    def bind_identity(self, user_id: int, expires_at: float) -> None:
        pass

    def close(self, code: int, reason: str) -> None:
        ws = self._ws
        if ws.protocol.state is State.OPEN:
            ws.protocol.send_close(websocket_close_code(code), reason[:120])
            ws.send_data()
        if self._abort is None:
            # the client should answer with its close frame; one that does not read is cut
            self._abort = ws.loop.call_later(_CLOSE_TIMEOUT, ws.transport.abort)

    def finished(self) -> None:
        if self._abort is not None:
            self._abort.cancel()


class WebSocketServer:
    """The HTTP listener: the WebSocket at ``/ws`` plus the routes of :class:`HttpRoutes`."""

    def __init__(
        self, acceptor: ConnectionAcceptor, max_frame_size: int, dev: DevEndpoints | None
    ) -> None:
        self._acceptor = acceptor
        self.max_message = 2 * max_frame_size
        self.routes = HttpRoutes(WEBSOCKET_PATH, dev)
        self._server: Server | None = None

    @property
    def sockname(self) -> tuple[str, int]:
        assert self._server is not None
        name = next(iter(self._server.sockets)).getsockname()
        return (str(name[0]), int(name[1]))

    async def start(self, host: str, port: int, sock: socket.socket | None = None) -> None:
        """Listen on ``host:port``, or on ``sock`` (a worker's share of the node's port)."""
        self._server = await serve(
            self._handle,
            None if sock else host,
            None if sock else port,
            sock=sock,
            process_request=self._process_request,
            select_subprotocol=_select_subprotocol,
            max_size=self.max_message,
            compression=None,  # no per-connection deflate state; frames are small
            close_timeout=_CLOSE_TIMEOUT,
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        return self.routes.handle(request)

    async def _handle(self, ws: ServerConnection) -> None:
        transport = WebSocketTransport(ws, self.max_message)
        connection = self._acceptor.open_connection(transport)
        if connection is None:  # refused: the transport sent the close frame
            with contextlib.suppress(ConnectionClosed):
                await ws.wait_closed()
            transport.finished()
            return
        loop = asyncio.get_running_loop()
        try:
            async for message in ws:
                if isinstance(message, str):
                    ws.protocol.send_close(1003, "binary messages only")
                    ws.send_data()
                    break
                connection.receive(CONTROL_STREAM, message, loop.time())
        except ConnectionClosed:
            pass
        finally:
            transport.finished()
            connection.connection_lost()


async def serve_http(
    host: str,
    port: int,
    acceptor: ConnectionAcceptor,
    max_frame_size: int,
    dev: DevEndpoints | None,
    sock: socket.socket | None = None,
) -> WebSocketServer:
    server = WebSocketServer(acceptor, max_frame_size, dev)
    await server.start(host, port, sock)
    return server
