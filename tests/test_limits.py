"""Each limit refuses with its code, and a flood from one user does not slow others."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

from imaccess.embedded import EmbeddedGateway
from imaccess.protocol import (
    AuthRequest,
    AuthResponse,
    ChatMessage,
    Code,
    Error,
    Heartbeat,
    MessageAck,
)
from imaccess.protocol.codec import encode_body
from imaccess.settings import Settings

from .conftest import ClientFactory, RawFactory, token_for
from .rawquic import RawPeer

REPO = Path(__file__).resolve().parent.parent


async def _auth(peer: RawPeer, settings: Settings, user: int) -> int:
    control = peer.new_stream()
    peer.send(control, AuthRequest(token_for(settings, user), f"d{user}-{control}", "test"))
    reply = await peer.next_of(AuthResponse)
    assert isinstance(reply.body, AuthResponse) and reply.body.code == Code.OK
    return control


async def _refused(gateway: EmbeddedGateway, **kwargs: object) -> int:
    peer = await RawPeer.connect(*gateway.address, gateway.cert_file, wait=False, **kwargs)  # type: ignore[arg-type]
    peer.write(peer.new_stream(), b"")  # opening a stream is what asks for a connection
    peer.send(peer.new_stream(), Heartbeat())
    code = (await peer.closed()).error_code
    peer.close()
    return code


async def test_node_connection_limit(
    settings: Settings, gateway: EmbeddedGateway, raw: RawFactory
) -> None:
    settings.limits.max_connections = 2
    for _ in range(2):
        peer = await raw()
        peer.send(peer.new_stream(), Heartbeat())
        await peer.next()
    assert await _refused(gateway) == Code.NODE_FULL


async def test_per_address_connection_limit(
    settings: Settings, gateway: EmbeddedGateway, raw: RawFactory
) -> None:
    settings.limits.max_connections_per_ip = 2
    for _ in range(2):
        peer = await raw()
        peer.send(peer.new_stream(), Heartbeat())
        await peer.next()
    assert await _refused(gateway) == Code.TOO_MANY_CONNECTIONS
    # another loopback address is another client
    other = await raw(local_host="127.0.0.2")
    other.send(other.new_stream(), Heartbeat())
    await other.next()
    assert not other.terminated.done()


async def test_failed_auths_block_the_address(
    settings: Settings, gateway: EmbeddedGateway, raw: RawFactory
) -> None:
    settings.limits.auth_failures_per_minute = 3
    for _ in range(3):
        peer = await raw()
        peer.send(peer.new_stream(), AuthRequest("forged", "d", "test"))
        assert (await peer.closed()).error_code == Code.AUTH_INVALID_TOKEN
    assert await _refused(gateway) == Code.AUTH_BLOCKED
    fine = await raw(local_host="127.0.0.3")
    await _auth(fine, settings, 5)


async def test_messages_over_the_rate_get_a_coded_ack(
    settings: Settings, gateway: EmbeddedGateway, raw: RawFactory, client: ClientFactory
) -> None:
    settings.limits.message_rate = 0.001
    settings.limits.message_burst = 3
    bob = await client(2)
    peer = await raw()
    control = await _auth(peer, settings, 1)
    seqs = [peer.send(control, ChatMessage(f"r{i}", to_user=2, content="hi")) for i in range(5)]
    acks = {}
    while len(acks) < 5:
        packet = await peer.next_of(MessageAck)
        assert isinstance(packet.body, MessageAck)
        acks[packet.seq] = packet.body.code
    assert [acks[s] for s in seqs] == [Code.OK] * 3 + [Code.RATE_LIMITED] * 2
    got = [await bob.next_message(5) for _ in range(3)]
    assert [m.msg_id for m in got] == ["r0", "r1", "r2"]
    assert not peer.terminated.done()


async def test_control_stream_has_a_smaller_frame_limit(
    settings: Settings, raw: RawFactory
) -> None:
    settings.limits.max_control_frame_size = 1024
    peer = await raw()
    control = await _auth(peer, settings, 1)
    message_stream = peer.new_stream()
    big_heartbeat = encode_body(1, 0, b"\x00" * 2000)  # a Packet with a 2000-byte payload
    peer.write(message_stream, big_heartbeat)  # big, but fine here
    peer.write(control, big_heartbeat)
    error = await peer.next_of(Error)
    assert isinstance(error.body, Error) and error.body.code == Code.FRAME_TOO_LARGE
    assert (await peer.closed()).error_code == Code.FRAME_TOO_LARGE


async def _round_trips(sender: object, receiver: object, to: int, count: int) -> list[float]:
    from imaccess.client import Client

    assert isinstance(sender, Client) and isinstance(receiver, Client)
    times = []
    for i in range(count):
        started = time.perf_counter()
        await sender.send(to, f"latency probe {i}")
        await receiver.next_message(5)
        times.append(time.perf_counter() - started)
    return times


async def test_a_flooding_user_does_not_slow_others(
    settings: Settings, gateway: EmbeddedGateway, raw: RawFactory, client: ClientFactory
) -> None:
    settings.limits.message_rate = 100  # the probes below stay under it; the flood does not
    settings.limits.message_burst = 100
    bob, carol = await client(2), await client(3)
    await _round_trips(bob, carol, 3, 10)  # warm up
    baseline = statistics.median(await _round_trips(bob, carol, 3, 40))
    total = 3000
    host, port = gateway.address
    flooder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.flooder",
        host,
        str(port),
        gateway.cert_file,
        token_for(settings, 1),
        str(total),
        "4",
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    assert flooder.stdout is not None
    assert (await asyncio.wait_for(flooder.stdout.readline(), 20)).strip() == b"authenticated"
    flood_started = time.perf_counter()
    during = statistics.median(await _round_trips(bob, carol, 3, 40))
    refused, accepted = map(int, (await asyncio.wait_for(flooder.stdout.readline(), 60)).split())
    elapsed = time.perf_counter() - flood_started
    assert await flooder.wait() == 0
    limits = settings.limits
    # the flood was real, and all but the bucket's worth was refused rather than delivered
    assert refused + accepted == total
    assert accepted <= limits.message_burst + limits.message_rate * elapsed + 1
    assert during <= 2 * baseline + 0.010, (baseline, during)  # 10 ms of slack: a shared machine
