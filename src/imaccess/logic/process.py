"""``imaccess logic``: one Logic worker process on NATS (JetStream) and Redis."""

from __future__ import annotations

import asyncio
import logging

from ..settings import Settings
from .service import LogicService

__all__ = ["run_logic_worker"]

log = logging.getLogger(__name__)


async def run_logic_worker(settings: Settings, stop: asyncio.Event) -> None:
    """Consume upstream, serve Sync and broadcasts, until ``stop`` is set."""
    from ..nats_bus import NatsLogicBus
    from ..redis_store import RedisInbox, RedisLocationStore, RedisLogicStore, connect_redis
    from .worker import LogicWorker

    redis = await connect_redis(settings.redis)
    locations = RedisLocationStore(redis)
    inbox = RedisInbox(
        redis, limit=settings.logic.inbox_limit, dedupe_window=settings.logic.dedupe_window
    )
    downstream = NatsLogicBus(settings.nats)
    await downstream.start()
    logic = LogicService(
        inbox,
        locations,
        downstream,
        sync_batch=settings.logic.sync_batch,
        combined=RedisLogicStore(inbox, locations),  # one Redis round trip per batch
    )
    worker = LogicWorker(settings.nats, logic, linger=settings.logic.linger)
    await worker.start()
    print(f"imaccess logic: worker ready on {settings.nats.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await worker.stop()
        await downstream.close()
        await locations.close()
