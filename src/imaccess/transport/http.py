"""Plain HTTP answers of the browser listener (the one that also serves ``/ws``).

* ``GET /``: ``imaccess/web/index.html`` if the package has one, else a placeholder page.
* ``GET /static/<path>``: files under ``imaccess/web/``.
* ``GET /dev-config.json`` and ``GET /dev-token?user_id=N``: only when the listener was
  given a :class:`DevEndpoints` (``imaccess dev``), never on ``imaccess access``.
"""

from __future__ import annotations

import email.utils
import http
import json
import mimetypes
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

__all__ = ["WEB_DIR", "DevEndpoints", "HttpRoutes", "response"]

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
"""Where the demo page and its files live (``src/imaccess/web/``); may not exist."""

PLACEHOLDER = (
    b"<!doctype html><meta charset=utf-8><title>imaccess</title>"
    b"<h1>imaccess</h1><p>WebSocket at <code>/ws</code>; "
    b"WebTransport at <code>https://HOST:QUIC_PORT/im</code>.</p>\n"
)


@dataclass(slots=True)
class DevEndpoints:
    """What ``/dev-config.json`` and ``/dev-token`` need (development only)."""

    config: Callable[[], dict[str, Any]]
    """The JSON of ``/dev-config.json``, built when asked (ports are known by then)."""
    issue_token: Callable[[int], str]


def response(status: int, body: bytes, content_type: str) -> Response:
    code = http.HTTPStatus(status)
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", content_type),
            ("Cache-Control", "no-store"),
        ]
    )
    return Response(code.value, code.phrase, headers, body)


def _json(status: int, value: Any) -> Response:
    return response(status, json.dumps(value).encode(), "application/json")


def _text(status: int, text: str) -> Response:
    return response(status, text.encode(), "text/plain; charset=utf-8")


class HttpRoutes:
    def __init__(
        self, websocket_path: str, dev: DevEndpoints | None = None, web_dir: Path = WEB_DIR
    ) -> None:
        self.websocket_path = websocket_path
        self.dev = dev
        self.web_dir = web_dir

    def handle(self, request: Request) -> Response | None:
        """A response, or None to go on with the WebSocket handshake (``/ws`` only)."""
        url = urlsplit(request.path)
        path = url.path
        if path == self.websocket_path:
            return None
        if path in ("/", "/index.html"):
            index = self.web_dir / "index.html"
            if index.is_file():
                return response(200, index.read_bytes(), "text/html; charset=utf-8")
            return response(200, PLACEHOLDER, "text/html; charset=utf-8")
        if path.startswith("/static/"):
            return self._static(path.removeprefix("/static/"))
        if self.dev is not None:
            if path == "/dev-config.json":
                return _json(200, self.dev.config())
            if path == "/dev-token":
                values = parse_qs(url.query).get("user_id", [])
                if len(values) != 1 or not values[0].isdigit() or int(values[0]) < 1:
                    return _text(400, "user_id must be a positive integer")
                return _json(200, {"token": self.dev.issue_token(int(values[0]))})
        return _text(404, "not found")

    def _static(self, relative: str) -> Response:
        root = self.web_dir.resolve()
        target = (root / relative).resolve()
        if not relative or not target.is_relative_to(root) or not target.is_file():
            return _text(404, "not found")
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type == "application/javascript":
            content_type += "; charset=utf-8"
        return response(200, target.read_bytes(), content_type)
