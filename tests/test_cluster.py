"""The distributed mode end to end: `imaccess cluster`'s processes (nats-server with
JetStream, redis-server, two access nodes, two Logic workers) on loopback, driven by the
SDK; processes are killed with SIGKILL to show that nothing acked is lost."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from imaccess.auth import issue_token
from imaccess.client import Client, Disconnected
from imaccess.client.files import file_info
from imaccess.localcluster import LocalCluster
from imaccess.protocol import Code, Delivery
from imaccess.redis_store import RedisLocationStore
from imaccess.settings import load_settings

from .conftest import TEST_SECRET
from .rawquic import RawPeer

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(180)]

FAST = {
    "IMACCESS_AUTH_SECRET": TEST_SECRET,
    "IMACCESS_HEARTBEAT_INTERVAL": "1",
    "IMACCESS_HEARTBEAT_TIMEOUT": "3",
    "IMACCESS_LOCATIONS_NODE_TTL": "2",
    "IMACCESS_NATS_ACK_WAIT": "2",
    "IMACCESS_LOG_LEVEL": "INFO",
}


async def _cluster(tmp: Path, **env: str) -> LocalCluster:
    cluster = LocalCluster(tmp, base_quic_port=0, extra_env={**FAST, **env})
    try:
        await cluster.start()
        await cluster.wait_ready(60)
    except BaseException:
        await cluster.stop()
        raise
    return cluster


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalCluster]:
    c = await _cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    await c.stop()


Connect = Callable[..., Awaitable[Client]]


def _connector(cluster: LocalCluster) -> tuple[Connect, list[Client]]:
    made: list[Client] = []
    auth = load_settings(environ=cluster.env()).auth
    cert = str(Path(cluster.env()["IMACCESS_QUIC_STATE_DIR"]) / "dev-cert.pem")

    async def connect(user_id: int, node: int, **kwargs: Any) -> Client:
        servers = list(cluster.quic_servers)
        servers = servers[node:] + servers[:node]  # the chosen node first, then the others
        kwargs.setdefault("ack_timeout", 3.0)
        client = Client(
            token=issue_token(auth, user_id),
            servers=servers,
            ca_file=cert,
            server_name="localhost",
            backoff_base=0.1,
            **kwargs,
        )
        made.append(client)
        await client.connect()
        return client

    return connect, made


@contextlib.asynccontextmanager
async def _own_cluster(tmp: Path, **env: str) -> AsyncIterator[tuple[LocalCluster, Connect]]:
    """A cluster for one test (which may kill its processes), and its clients' factory."""
    cluster = await _cluster(tmp, **env)
    connect, made = _connector(cluster)
    try:
        yield cluster, connect
    finally:
        for client in made:
            await client.close()
        await cluster.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def connect(cluster: LocalCluster) -> AsyncIterator[Connect]:
    connect, made = _connector(cluster)
    yield connect
    for client in made:
        await client.close()


def _user() -> int:
    return uuid.uuid4().int % 10**12 + 1000


async def test_cross_node_chat(cluster: LocalCluster, connect: Connect) -> None:
    a, b = _user(), _user()
    alice, bob = await connect(a, 0), await connect(b, 1)
    assert (alice.node_id, bob.node_id) == ("access-1", "access-2")
    ack = await alice.send(b, "across nodes")
    got = await bob.next_message(10)
    assert (got.msg_id, got.from_user, got.content) == (ack.msg_id, a, "across nodes")
    reply = await bob.send(a, "and back")
    assert (await alice.next_message(10)).msg_id == reply.msg_id


async def test_a_file_uploaded_on_one_node_is_fetched_on_the_other(
    connect: Connect, tmp_path: Path
) -> None:
    a, b = _user(), _user()
    alice, bob = await connect(a, 0), await connect(b, 1)
    (tmp_path / "slides.pdf").write_bytes(os.urandom(400_000))
    ack = await alice.send_file(b, tmp_path / "slides.pdf")
    info = file_info(await bob.next_message(10))
    assert info is not None and info.file_id == ack.file_id
    await bob.fetch_file(info.file_id, tmp_path / "got.pdf")
    assert (tmp_path / "got.pdf").read_bytes() == (tmp_path / "slides.pdf").read_bytes()


async def test_devices_on_both_nodes_each_get_every_message(
    cluster: LocalCluster, connect: Connect
) -> None:
    a, b = _user(), _user()
    phone = await connect(b, 0, device_id="phone")
    laptop = await connect(b, 1, device_id="laptop")
    alice = await connect(a, 0)
    acks = [await alice.send(b, f"m{i}") for i in range(5)]
    for device in (phone, laptop):
        got = [await device.next_message(10) for _ in acks]
        assert [m.msg_id for m in got] == [x.msg_id for x in acks]


async def test_same_device_on_another_node_kicks_the_old_connection(
    cluster: LocalCluster, connect: Connect
) -> None:
    b = _user()
    old = await connect(b, 0, device_id="tablet")
    new = await connect(b, 1, device_id="tablet")
    with pytest.raises(Disconnected) as stopped:
        await old.next_message(10)
    assert stopped.value.code == Code.KICKED_NEW_LOGIN
    sender = await connect(_user(), 0)
    ack = await sender.send(b, "to the new one")
    assert (await new.next_message(10)).msg_id == ack.msg_id


async def test_offline_then_sync(cluster: LocalCluster, connect: Connect) -> None:
    a, b = _user(), _user()
    alice = await connect(a, 0)
    acks = [await alice.send(b, f"while offline {i}") for i in range(3)]
    bob = await connect(b, 1)
    got = [await bob.next_message(10) for _ in acks]
    assert [m.msg_id for m in got] == [x.msg_id for x in acks]
    assert [m.seq for m in got] == [1, 2, 3]


async def test_broadcast_reaches_every_node(cluster: LocalCluster, connect: Connect) -> None:
    one, two = await connect(_user(), 0), await connect(_user(), 1)
    proc = await asyncio.create_subprocess_exec(
        *cluster.imaccess("broadcast", "maintenance at noon"),
        env={**__import__("os").environ, **cluster.env()},
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out
    for client in (one, two):
        message = await client.next_message(10)
        assert message.delivery == Delivery.BROADCAST and message.content == "maintenance at noon"


async def test_seed_keys_and_subjects_are_in_use(cluster: LocalCluster, connect: Connect) -> None:
    seen: list[str] = []
    nc = await nats.connect(cluster.nats_url)
    got_downstream = asyncio.Event()

    async def record(msg: Any) -> None:
        seen.append(msg.subject)
        if msg.subject.endswith(".downstream"):
            got_downstream.set()

    await nc.subscribe("im.>", cb=record)
    await nc.flush()
    a, b = _user(), _user()
    alice, bob = await connect(a, 0), await connect(b, 1)
    await alice.send(b, "observed")
    await bob.next_message(10)
    await asyncio.wait_for(got_downstream.wait(), 10)
    await nc.close()
    assert any(s.startswith("im.logic.upstream.") for s in seen)  # .<partition>
    assert "im.access.access-2.downstream" in seen
    r = aioredis.from_url(cluster.redis_url)
    fields = await r.hgetall(f"im:user:conn:{{{b}}}")
    await r.aclose()
    assert len(fields) == 1
    (entry,) = fields.values()
    assert b'"access_node": "access-2"' in entry or b'"access_node":"access-2"' in entry


async def test_logic_worker_killed_mid_stream_loses_no_acked_message(
    cluster: LocalCluster, connect: Connect
) -> None:
    a, b = _user(), _user()
    alice, bob = await connect(a, 0), await connect(b, 1)

    async def send_all() -> list[str]:
        acked = []
        for i in range(60):
            ack = await alice.send(b, f"during the crash {i}")
            acked.append(ack.msg_id)
        return acked

    sender = asyncio.create_task(send_all())
    first = await bob.next_message(20)  # the stream is flowing
    cluster.logic[0].kill(signal.SIGKILL)
    acked = await sender
    received = [first.msg_id] + [(await bob.next_message(30)).msg_id for _ in range(len(acked) - 1)]
    assert sorted(received) == sorted(acked)
    await cluster.logic[0].wait()
    await cluster.start_logic(0)  # restore for the other tests
    await cluster.wait_ready(60)


async def test_access_node_killed_clients_move_and_sync(
    tmp_path: Path,
) -> None:
    async with _own_cluster(tmp_path) as (cluster, connect):
        a, b, c = _user(), _user(), _user()
        alice = await connect(a, 1)
        bob = await connect(b, 0)  # on access-1, which dies
        await connect(c, 0, reconnect=False)  # also on access-1; gives up when it dies
        before = await alice.send(b, "before the crash")
        assert (await bob.next_message(10)).msg_id == before.msg_id
        cluster.access[0].kill(signal.SIGKILL)
        during = [await alice.send(b, f"while bob moves {i}") for i in range(5)]
        got = [await bob.next_message(30) for _ in during]
        assert [m.msg_id for m in got] == [x.msg_id for x in during]
        assert bob.node_id == "access-2" and bob.connects == 2
        r2 = aioredis.from_url(cluster.redis_url)
        nodes = {v for v in (await r2.hgetall(f"im:user:conn:{{{b}}}")).values()}
        assert all(b"access-1" not in v for v in nodes)  # Logic routes only to access-2
        # carol's entry outlives access-1 in Redis, but Logic no longer routes to it
        store = RedisLocationStore(aioredis.from_url(cluster.redis_url))
        assert len(await r2.hgetall(f"im:user:conn:{{{c}}}")) == 1
        async with asyncio.timeout(10):  # node_ttl is 2 s in this cluster
            while True:
                if not await store.locations(c):
                    break
                await asyncio.sleep(0.2)  # waiting out a TTL: there is no event to await
        await store.close()
        await r2.aclose()


async def test_sigterm_drains_a_node_and_its_clients_move_with_nothing_lost(
    tmp_path: Path,
) -> None:
    async with _own_cluster(
        tmp_path, IMACCESS_DRAIN_DEADLINE="10", IMACCESS_DRAIN_RECONNECT_SPREAD="1"
    ) as (cluster, connect):
        a, b = _user(), _user()
        alice = await connect(a, 1)
        bob = await connect(b, 0)  # on access-1, which drains
        sending = asyncio.gather(*(alice.send(b, f"during the drain {i}") for i in range(30)))
        received = {(await bob.next_message(10)).msg_id}  # the stream is flowing
        cluster.access[0].kill(signal.SIGTERM)
        acks = await sending
        assert await cluster.access[0].wait(20) == 0  # drained and exited cleanly
        async with asyncio.timeout(30):
            while not {ack.msg_id for ack in acks} <= received:
                received.add((await bob.next_message()).msg_id)
        assert bob.node_id == "access-2"


async def test_single_device_policy_across_nodes(tmp_path: Path) -> None:
    policy = "single_device"
    async with _own_cluster(tmp_path, IMACCESS_MULTI_DEVICE_POLICY=policy) as (_, connect):
        b = _user()
        first = await connect(b, 0, device_id="phone", platform="ios")
        second = await connect(b, 1, device_id="desktop", platform="mac")
        with pytest.raises(Disconnected) as stopped:
            await first.next_message(10)
        assert stopped.value.code == Code.KICKED_NEW_LOGIN
        # two logins at the same moment on different nodes: exactly one survives
        c = _user()
        racers = await asyncio.gather(
            connect(c, 0, device_id="x"), connect(c, 1, device_id="y"), return_exceptions=True
        )
        alive = [r for r in racers if isinstance(r, Client)]
        if len(alive) == 2:  # both got in: the later claim must kick the earlier one
            done, _ = await asyncio.wait(
                [asyncio.create_task(r.wait_stopped()) for r in alive],
                timeout=10,
                return_when=asyncio.FIRST_COMPLETED,
            )
            assert len(done) == 1
        survivors = [r for r in alive if r.stopped is None]
        assert len(survivors) == 1
        ack = await (await connect(_user(), 0)).send(c, "to the survivor")
        assert (await survivors[0].next_message(10)).msg_id == ack.msg_id
        assert second.stopped is None


async def test_cluster_command_runs_everything(tmp_path: Path) -> None:
    """`imaccess cluster` from the README: everything up, a chat across its nodes, Ctrl-C."""
    import os
    import re

    env = {**os.environ, **FAST, "IMACCESS_QUIC_STATE_DIR": str(tmp_path / "state")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "imaccess",
        "cluster",
        "--base-port",
        "0",
        "--workdir",
        str(tmp_path / "cluster"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    ports = []
    async with asyncio.timeout(60):
        while len(ports) < 2:
            line = (await proc.stdout.readline()).decode()
            assert line, "imaccess cluster exited early"
            ports += [int(p) for p in re.findall(r"quic://127\.0\.0\.1:(\d+)", line)]
    auth = load_settings(environ=env).auth
    cert = str(tmp_path / "cluster" / "state" / "dev-cert.pem")
    clients = [
        Client(
            "127.0.0.1", port, token=issue_token(auth, user), ca_file=cert, server_name="localhost"
        )
        for user, port in ((1, ports[0]), (2, ports[1]))
    ]
    try:
        for c in clients:
            await c.connect()
        ack = await clients[0].send(2, "through imaccess cluster")
        assert (await clients[1].next_message(10)).msg_id == ack.msg_id
    finally:
        for c in clients:
            await c.close()
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0


async def test_readiness_follows_nats_and_redis(cluster: LocalCluster) -> None:
    """/readyz of an access node answers 200 while NATS and Redis are reachable."""
    port = cluster.admin_ports[0]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
    response = await reader.read()
    writer.close()
    assert response.startswith(b"HTTP/1.1 200"), response


def _log_lines(cluster: LocalCluster, *markers: str) -> list[str]:
    found = []
    for node in cluster.access:
        assert node.log_path is not None
        for line in node.log_path.read_text().splitlines():
            if any(marker in line for marker in markers):
                found.append(f"{node.name}: {line}")
    return found


async def _scrape(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    response = await reader.read()
    writer.close()
    return response.decode()


async def test_stopping_the_cluster_with_clients_logs_no_error(tmp_path: Path) -> None:
    """The access nodes drain first: unregistering their clients needs Redis and NATS."""
    async with _own_cluster(tmp_path, IMACCESS_DRAIN_RECONNECT_SPREAD="0.2") as (cluster, connect):
        for node in (0, 1, 0, 1):
            await connect(_user(), node)
        await cluster.stop()
        assert [await node.wait() for node in cluster.access] == [0, 0]
        assert _log_lines(cluster, " ERROR ", " WARNING ", "Traceback") == []


async def test_a_client_leaving_while_redis_is_down_is_counted_not_crashed(
    tmp_path: Path,
) -> None:
    async with _own_cluster(tmp_path) as (cluster, connect):
        alice = await connect(_user(), 0)
        redis_server = next(s for s in cluster.servers if s.name == "redis-server")
        redis_server.kill(signal.SIGKILL)
        await redis_server.wait()
        await alice.close()
        metric = 'access_backend_errors_total{backend="locations",node="access-1"} 1.0'
        async with asyncio.timeout(20):
            # another process's counter: nothing to await
            while metric not in await _scrape(cluster.admin_ports[0]):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert _log_lines(cluster, "never retrieved") == []
        assert len(_log_lines(cluster, "could not unregister closed connections (1)")) == 1
        assert cluster.access[0].process is not None
        assert cluster.access[0].process.returncode is None


async def test_a_draining_node_is_never_advertised_again(tmp_path: Path) -> None:
    """The drain deletes the node's liveness key; its renewal loop (every node_ttl / 3,
    0.67 s here) must not set it again while clients take their time to leave."""
    async with _own_cluster(tmp_path, IMACCESS_DRAIN_DEADLINE="3") as (cluster, _):
        store = aioredis.from_url(cluster.redis_url)
        await store.config_set("notify-keyspace-events", "K$g")  # SET and DEL of keys
        events = store.pubsub()
        await events.subscribe("__keyspace@0__:im:node:{access-1}:alive")
        auth = load_settings(environ=cluster.env()).auth
        cert = str(Path(cluster.env()["IMACCESS_QUIC_STATE_DIR"]) / "dev-cert.pem")
        stays = await RawPeer.connect(*cluster.quic_servers[0], cert)  # ignores the drain
        await stays.authenticate(issue_token(auth, _user()))
        cluster.access[0].kill(signal.SIGTERM)
        assert await cluster.access[0].wait(30) == 0
        seen = []
        with contextlib.suppress(TimeoutError):  # what Redis published is already here
            async with asyncio.timeout(1):
                async for event in events.listen():
                    if event["type"] == "message":
                        seen.append(event["data"])
        assert b"del" in seen
        assert seen[seen.index(b"del") :] == [b"del"]  # nothing after the drain's delete
        stays.close()
        await events.aclose()
        await store.aclose()


async def test_many_clients_leaving_at_once_are_all_unregistered(tmp_path: Path) -> None:
    """A mass disconnect (a partition, a fleet restarting) closes hundreds of connections
    in a moment; one Redis command each would exceed the Redis client's connection pool
    (100 in redis-py 8) and fail, leaving the entries to expire."""
    async with _own_cluster(tmp_path) as (cluster, _):
        auth = load_settings(environ=cluster.env()).auth
        cert = str(Path(cluster.env()["IMACCESS_QUIC_STATE_DIR"]) / "dev-cert.pem")
        users = [_user() for _ in range(150)]
        peers = []
        for user in users:
            peer = await RawPeer.connect(*cluster.quic_servers[0], cert)
            await peer.authenticate(issue_token(auth, user))
            peers.append(peer)
        store = RedisLocationStore(aioredis.from_url(cluster.redis_url))
        assert all((await store.locations_of(users)).values())
        for peer in peers:
            peer.close()
        async with asyncio.timeout(20):
            # another process's writes: nothing to await
            while any((await store.locations_of(users)).values()):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert _log_lines(cluster, "could not unregister") == []
        await store.close()
