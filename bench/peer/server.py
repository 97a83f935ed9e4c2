"""One Socket.IO chat server process (``python -m bench.peer.server``).

Written the idiomatic way (decorated handlers, ``AsyncRedisManager``, rooms, ack
return values), not tuned beyond what its documentation suggests: uvloop, logging off,
WebSocket only. It prints ``ready PORT`` once it listens, for the harness.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import signal
import sys
import time
from typing import Any

import jwt
import socketio  # type: ignore[import-untyped]
from aiohttp import web


def build(
    redis_url: str, secret: str, ping_interval: float, ping_timeout: float
) -> tuple[web.Application, Any]:
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=socketio.AsyncRedisManager(redis_url),
        transports=["websocket"],
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        cors_allowed_origins=None,
        logger=False,
        engineio_logger=False,
    )
    users: dict[str, int] = {}  # sid -> user id; a session lookup per message costs more
    key = secret.encode()

    @sio.event  # type: ignore[untyped-decorator]
    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            claims = jwt.decode(str(token), key, algorithms=["HS256"])
            user_id = int(claims["sub"])
        except (jwt.PyJWTError, KeyError, ValueError) as exc:
            raise socketio.exceptions.ConnectionRefusedError("unauthorized") from exc
        users[sid] = user_id
        await sio.enter_room(sid, f"user:{user_id}")

    @sio.event  # type: ignore[untyped-decorator]
    async def disconnect(sid: str, *args: Any) -> None:
        users.pop(sid, None)

    @sio.on("chat")  # type: ignore[untyped-decorator]
    async def chat(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        sender = users.get(sid)
        if sender is None:
            return {"msg_id": data.get("msg_id"), "code": 2001}
        message = {
            "from": sender,
            "to": data["to"],
            "msg_id": data["msg_id"],
            "content": data["content"],
            "ts": data.get("ts"),
        }
        await sio.emit("chat", message, room=f"user:{data['to']}")
        return {"msg_id": data["msg_id"], "code": 0, "ts": int(time.time() * 1000)}

    app = web.Application()
    sio.attach(app)
    return app, sio


async def serve(args: argparse.Namespace) -> None:
    app, _ = build(args.redis, args.secret, args.ping_interval, args.ping_timeout)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=4096)
    await site.start()
    print(f"ready {args.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    with contextlib.suppress(Exception):
        await runner.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--ping-interval", type=float, default=25.0)
    parser.add_argument("--ping-timeout", type=float, default=20.0)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import uvloop

    uvloop.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
