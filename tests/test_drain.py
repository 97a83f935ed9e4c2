"""Graceful drain on one node: readiness goes false, new connections are refused, clients
get a Drain notice and leave on their own, and the node stops well before its deadline."""

from __future__ import annotations

import asyncio
import contextlib
import time

from imaccess.client import Client
from imaccess.embedded import EmbeddedGateway
from imaccess.presence import end_tasks
from imaccess.protocol import AuthRequest, Code, Heartbeat, Notice, NoticeKind
from imaccess.settings import Settings

from .conftest import ClientFactory, RawFactory, token_for
from .rawquic import RawPeer
from .test_admin import _get


async def test_drain_notice_then_clients_leave_before_the_deadline(
    settings: Settings, gateway: EmbeddedGateway, client: ClientFactory, raw: RawFactory
) -> None:
    settings.drain.deadline = 20
    settings.drain.reconnect_spread = 0.3
    clients = [await client(u, backoff_base=5.0) for u in (1, 2, 3)]
    peer = await raw()
    control = peer.new_stream()
    peer.send(control, AuthRequest(token_for(settings, 4), "raw", "test"))
    await peer.next()
    started = time.monotonic()
    stopping = asyncio.create_task(gateway.node.stop())
    notice = await peer.next_of(Notice)
    assert isinstance(notice.body, Notice) and notice.body.kind == NoticeKind.DRAIN
    assert notice.body.code == Code.DRAINING and 0 <= notice.body.reconnect_after_ms <= 300
    assert (await _get(gateway, "/readyz"))[0] == 503
    # the raw client still gets answers while it finishes up
    seq = peer.send(control, Heartbeat())
    echo = await peer.next_of(Heartbeat)
    assert echo.seq == seq
    # a new connection is refused with DRAINING
    late = await RawPeer.connect(*gateway.address, gateway.cert_file)
    late.send(late.new_stream(), Heartbeat())
    assert (await late.closed()).error_code == Code.DRAINING
    late.close()
    peer.close()  # leaves, like the SDK clients do after their delay
    await asyncio.wait_for(stopping, 10)
    assert time.monotonic() - started < settings.drain.deadline / 2
    for c in clients:
        assert isinstance(c, Client) and not c.connected  # they left the draining node


async def test_clients_that_stay_are_closed_at_the_deadline(
    settings: Settings, gateway: EmbeddedGateway, raw: RawFactory
) -> None:
    settings.drain.deadline = 0.5
    peer = await raw()
    control = peer.new_stream()
    peer.send(control, AuthRequest(token_for(settings, 4), "stays", "test"))
    await peer.next()
    await gateway.node.stop()
    assert (await peer.closed()).error_code == Code.DRAINING


async def test_a_task_that_swallows_its_cancellation_does_not_hold_the_drain() -> None:
    """Seen with Redis gone: the node-liveness loop outlived its cancellation, and the
    drain waited for it forever (the worker never exited)."""
    released = asyncio.Event()

    async def stubborn() -> None:
        while not released.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.01)

    task = asyncio.create_task(stubborn())
    well_behaved = asyncio.create_task(asyncio.sleep(60))
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await end_tasks([task, well_behaved], grace=0.1)
    assert well_behaved.cancelled() and not task.done()
    released.set()
    await task
