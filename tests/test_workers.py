"""Worker processes (``workers: N``): the reuseport steering program on its own, then a
real ``imaccess access`` supervisor with two workers on nats-server and redis-server,
driven by SDK clients and a raw QUIC peer that migrates."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import select
import signal
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from imaccess.auth import issue_token
from imaccess.client import Client
from imaccess.embedded import EmbeddedGateway
from imaccess.protocol import AuthRequest, AuthResponse, ChatMessage, Code, MessageAck
from imaccess.protocol.messages import Notice, NoticeKind
from imaccess.redis_store import RedisLocationStore, node_key
from imaccess.settings import Settings, SettingsError, load_settings
from imaccess.transport.reuseport import bind_reuseport, steered_cid_factory
from imaccess.workers import worker_settings

from .devserver import imaccess_command
from .rawquic import RawPeer

pytestmark = pytest.mark.timeout(120)

# ------------------------------------------------------------------ the program alone


def _receiver(sockets: list[socket.socket], timeout: float = 5.0) -> int:
    """Index of the one socket that received the datagram just sent (read and dropped)."""
    ready, _, _ = select.select(sockets, [], [], timeout)
    assert len(ready) == 1, ready
    ready[0].recv(2048)
    return sockets.index(ready[0])


def test_the_program_steers_by_the_destination_cid_in_the_udp_payload() -> None:
    group = bind_reuseport("127.0.0.1", 0, 2, socket.SOCK_DGRAM)
    address = group[0].getsockname()
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
    try:
        for sender in senders:  # several source ports: a 4-tuple hash would scatter these
            for first in range(6):
                short = bytes([0x40, first]) + os.urandom(40)
                sender.sendto(short, address)
                assert _receiver(group) == first % 2
                # long header: flags, version, DCID length 8, DCID
                long = bytes([0xC0, 0, 0, 0, 1, 8, first]) + os.urandom(40)
                sender.sendto(long, address)
                assert _receiver(group) == first % 2
        # If the kernel ran the program over the UDP header instead, byte 0 would be the
        # source port's high byte and byte 1/6 ports or length: the answers above would
        # follow the sender, not the payload. A 1-byte datagram aborts the program
        # (out-of-range load), which returns 0: worker 0 gets it.
        senders[0].sendto(b"\x40", address)
        assert _receiver(group) == 0
    finally:
        for sock in [*group, *senders]:
            sock.close()


def test_three_workers_and_a_byte_above_the_last_multiple() -> None:
    group = bind_reuseport("127.0.0.1", 0, 3, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for first in (0, 1, 2, 254, 255):
            sender.sendto(bytes([0x41, first]) + os.urandom(20), group[0].getsockname())
            assert _receiver(group) == first % 3
    finally:
        for sock in [*group, sender]:
            sock.close()


@pytest.mark.parametrize("workers", [1, 2, 3, 7, 64])
def test_steered_cids_carry_the_worker_index(workers: int) -> None:
    for index in range(workers):
        new_cid = steered_cid_factory(index, workers)
        cids = [new_cid(8) for _ in range(200)]
        assert all(len(c) == 8 and c[0] % workers == index for c in cids)
        assert len(set(cids)) == len(cids)
    with pytest.raises(ValueError):
        steered_cid_factory(2, 2)


def test_worker_settings(settings: Settings) -> None:
    settings.node_id, settings.workers = "edge-7", 3
    settings.admin.listen = "127.0.0.1:9091"
    settings.limits.max_connections = 100
    second = worker_settings(settings, 2)
    assert (second.node_id, second.admin.listen) == ("edge-7-w2", "127.0.0.1:9093")
    assert second.limits.max_connections == 34
    assert settings.node_id == "edge-7" and settings.admin.listen == "127.0.0.1:9091"
    settings.admin.listen = "127.0.0.1:0"
    assert worker_settings(settings, 1).admin.listen == "127.0.0.1:0"


def test_workers_setting_is_bounded_and_refused_by_the_embedded_gateway(
    settings: Settings,
) -> None:
    assert load_settings(environ={"IMACCESS_WORKERS": "4"}).workers == 4
    for bad in ("0", "65"):
        with pytest.raises(SettingsError, match="workers"):
            load_settings(environ={"IMACCESS_WORKERS": bad})
    settings.workers = 2
    with pytest.raises(SettingsError, match="one process"):
        EmbeddedGateway(settings)


async def test_dev_command_refuses_workers(cli_env: dict[str, str]) -> None:
    proc = await imaccess_command({**cli_env, "IMACCESS_WORKERS": "2"}, "dev")
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert b"imaccess dev" in err and b"Traceback" not in err


# ------------------------------------------------------------ a node with two workers

_WORKER_LINE = re.compile(rb"worker (\d+): node (\S+) pid (\d+) admin (\S+)")


@dataclass
class Node:
    process: asyncio.subprocess.Process
    env: dict[str, str]
    log: Path
    quic: tuple[str, int]
    pids: dict[str, int] = field(default_factory=dict)
    admin: dict[str, str] = field(default_factory=dict)
    clients: list[Client] = field(default_factory=list)
    peers: list[RawPeer] = field(default_factory=list)

    @property
    def cert(self) -> str:
        return str(Path(self.env["IMACCESS_QUIC_STATE_DIR"]) / "dev-cert.pem")

    def token(self, user_id: int) -> str:
        return issue_token(load_settings(environ=self.env).auth, user_id)

    async def client(self, user_id: int, **kwargs: Any) -> Client:
        c = Client(
            *self.quic,
            token=self.token(user_id),
            ca_file=self.cert,
            server_name="localhost",
            ack_timeout=5.0,
            **kwargs,
        )
        self.clients.append(c)
        await c.connect()
        return c

    async def raw(self, user_id: int) -> tuple[RawPeer, int, AuthResponse]:
        peer = await RawPeer.connect(*self.quic, self.cert)
        self.peers.append(peer)
        control = peer.new_stream()
        peer.send(control, AuthRequest(self.token(user_id), "phone", "test"))
        auth = (await peer.next_of(AuthResponse)).body
        assert isinstance(auth, AuthResponse) and auth.code == Code.OK
        return peer, control, auth

    async def read_worker_line(self, timeout: float = 30) -> tuple[str, int, str]:
        assert self.process.stdout is not None
        while True:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
            assert line, f"the supervisor exited: see {self.log}"
            found = _WORKER_LINE.search(line)
            if found:
                node_id, pid, admin = found.group(2).decode(), int(found.group(3)), found.group(4)
                self.pids[node_id] = pid
                self.admin[node_id] = admin.decode()
                return node_id, pid, admin.decode()

    async def metric(self, node_id: str, name: str) -> float:
        host, port = self.admin[node_id].rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        body = (await reader.read()).decode()
        writer.close()
        values = [
            float(line.rsplit(" ", 1)[1])
            for line in body.splitlines()
            if line.startswith(name) and not line.startswith("#")
        ]
        return sum(values)


def _user() -> int:
    return uuid.uuid4().int % 10**12 + 1000


async def _start(
    tmp_path: Path, cli_env: dict[str, str], nats_url: str, redis_url: str
) -> tuple[Node, asyncio.subprocess.Process]:
    env = {
        **cli_env,
        "IMACCESS_NATS_URL": nats_url,
        "IMACCESS_REDIS_URL": redis_url,
        "IMACCESS_NODE_ID": "edge",
        "IMACCESS_WORKERS": "2",
        "IMACCESS_DRAIN_DEADLINE": "3",
        "IMACCESS_DRAIN_RECONNECT_SPREAD": "0.2",
        "IMACCESS_DRAIN_TASK_GRACE": "1",
    }
    log = tmp_path / "node.log"
    with log.open("ab") as log_file:
        logic = await asyncio.create_subprocess_exec(
            *_argv("logic"), env=env, stdout=asyncio.subprocess.PIPE, stderr=log_file
        )
        access = await asyncio.create_subprocess_exec(
            *_argv("access"), env=env, stdout=asyncio.subprocess.PIPE, stderr=log_file
        )
    assert logic.stdout is not None and access.stdout is not None
    assert b"ready" in await asyncio.wait_for(logic.stdout.readline(), 30)
    banner = await asyncio.wait_for(access.stdout.readline(), 30)
    assert b"ready on quic://" in banner and b"with 2 workers" in banner, banner
    host, port = env["IMACCESS_LISTEN"].split(":")
    node = Node(access, env, log, (host, int(port)))
    for _ in range(2):
        await node.read_worker_line()
    assert sorted(node.pids) == ["edge-w0", "edge-w1"]
    return node, logic


def _argv(command: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "imaccess", command]


async def _end(process: asyncio.subprocess.Process) -> int:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(process.wait(), 30)
    except TimeoutError:
        process.kill()
        return await process.wait()


@pytest.fixture
async def node(
    tmp_path: Path, cli_env: dict[str, str], nats_url: str, redis_url: str
) -> AsyncIterator[Node]:
    node, logic = await _start(tmp_path, cli_env, nats_url, redis_url)
    try:
        yield node
    finally:
        for c in node.clients:
            await c.close()
        for peer in node.peers:
            peer.close()
        await _end(node.process)
        await _end(logic)


async def _one_on_each_worker(node: Node) -> dict[str, tuple[int, Client]]:
    """Connect new users until each worker holds one: which worker a connection lands
    on is the first byte of the client's random initial DCID, a coin flip per client."""
    held: dict[str, tuple[int, Client]] = {}
    for _ in range(40):
        user = _user()
        client = await node.client(user)
        held.setdefault(client.node_id, (user, client))
        if len(held) == 2:
            return held
    raise AssertionError(f"40 connections all landed on {set(held)}")


async def test_connections_spread_over_both_workers_and_chat_crosses_them(
    node: Node, redis_url: str
) -> None:
    held = await _one_on_each_worker(node)
    assert sorted(held) == ["edge-w0", "edge-w1"]
    (a, alice), (b, bob) = held["edge-w0"], held["edge-w1"]
    # each worker is its own routing target in the location store ...
    store = RedisLocationStore(aioredis.Redis.from_url(redis_url))
    try:
        assert [loc.node_id for loc in await store.locations(a)] == ["edge-w0"]
        assert [loc.node_id for loc in await store.locations(b)] == ["edge-w1"]
    finally:
        await store.close()
    # ... with its own admin listener counting its own connections
    for node_id in held:
        assert await node.metric(node_id, "access_connections_total") >= 1
    total = sum([await node.metric(n, "access_connections_total") for n in held])
    assert total == len(node.clients)
    # 1:1 chat between users held by different workers, both ways
    ack = await alice.send(b, "from worker 0")
    got = await bob.next_message(10)
    assert (got.msg_id, got.from_user, got.content) == (ack.msg_id, a, "from worker 0")
    reply = await bob.send(a, "from worker 1")
    assert (await alice.next_message(10)).msg_id == reply.msg_id


async def test_a_migrating_client_stays_on_its_worker(node: Node, redis_url: str) -> None:
    held = await _one_on_each_worker(node)
    me = _user()
    peer, control, auth = await node.raw(me)
    index = int(auth.node_id.rsplit("-w", 1)[1])
    other_id = "edge-w1" if index == 0 else "edge-w0"
    other, other_client = held[other_id]
    # every CID the worker gave us (handshake and NEW_CONNECTION_ID) carries its index
    issued = [peer.quic._peer_cid.cid, *(c.cid for c in peer.quic._peer_cid_available)]
    assert len(issued) > 2 and all(cid[0] % 2 == index for cid in issued)
    for move in range(6):
        await peer.rebind()  # a new 4-tuple: kernel hashing alone would pick at random
        if move % 2:
            peer.quic.change_connection_id()  # and a fresh CID, as a migrating client may
        sent = peer.send(control, ChatMessage(f"move-{move}", to_user=other, content="hi"))
        ack = await peer.next_of(MessageAck)
        assert ack.seq == sent and isinstance(ack.body, MessageAck)
        assert ack.body.code == Code.OK
    got = [await other_client.next_message(10) for _ in range(6)]
    assert [m.msg_id for m in got] == [f"move-{i}" for i in range(6)]
    pushed = await other_client.send(me, "to the moved phone")
    while True:  # (the node also echoes our own sends to us, for our other devices)
        push = await peer.next_of(ChatMessage)
        assert isinstance(push.body, ChatMessage)
        if push.body.msg_id == pushed.msg_id:
            break
    # still the one session of the first login, on the same worker
    store = RedisLocationStore(aioredis.Redis.from_url(redis_url))
    try:
        (location,) = await store.locations(me)
    finally:
        await store.close()
    assert (location.node_id, location.conn_id) == (auth.node_id, auth.conn_id)
    assert peer.quic._peer_cid.cid[0] % 2 == index


async def test_sigterm_drains_both_workers_and_the_supervisor_exits_0(
    node: Node, redis_url: str
) -> None:
    peers: dict[str, RawPeer] = {}
    for _ in range(40):
        peer, _, auth = await node.raw(_user())
        peers.setdefault(auth.node_id, peer)
        if len(peers) == 2:
            break
    assert sorted(peers) == ["edge-w0", "edge-w1"]
    redis = aioredis.Redis.from_url(redis_url)
    try:
        assert await redis.exists(node_key("edge-w0"), node_key("edge-w1")) == 2
        node.process.send_signal(signal.SIGTERM)
        for peer in peers.values():  # every worker tells its clients to go elsewhere
            notice = await peer.next_of(Notice, timeout=10)
            assert isinstance(notice.body, Notice) and notice.body.kind == NoticeKind.DRAIN
            peer.close()
        assert await asyncio.wait_for(node.process.wait(), 30) == 0
        assert await redis.exists(node_key("edge-w0"), node_key("edge-w1")) == 0
    finally:
        await redis.aclose()
    for pid in node.pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    log = node.log.read_text()
    assert "draining node_id=edge-w0" in log and "draining node_id=edge-w1" in log


async def test_a_worker_that_dies_is_restarted_on_its_socket(node: Node) -> None:
    os.kill(node.pids["edge-w1"], signal.SIGKILL)
    node_id, pid, _ = await node.read_worker_line()
    assert node_id == "edge-w1" and pid != 0
    assert "worker 1 exited with -9" in node.log.read_text()
    held = await _one_on_each_worker(node)  # the restarted worker serves its share again
    (_, alice), (b, bob) = held["edge-w0"], held["edge-w1"]
    ack = await alice.send(b, "after the restart")
    assert (await bob.next_message(10)).msg_id == ack.msg_id
