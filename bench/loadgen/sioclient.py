"""One Socket.IO client connection for the peer, speaking Engine.IO 4 / Socket.IO 5 on a
raw WebSocket.

python-socketio's ``AsyncClient`` brings an aiohttp session, reconnection logic and
several tasks per client; for thousands of connections per worker that would measure
the client. The wire protocol is small: ``0{..}`` open, ``40{auth}`` connect, ``40{sid}``
connected (``44`` refused), ``2``/``3`` ping/pong, ``42[event, data]`` an event,
``42<id>[..]`` an event that wants an ack and ``43<id>[..]`` the ack. Its interface
mirrors :class:`.imclient.ImClient` so the worker drives both the same way.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from .recorder import Recorder, content_for, sent_at

__all__ = ["SioClient"]


class SioClient:
    def __init__(self, user_id: int, token: str, recorder: Recorder) -> None:
        self.user_id = user_id
        self._token = token
        self._recorder = recorder
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: dict[int, float] = {}
        self._next_ack = 0
        self._started = 0.0
        self._seen: set[str] = set()
        self.ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.on_ack: Callable[[SioClient], None] | None = None
        self.ticket: None = None  # no TLS session to resume

    @property
    def alive(self) -> bool:
        ws = self._ws
        return ws is not None and not ws.closed and self.ready.done() and self.ready.result()

    def connect(self, session: aiohttp.ClientSession, url: str) -> None:
        self._started = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._run(session, url))

    def start_heartbeats(self, interval: float, first_delay: float, keepalive: str = "") -> None:
        """Nothing to send: Socket.IO's keepalive is Engine.IO's server-initiated ping
        (run at the same interval as imaccess's heartbeats, see ``bench.peer.server``),
        answered in :meth:`_on_text` and counted as ``keepalives_answered``. Its round
        trip is not visible to the client, so the peer reports no heartbeat RTT."""

    def send_chat(self, to_user: int, size: int, msg_id: str) -> None:
        if not self.alive:
            return
        now = time.monotonic()
        data = {"to": to_user, "msg_id": msg_id, "content": content_for(now, size), "ts": now}
        self._emit("chat", data, now)
        self._recorder.sent += 1

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if not self.ready.done():
            self.ready.set_result(False)

    # ------------------------------------------------------------ internals

    def _emit(self, event: str, data: Any, sent: float) -> None:
        assert self._ws is not None
        self._next_ack += 1
        ack = self._next_ack
        self._pending[ack] = sent
        text = f"42{ack}" + json.dumps([event, data], separators=(",", ":"))
        # aiohttp's send is a coroutine; a task per frame keeps send_chat synchronous
        asyncio.get_running_loop().create_task(self._ws.send_str(text))

    async def _run(self, session: aiohttp.ClientSession, url: str) -> None:
        recorder = self._recorder
        try:
            async with session.ws_connect(url, compress=0, autoping=True) as ws:
                self._ws = ws
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    await self._on_text(ws, msg.data)
        except asyncio.CancelledError:
            pass
        except (aiohttp.ClientError, OSError) as exc:
            recorder.error(f"ws: {type(exc).__name__}")
        finally:
            if not self.ready.done():
                recorder.connect_failed += 1
                self.ready.set_result(False)
            elif self.ready.result() and not (self._task and self._task.cancelling()):
                recorder.disconnects += 1

    async def _on_text(self, ws: aiohttp.ClientWebSocketResponse, text: str) -> None:
        kind = text[:2]
        now = time.monotonic()
        recorder = self._recorder
        if text == "2":  # Engine.IO ping
            recorder.keepalives_answered += 1
            await ws.send_str("3")
        elif kind == "42":
            event, data = json.loads(text[2:])
            if event == "chat" and data.get("from") != self.user_id:
                if data["msg_id"] in self._seen:
                    recorder.duplicates += 1
                else:
                    self._seen.add(data["msg_id"])
                    recorder.delivered_now(sent_at(data["content"]), now)
        elif kind == "43":
            bracket = text.index("[")
            sent = self._pending.pop(int(text[2:bracket]), None)
            if sent is None or sent < recorder.since:
                return
            (reply,) = json.loads(text[bracket:])
            if reply.get("code") == 0:
                recorder.acked += 1
                recorder.ack.record(now - sent)
            else:
                recorder.refused += 1
            if self.on_ack is not None:
                self.on_ack(self)
        elif text.startswith("0{"):  # Engine.IO open: connect to namespace "/" with auth
            await ws.send_str("40" + json.dumps({"token": self._token}))
        elif kind == "40":
            recorder.connected += 1
            recorder.auth.record(now - self._started)
            if not self.ready.done():
                self.ready.set_result(True)
        elif kind == "44":
            recorder.error(f"connect refused {text[2:80]}")
            await ws.close()
