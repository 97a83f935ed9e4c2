"""The admin HTTP listener: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz``.

A deliberately tiny HTTP/1.1 responder on asyncio streams: three GET routes, one
response per connection, so no web framework is needed. It listens on loopback by
default; expose it to the scraper, never to clients.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

__all__ = ["AdminServer"]

ReadyCheck = Callable[[], Awaitable[tuple[bool, str]]]


class AdminServer:
    def __init__(self, metrics: Callable[[], bytes], ready: ReadyCheck) -> None:
        self._metrics = metrics
        self._ready = ready
        self._server: asyncio.Server | None = None
        self.address: tuple[str, int] = ("", 0)

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, host, port)
        name = self._server.sockets[0].getsockname()
        self.address = (str(name[0]), int(name[1]))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                request = await reader.readuntil(b"\r\n\r\n")
            method, _, rest = request.partition(b" ")
            path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
            status, content_type, body = await self._route(method, path)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            status, content_type, body = 400, "text/plain", b"bad request\n"
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode() + body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def _route(self, method: bytes, path: bytes) -> tuple[int, str, bytes]:
        if method != b"GET":
            return 405, "text/plain", b"GET only\n"
        if path == b"/metrics":
            return 200, "text/plain; version=0.0.4; charset=utf-8", self._metrics()
        if path == b"/healthz":
            return 200, "text/plain", b"ok\n"
        if path == b"/readyz":
            ready, why = await self._ready()
            return (200 if ready else 503), "text/plain", (why + "\n").encode()
        return 404, "text/plain", b"not found\n"


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}
