"""The ``imaccess`` command.

``dev`` runs the embedded default (one process, in-memory bus and store); ``access`` and
``logic`` run the distributed processes on NATS and Redis (``access`` with ``workers: N``
runs N worker processes under a supervisor: :mod:`imaccess.workers`); ``cluster`` starts
a whole local cluster; ``token``, ``chat`` and ``broadcast`` are tools.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from .auth import issue_token
from .logs import configure_logging
from .runtime import tune_garbage_collector
from .settings import Settings, SettingsError, load_settings, split_host_port

if TYPE_CHECKING:
    from .client import Client
    from .workers import WorkerSpec

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imaccess", description=__doc__)
    parser.add_argument("--config", help="YAML settings file (configs/config.yaml documents keys)")
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="run the gateway with in-memory bus, store and Logic")
    dev.add_argument("--listen", help="host:port for QUIC (default 127.0.0.1:8443)")

    access = commands.add_parser(
        "access", help="run an access node on NATS and Redis (workers: N processes)"
    )
    # how the supervisor starts a worker process (imaccess.workers); not for people
    access.add_argument("--worker", help=argparse.SUPPRESS)
    access.add_argument("--supervisor", type=int, default=0, help=argparse.SUPPRESS)
    commands.add_parser("logic", help="run a Logic worker on NATS and Redis")
    cluster = commands.add_parser("cluster", help="run nats-server, redis-server, access, logic")
    cluster.add_argument("--access-nodes", type=int, default=2)
    cluster.add_argument("--logic-workers", type=int, default=2)
    cluster.add_argument("--base-port", type=int, default=8443, help="first QUIC port")
    cluster.add_argument("--workdir", default=".imaccess/cluster")
    broadcast = commands.add_parser("broadcast", help="send a text to every connected user")
    broadcast.add_argument("text")

    token = commands.add_parser("token", help="print a token the configured gateway accepts")
    token.add_argument("user_id", type=int)
    token.add_argument("--ttl", type=float, help="seconds (default auth.dev_token_ttl)")

    chat = commands.add_parser("chat", help="a terminal chat client")
    chat.add_argument("--user", type=int, required=True, help="your user id")
    chat.add_argument("--peer", type=int, help="who plain lines go to ('@ID text' also works)")
    chat.add_argument("--server", help="host:port (default: the configured listen address)")
    chat.add_argument("--token", help="a JWT (default: minted with the configured secret)")
    chat.add_argument("--ca-file", help="CA/cert to trust (default: the dev certificate)")
    chat.add_argument("--insecure", action="store_true", help="do not verify the certificate")
    chat.add_argument("--device-id", default=None)

    args = parser.parse_args(argv)
    try:
        return _command(args)
    except SettingsError as exc:
        print(f"imaccess: {exc}", file=sys.stderr)
        return 2


def _command(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    configure_logging(
        "WARNING" if args.command in ("chat", "token") else settings.log_level,
        settings.log_format,
    )
    if args.command == "token":
        print(issue_token(settings.auth, args.user_id, ttl=args.ttl))
        return 0
    if args.command == "dev":
        if args.listen:
            settings.listen = args.listen
        return _run(_dev(settings))
    if args.command == "access":
        if args.worker:
            from .workers import WorkerSpec

            spec = WorkerSpec.parse(args.worker, args.supervisor)
            return _run(_access_worker(settings, spec))
        if settings.workers > 1:
            return _run(_supervise(settings, args.config))
        return _run(_access(settings))
    if args.command == "logic":
        return _run(_logic(settings))
    if args.command == "cluster":
        args.workdir = os.path.abspath(args.workdir)
        return _run(_cluster(args))
    if args.command == "broadcast":
        return _run(_broadcast(settings, args.text))
    return _run(_chat(settings, args))


def _run(coro: Coroutine[Any, Any, int]) -> int:
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        pass
    tune_garbage_collector()
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(coro)
    except KeyboardInterrupt:
        return 130


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _dev(settings: Settings) -> int:
    from .embedded import EmbeddedGateway

    stop = _stop_on_signals()
    gateway = EmbeddedGateway(settings)
    await gateway.start()
    host, port = gateway.address
    print(f"imaccess dev: node {settings.node_id} on quic://{host}:{port} (ALPN im-access)")
    print(f"  certificate: {gateway.cert_file}")
    print(f"  browsers: WebTransport {gateway.webtransport_url} (ALPN h3, same UDP port)")
    if gateway.http_address is not None:
        http_host, http_port = gateway.http_address
        print(
            f"            WebSocket {gateway.websocket_url}, page http://{http_host}:{http_port}/"
        )
    print("  try: imaccess chat --user 1 --peer 2   and, in another terminal,")
    print("       imaccess chat --user 2 --peer 1")
    sys.stdout.flush()
    await stop.wait()
    await gateway.stop()
    return 0


async def _access(settings: Settings) -> int:
    from .embedded import cluster_gateway

    stop = _stop_on_signals()
    gateway = await cluster_gateway(settings)
    await gateway.start()
    host, port = gateway.address
    websocket = f", {gateway.websocket_url}" if gateway.websocket_url else ""
    print(
        f"imaccess access: node {settings.node_id} ready on quic://{host}:{port}"
        f" (WebTransport {gateway.webtransport_url}{websocket})",
        flush=True,
    )
    await stop.wait()
    await gateway.stop()
    return 0


async def _supervise(settings: Settings, config: str | None) -> int:
    from .workers import Supervisor

    stop = _stop_on_signals()
    config_args = ["--config", config] if config else []
    command = [sys.executable, "-m", "imaccess", *config_args, "access"]
    return await Supervisor(settings, command).run(stop)


async def _access_worker(settings: Settings, spec: WorkerSpec) -> int:
    from .workers import run_worker

    return await run_worker(settings, spec, _stop_on_signals())


async def _logic(settings: Settings) -> int:
    from .logic.process import run_logic_worker

    stop = _stop_on_signals()
    await run_logic_worker(settings, stop)
    return 0


async def _cluster(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .localcluster import LocalCluster

    workdir = Path(args.workdir)
    stop = _stop_on_signals()
    cluster = LocalCluster(
        workdir,
        access_nodes=args.access_nodes,
        logic_workers=args.logic_workers,
        base_quic_port=args.base_port,
        config=args.config,
    )
    try:
        await cluster.start()
        await cluster.wait_ready()
    except BaseException:
        await cluster.stop()
        raise
    print(f"imaccess cluster: {cluster.nats_url} (JetStream), {cluster.redis_url}")
    for proc, (host, port) in zip(cluster.access, cluster.quic_servers, strict=True):
        print(f"  {proc.name}: quic://{host}:{port}")
    print(f"  logic workers: {len(cluster.logic)}; logs in {cluster.workdir / 'logs'}")
    print("  chat:  imaccess chat --user 1 --peer 2 --server 127.0.0.1:PORT", flush=True)
    await stop.wait()
    await cluster.stop()
    return 0


async def _broadcast(settings: Settings, text: str) -> int:
    from .nats_bus import request_broadcast

    msg_id = await request_broadcast(settings.nats, text)
    print(f"broadcast {msg_id}")
    return 0


async def _chat(settings: Settings, args: argparse.Namespace) -> int:
    from .client import Client, ClientError
    from .client.files import file_info
    from .embedded import resolve_certificate

    host, port = split_host_port(args.server or settings.listen)
    ca_file = args.ca_file
    if not ca_file and not args.insecure and not settings.quic.certificate:
        ca_file, _ = resolve_certificate(settings)
    client = Client(
        host,
        port,
        token=args.token or issue_token(settings.auth, args.user),
        device_id=args.device_id,
        platform="cli",
        ca_file=ca_file,
        insecure=args.insecure,
        server_name="localhost" if host in ("127.0.0.1", "::1") else None,
    )
    try:
        await client.connect()
    except ClientError as exc:
        print(f"cannot connect: {exc}", file=sys.stderr)
        return 1
    print(f"connected as user {client.user_id} to {client.node_id} (conn {client.conn_id})")
    print("type a message and press enter; '@ID text' sends to user ID; Ctrl-D quits")
    print("files: '/send PATH' (or '/send @ID PATH'), '/save FILE_ID [PATH]'")

    async def show_incoming() -> None:
        async for message in client.messages():
            direction = "you" if message.from_user == client.user_id else f"{message.from_user}"
            info = file_info(message)
            text = (
                f"file {info.name} ({info.size} bytes) - /save {info.file_id}"
                if info
                else message.content
            )
            print(f"[{message.seq}] {direction} -> {message.to_user}: {text}", flush=True)

    printer = asyncio.create_task(show_incoming())
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := (await reader.readline()).decode().strip():
            if line.startswith(("/send ", "/save ")):
                await _file_command(client, line, args.peer)
                continue
            to_user, text = _parse_line(line, args.peer)
            if to_user is None:
                print("no peer: start the line with @ID or pass --peer", file=sys.stderr)
                continue
            try:
                ack = await client.send(to_user, text)
                print(f"  ✓ delivered to server (server_seq {ack.server_seq})", flush=True)
            except ClientError as exc:
                print(f"  ✗ not sent: {exc}", file=sys.stderr, flush=True)
    finally:
        await client.close()
        printer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await printer
    return 0


async def _file_command(client: Client, line: str, peer: int | None) -> None:
    from .client import ClientError

    command, _, rest = line.partition(" ")
    try:
        if command == "/send":
            to_user, path = _parse_line(rest.strip(), peer)
            if to_user is None:
                print("no peer: '/send @ID PATH' or pass --peer", file=sys.stderr)
                return
            ack = await client.send_file(to_user, path)
            print(f"  ✓ file sent (file id {ack.file_id})", flush=True)
        else:
            file_id, _, path = rest.strip().partition(" ")
            header = await client.fetch_file(file_id, path or file_id)
            print(f"  ✓ saved {header.name} to {path or file_id}", flush=True)
    except (ClientError, OSError) as exc:
        print(f"  ✗ {command[1:]} failed: {exc}", file=sys.stderr, flush=True)


def _parse_line(line: str, peer: int | None) -> tuple[int | None, str]:
    if line.startswith("@"):
        target, _, text = line[1:].partition(" ")
        if target.isdigit():
            return int(target), text
    return peer, line


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
