"""What is measured, started and stopped by the harness on free loopback ports.

- ``embedded``: one gateway process with the in-memory bus, store and Logic
  (:mod:`.embedded_server`, i.e. ``imaccess dev``).
- ``cluster``: ``imaccess cluster``'s :class:`LocalCluster`: nats-server (JetStream),
  redis-server, two access nodes, two Logic workers.
- ``peer``: redis-server and two python-socketio servers (:mod:`bench.peer.server`).

Each exposes its client endpoints in order, every server pid (for CPU), and the pids of
the nodes clients connect to (for RSS). The imaccess limits that protect a node from a
single address or a chatty user are lifted, since every load client shares one
address and sends far faster than a person: the harness measures capacity, not limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import tempfile
from pathlib import Path
from typing import Protocol

import psutil  # type: ignore[import-untyped]

from imaccess.localcluster import LocalCluster, find_binary, free_port, wait_for_tcp

__all__ = ["Target", "make_target"]

_START_TIMEOUT = 60.0
_REPO = str(Path(__file__).resolve().parents[2])  # so ``-m bench…`` works from any cwd


class Target(Protocol):
    name: str
    transport: str
    """``quic`` (imaccess frames) or ``sio`` (Socket.IO over WebSocket)."""
    endpoints: list[tuple[str, int]]
    secret: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def server_processes(self) -> dict[str, int]:
        """Every server process of the target, by name: what server CPU sums."""
        ...

    def node_pids(self) -> list[int]: ...

    async def broadcast(self, text: str) -> None: ...


def imaccess_env(secret: str, heartbeat: float, workdir: Path) -> dict[str, str]:
    return {
        "IMACCESS_AUTH_SECRET": secret,
        "IMACCESS_LOG_LEVEL": "WARNING",  # one INFO line per connection would be measured too
        "IMACCESS_LIMITS_MAX_CONNECTIONS": "1000000",
        "IMACCESS_LIMITS_MAX_CONNECTIONS_PER_IP": "1000000",
        "IMACCESS_LIMITS_MESSAGE_RATE": "1000000000",
        "IMACCESS_LIMITS_MESSAGE_BURST": "1000000000",
        "IMACCESS_LIMITS_AUTH_FAILURES_PER_MINUTE": "1000000",
        "IMACCESS_HEARTBEAT_INTERVAL": str(heartbeat),
        "IMACCESS_HEARTBEAT_TIMEOUT": str(3 * heartbeat),
        "IMACCESS_QUIC_IDLE_TIMEOUT": str(3 * heartbeat),
        "IMACCESS_QUIC_STATE_DIR": str(workdir / "state"),
        # the harness closes its clients before stopping the target: no need to wait
        # the default 30 s for clients to leave
        "IMACCESS_DRAIN_DEADLINE": "2",
        "IMACCESS_DRAIN_RECONNECT_SPREAD": "1",
        "IMACCESS_DRAIN_TASK_GRACE": "1",
    }


class _Child:
    """A server child process whose stdout says ``ready …`` once it listens."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logs: Path) -> None:
        self.name, self.argv, self.env, self.logs = name, argv, env, logs
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, wait_ready: bool = True) -> list[str]:
        with (self.logs / f"{self.name}.log").open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                env={**os.environ, "PYTHONPATH": _REPO, **self.env},
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE if wait_ready else log,
                stderr=log,
                start_new_session=True,
            )
        if not wait_ready:
            return []
        return (await self.read_line(b"ready", _START_TIMEOUT)).split()

    async def read_line(self, prefix: bytes, timeout: float) -> str:
        assert self.process is not None and self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await self.process.stdout.readline()
                if not line:
                    raise RuntimeError(f"{self.name} exited: see {self.logs / self.name}.log")
                if line.startswith(prefix):
                    return line.decode().strip()

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 15.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


class EmbeddedTarget:
    name, transport = "embedded", "quic"

    def __init__(self, heartbeat: float) -> None:
        self.secret = secrets.token_hex(32)
        self._dir = tempfile.TemporaryDirectory(prefix="bench-embedded-")
        workdir = Path(self._dir.name)
        env = {
            **imaccess_env(self.secret, heartbeat, workdir),
            "IMACCESS_LISTEN": "127.0.0.1:0",
            "IMACCESS_ADMIN_LISTEN": "",
            "IMACCESS_HTTP_LISTEN": "",
            "IMACCESS_NODE_ID": "bench-1",
        }
        argv = [sys.executable, "-m", "bench.loadgen.embedded_server"]
        self._child = _Child("embedded", argv, env, workdir)
        self.endpoints: list[tuple[str, int]] = []

    async def start(self) -> None:
        _, host, port = await self._child.start()
        self.endpoints = [(host, int(port))]

    async def stop(self) -> None:
        await self._child.stop()
        self._dir.cleanup()

    def server_processes(self) -> dict[str, int]:
        return {"embedded": self._child.pid}

    def node_pids(self) -> list[int]:
        return [self._child.pid]

    async def broadcast(self, text: str) -> None:
        process = self._child.process
        assert process is not None and process.stdin is not None
        process.stdin.write(f"broadcast {text}\n".encode())
        await process.stdin.drain()
        await self._child.read_line(b"broadcast-ok", 10.0)


class ClusterTarget:
    name, transport = "cluster", "quic"

    def __init__(self, heartbeat: float, access_nodes: int = 2, logic_workers: int = 2) -> None:
        self.secret = secrets.token_hex(32)
        self._dir = tempfile.TemporaryDirectory(prefix="bench-cluster-")
        workdir = Path(self._dir.name)
        self.cluster = LocalCluster(
            workdir,
            access_nodes=access_nodes,
            logic_workers=logic_workers,
            base_quic_port=0,
            extra_env=imaccess_env(self.secret, heartbeat, workdir),
        )
        self.endpoints: list[tuple[str, int]] = []

    async def start(self) -> None:
        try:
            await self.cluster.start()
            await self.cluster.wait_ready(_START_TIMEOUT)
        except BaseException:
            await self.stop()
            raise
        self.endpoints = list(self.cluster.quic_servers)

    async def stop(self) -> None:
        await self.cluster.stop()
        self._dir.cleanup()

    def server_processes(self) -> dict[str, int]:
        procs = [*self.cluster.servers, *self.cluster.logic, *self.cluster.access]
        found = {p.name: p.process.pid for p in procs if p.process is not None}
        for node in self.cluster.access:  # its worker processes (IMACCESS_WORKERS > 1)
            if node.process is not None:
                children = psutil.Process(node.process.pid).children()
                found.update({f"{node.name}-w{i}": c.pid for i, c in enumerate(children)})
        return found

    def node_pids(self) -> list[int]:
        return [p.process.pid for p in self.cluster.access if p.process is not None]

    async def broadcast(self, text: str) -> None:
        from imaccess.nats_bus import request_broadcast
        from imaccess.settings import NatsSettings

        await request_broadcast(NatsSettings(url=self.cluster.nats_url), text)


class PeerTarget:
    name, transport = "peer", "sio"

    def __init__(self, heartbeat: float, servers: int = 2) -> None:
        self.secret = secrets.token_hex(32)
        self._dir = tempfile.TemporaryDirectory(prefix="bench-peer-")
        workdir = Path(self._dir.name)
        redis_port = free_port()
        self._redis_port = redis_port
        redis_argv = [
            find_binary("redis-server"),
            *("--bind", "127.0.0.1", "--port", str(redis_port), "--save", ""),
            *("--appendonly", "no", "--dir", str(workdir)),
        ]
        self._redis = _Child("redis-server", redis_argv, {}, workdir)
        self._ports = [free_port() for _ in range(servers)]
        self._servers = [
            _Child(
                f"peer-{i + 1}",
                [
                    sys.executable,
                    *("-m", "bench.peer.server", "--port", str(port)),
                    *("--redis", f"redis://127.0.0.1:{redis_port}/0", "--secret", self.secret),
                    *("--ping-interval", str(heartbeat), "--ping-timeout", str(2 * heartbeat)),
                ],
                {},
                workdir,
            )
            for i, port in enumerate(self._ports)
        ]
        self.endpoints: list[tuple[str, int]] = []

    async def start(self) -> None:
        try:
            await self._redis.start(wait_ready=False)
            await wait_for_tcp(self._redis_port)
            for server in self._servers:
                await server.start()
        except BaseException:
            await self.stop()
            raise
        self.endpoints = [("127.0.0.1", port) for port in self._ports]

    async def stop(self) -> None:
        for child in [*self._servers, self._redis]:
            await child.stop()
        self._dir.cleanup()

    def server_processes(self) -> dict[str, int]:
        return {c.name: c.pid for c in [self._redis, *self._servers] if c.process is not None}

    def node_pids(self) -> list[int]:
        return [c.pid for c in self._servers]

    async def broadcast(self, text: str) -> None:
        raise NotImplementedError("the peer has no broadcast scenario")


def make_target(name: str, heartbeat: float) -> Target:
    if name == "embedded":
        return EmbeddedTarget(heartbeat)
    if name == "cluster":
        return ClusterTarget(heartbeat)
    if name == "peer":
        return PeerTarget(heartbeat)
    raise ValueError(f"unknown target {name!r}")
