"""Fixtures that start real redis-server processes on free loopback ports.

``redis_url``: one server for the session, flushed before each test.
``redis_cluster_url``: a 6-node Redis Cluster (3 masters, 3 replicas) for the session;
tests share it (they flush it first) and must not break it.
``redis_cluster``: a fresh cluster of the same shape for one test that may kill nodes.

CI installs redis-server: a missing binary is a failure, not a skip.
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

__all__ = ["RedisTestCluster", "redis_cluster", "redis_cluster_url", "redis_server", "redis_url"]

_START_TIMEOUT = 10.0
_CLUSTER_TIMEOUT = 30.0


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: install Redis (Debian: apt-get install redis-server)")
    return path


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(count: int, *, bus: bool) -> list[int]:
    """``count`` free ports; with ``bus``, port + 10000 is free too (the cluster bus)."""
    ports: list[int] = []
    for _ in range(10_000):
        port = random.randrange(20_000, 30_000)
        if port in ports or (bus and port + 10_000 in ports):
            continue
        if _bindable(port) and (not bus or _bindable(port + 10_000)):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError("no free loopback ports")


def _wait(condition: str, check: Callable[[], bool], timeout: float) -> None:
    """Poll ``check()`` every 50 ms for at most ``timeout`` seconds (process start-up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"redis: {condition} not reached within {timeout} s")


def _ping(port: int) -> bool:
    with _client(port) as client:
        return bool(client.ping())


def _client(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=1.0, socket_connect_timeout=1.0)


def _cluster_ok(port: int) -> bool:
    with _client(port) as client:
        info = client.execute_command("CLUSTER INFO")
    return isinstance(info, dict) and info.get("cluster_state") == "ok"


def _replication(port: int) -> dict[str, object]:
    with _client(port) as client:
        return dict(client.info("replication"))


class _Server:
    def __init__(self, port: int, directory: Path, *extra: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.log = directory / "redis.log"
        args = [
            _binary("redis-server"),
            "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
            "--save", "", "--appendonly", "no", "--logfile", str(self.log), *extra,
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        try:
            _wait(f"PING on port {port}", lambda: self._ping_alive(), _START_TIMEOUT)
        except BaseException:
            self.stop()
            raise

    def _ping_alive(self) -> bool:
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"redis-server on {self.port} exited: {tail}")
        return _ping(self.port)

    def kill(self) -> None:
        """SIGKILL: no goodbye to clients or the cluster."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    (port,) = _free_ports(1, bus=False)
    server = _Server(port, tmp_path_factory.mktemp("redis"))
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session's standalone Redis, empty."""
    with redis.Redis.from_url(redis_server) as client:
        client.flushall()
    return redis_server


@dataclass
class RedisTestCluster:
    servers: list[_Server]
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = f"redis://127.0.0.1:{self.servers[0].port}/0"

    def masters(self) -> list[int]:
        """Ports of the live masters."""
        return [s.port for s in self.servers if s.process.poll() is None and self._is_master(s)]

    def _is_master(self, server: _Server) -> bool:
        return _replication(server.port).get("role") == "master"

    def ok(self, server: _Server) -> Callable[[], bool]:
        """The cluster is up as ``server`` sees it; a replica is also in sync (so that a
        failover test has a replica to promote)."""

        def check() -> bool:
            if not _cluster_ok(server.port):
                return False
            link = _replication(server.port).get("master_link_status")
            return self._is_master(server) or link == "up"

        return check

    def kill(self, port: int) -> None:
        next(s for s in self.servers if s.port == port).kill()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def _start_cluster(directory: Path) -> RedisTestCluster:
    ports = _free_ports(6, bus=True)
    servers: list[_Server] = []
    try:
        cluster_args = ["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]
        for port in ports:
            config = ["--cluster-config-file", f"nodes-{port}.conf"]
            servers.append(_Server(port, directory / str(port), *cluster_args, *config))
        subprocess.run(
            [_binary("redis-cli"), "--cluster", "create"]
            + [f"127.0.0.1:{port}" for port in ports]
            + ["--cluster-replicas", "1", "--cluster-yes"],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            timeout=_CLUSTER_TIMEOUT,
        )
        cluster = RedisTestCluster(servers)
        for server in servers:
            _wait(f"cluster_state:ok on {server.port}", cluster.ok(server), _CLUSTER_TIMEOUT)
        return cluster
    except BaseException:
        for server in servers:
            server.stop()
        raise


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cluster = _start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisTestCluster]:
    """A cluster of its own, for a test that kills nodes."""
    cluster = _start_cluster(tmp_path / "cluster")
    try:
        yield cluster
    finally:
        cluster.stop()
