"""The admin listener: Prometheus metrics with the seed's names, health and readiness."""

from __future__ import annotations

import asyncio
from pathlib import Path

from imaccess.embedded import EmbeddedGateway, Gateway
from imaccess.protocol import Code
from imaccess.settings import Settings

from .conftest import ClientFactory, token_for


async def _get(gateway: Gateway, path: str) -> tuple[int, str]:
    host, port = gateway.admin.address
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def _value(metrics: str, name: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_metrics_count_what_happens(gateway: EmbeddedGateway, client: ClientFactory) -> None:
    alice, bob = await client(1), await client(2)
    for i in range(3):
        await alice.send(2, f"m{i}")
    for _ in range(3):
        await bob.next_message(5)
    from imaccess.client import AuthFailed

    try:
        await client(3, token=token_for(gateway.settings, 3, ttl=-100))
    except AuthFailed as refused:
        assert refused.code == Code.AUTH_TOKEN_EXPIRED
    for conn in list(gateway.node.hub):
        if conn.login is None:  # the refused one, until its QUIC close completes
            await asyncio.wait_for(conn.gone, 5)
    status, metrics = await _get(gateway, "/metrics")
    assert status == 200
    assert _value(metrics, "access_connections_total") == 2
    assert _value(metrics, "access_messages_received_total") == 3
    assert _value(metrics, "access_messages_sent_total") == 6  # bob's copies + alice's own
    assert _value(metrics, "access_auth_success_total") == 2
    assert _value(metrics, "access_auth_failed_total") == 1
    assert _value(metrics, "access_message_latency_count") == 3
    assert 'access_connections_total{node="access-1",transport="quic"} 2.0' in metrics


async def test_health_and_readiness(gateway: EmbeddedGateway) -> None:
    assert await _get(gateway, "/healthz") == (200, "ok\n")
    assert (await _get(gateway, "/readyz"))[0] == 200
    assert (await _get(gateway, "/nope"))[0] == 404
    await gateway.node.stop()
    assert (await _get(gateway, "/readyz"))[0] == 503


async def test_outbound_queue_bytes_are_reported(
    gateway: EmbeddedGateway, client: ClientFactory
) -> None:
    await client(1)

    def queued() -> int:
        return sum(c.writer.queued_bytes for c in gateway.node.hub)

    for _ in range(100):  # bytes in flight change when acks arrive: compare a still moment
        before = queued()
        _, metrics = await _get(gateway, "/metrics")
        if queued() == before:
            break
    assert 'access_outbound_queue_bytes{node="access-1"}' in metrics
    assert _value(metrics, "access_outbound_queue_bytes") == before


async def test_not_ready_while_redis_is_unreachable(settings: Settings, tmp_path: Path) -> None:
    import redis.asyncio as aioredis

    from imaccess.bus import MemoryBus
    from imaccess.localcluster import find_binary, free_port
    from imaccess.redis_store import RedisLocationStore

    port = free_port()
    server = await asyncio.create_subprocess_exec(
        find_binary("redis-server"),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(tmp_path),
        stdout=asyncio.subprocess.DEVNULL,
    )
    client = aioredis.from_url(f"redis://127.0.0.1:{port}/0")
    async with asyncio.timeout(10):
        while True:
            try:
                await client.ping()
                break
            except Exception:
                await asyncio.sleep(0.05)  # the server process is starting
    bus = MemoryBus()
    bus.attach_logic(object())  # type: ignore[arg-type]  # healthy: Logic is attached
    async with Gateway(settings, bus, RedisLocationStore(client)) as gateway:
        assert (await _get(gateway, "/readyz"))[0] == 200
        server.kill()
        await server.wait()
        status, body = await _get(gateway, "/readyz")
        assert status == 503 and "Redis" in body
