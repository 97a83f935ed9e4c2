"""Batched upstream consumption against real nats-server and redis-server: workers hold
many of a partition's messages at once, and one sender's messages are still stored in
the order JetStream accepted them, across batches, hand-overs and a worker that dies
holding a batch while newer messages flow to its successor."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence

import nats

from imaccess.bus import Upstream
from imaccess.logic import LogicService
from imaccess.logic.membership import Membership, rendezvous_owner
from imaccess.logic.partition import PRIORITY_GROUP
from imaccess.nats_bus import NatsAccessBus, NatsLogicBus, upstream_partition
from imaccess.nats_envelope import LOGIC_GROUP
from imaccess.redis_store import RedisInbox, RedisLocationStore, RedisLogicStore, connect_redis
from imaccess.settings import NatsSettings, RedisSettings

from .test_nats_bus import (
    LogicStack,
    access_bus,
    logic_stack,
    nats_settings,
    start_worker,
    upstream,
)

WAIT = 30.0


async def redis_logic(
    stack: contextlib.AsyncExitStack, settings: NatsSettings, redis_url: str
) -> tuple[LogicStack, RedisInbox]:
    client = await connect_redis(RedisSettings(url=redis_url))
    stack.push_async_callback(client.aclose)
    inbox = RedisInbox(client, limit=10_000, dedupe_window=600)
    downstream = NatsLogicBus(settings)
    stack.push_async_callback(downstream.close)
    logic = LogicStack()
    locations = RedisLocationStore(client)
    combined = RedisLogicStore(inbox, locations)  # as `imaccess logic` runs it
    logic.service = LogicService(inbox, locations, downstream, combined=combined)
    return logic, inbox


async def publish_in_order(bus: NatsAccessBus, messages: Sequence[Upstream]) -> list[int]:
    """Each sender's messages one after another (as a client does), senders concurrently;
    returns the stream sequences."""
    acks: dict[str, int] = {}

    async def sender(own: list[Upstream]) -> None:
        for message in own:
            acks[message.dedupe_key] = (await bus.publish_upstream(message)).server_seq

    senders: dict[int, list[Upstream]] = {}
    for message in messages:
        senders.setdefault(message.from_user, []).append(message)
    await asyncio.gather(*(sender(own) for own in senders.values()))
    return [acks[m.dedupe_key] for m in messages]


async def sent_order(inbox: RedisInbox, user_id: int, sender: int) -> list[str]:
    stored = (await inbox.since(user_id, 0, 100_000)).messages
    return [m.msg_id for m in stored if m.from_user == sender]


async def consumer_info(url: str, settings: NatsSettings, partition: int) -> dict[str, object]:
    nc = await nats.connect(url)
    try:
        subject = f"$JS.API.CONSUMER.INFO.{settings.stream}.{LOGIC_GROUP}-{partition}"
        info: dict[str, object] = json.loads((await nc.request(subject, b"")).data)
        return info
    finally:
        await nc.close()


async def unpin(url: str, settings: NatsSettings, partition: int) -> None:
    """What the server does when a pinned worker stops asking: the pin moves on."""
    nc = await nats.connect(url)
    try:
        subject = f"$JS.API.CONSUMER.UNPIN.{settings.stream}.{LOGIC_GROUP}-{partition}"
        reply = await nc.request(subject, json.dumps({"group": PRIORITY_GROUP}).encode())
        assert b"error" not in reply.data, reply.data
    finally:
        await nc.close()


# ------------------------------------------------------------------ pure membership


def test_rendezvous_moves_only_the_partitions_of_the_worker_that_comes_or_goes() -> None:
    three = {p: rendezvous_owner(p, ["a", "b", "c"]) for p in range(64)}
    two = {p: rendezvous_owner(p, ["a", "b"]) for p in range(64)}
    assert set(three.values()) == {"a", "b", "c"}
    assert all(two[p] == owner for p, owner in three.items() if owner != "c")


def test_membership_forgets_silent_workers_and_answers_new_ones() -> None:
    m = Membership("me", ttl=3.0)
    assert m.heard("other", 0.0) is True
    assert m.heard("other", 1.0) is False  # known: no answer needed
    assert m.heard("me", 1.0) is False
    assert m.live(2.0) == ["me", "other"]
    assert m.mine(16, 2.0) | Membership("other", 3.0).mine(16, 0.0) != set()
    assert m.live(10.0) == ["me"]
    assert m.mine(16, 10.0) == set(range(16))
    m.heard("other", 11.0)
    m.left("other")
    assert m.live(11.0) == ["me"]


# ------------------------------------------------------------- workers, NATS, Redis


async def test_batches_keep_each_senders_order(
    nats_url: str, redis_url: str, stack: contextlib.AsyncExitStack
) -> None:
    settings = nats_settings(nats_url)
    bus, _ = await access_bus(stack, settings, "n1")
    logic, inbox = await redis_logic(stack, settings, redis_url)
    _, first = await start_worker(stack, settings, logic, "w1")
    _, second = await start_worker(stack, settings, logic, "w2")

    # 8 senders x 60 messages, to one recipient, published while the workers run
    messages = [upstream(n, sender=10 + n % 8) for n in range(480)]
    seqs = await publish_in_order(bus, messages)
    await logic.ledger.until(lambda: len(logic.ledger.by_key) == len(messages), WAIT)

    assert max(first.batches + second.batches) > 1  # batches, not one at a time
    for sender in range(10, 18):
        own = sorted(
            (s, m.msg_id) for s, m in zip(seqs, messages, strict=True) if m.from_user == sender
        )
        assert await sent_order(inbox, 2, sender) == [msg_id for _, msg_id in own]
        assert await sent_order(inbox, sender, sender) == [msg_id for _, msg_id in own]
    assert all(len(ws) == 1 for ws in logic.ledger.by_key.values())


async def test_a_lingering_worker_gathers_messages_that_come_one_by_one(
    nats_url: str, stack: contextlib.AsyncExitStack
) -> None:
    settings = nats_settings(nats_url)
    bus, _ = await access_bus(stack, settings, "n1")
    logic = await logic_stack(stack, settings)
    _, worker = await start_worker(stack, settings, logic, "w1", linger=0.5)
    # the worker takes the sender's partition over (pin, take-over check) and consumes
    await bus.publish_upstream(upstream(0))
    await logic.ledger.until(lambda: len(logic.ledger.by_key) == 1, WAIT)

    # one at a time, each acked before the next: without the linger, each its own batch
    for n in range(1, 6):
        await bus.publish_upstream(upstream(n))
    await logic.ledger.until(lambda: len(logic.ledger.by_key) == 6, WAIT)
    assert worker.batches == [1, 5]


async def test_a_graceful_stop_hands_its_partitions_over_in_order(
    nats_url: str, redis_url: str, stack: contextlib.AsyncExitStack
) -> None:
    settings = nats_settings(nats_url, ack_wait=60.0)  # a hand-over must not wait for it
    bus, _ = await access_bus(stack, settings, "n1")
    logic, inbox = await redis_logic(stack, settings, redis_url)
    leaving, _ = await start_worker(stack, settings, logic, "leaving")
    staying, _ = await start_worker(stack, settings, logic, "staying")
    sender = next(u for u in range(100, 200) if upstream_partition(u, 16) in leaving.partitions())

    publisher = asyncio.create_task(
        publish_in_order(bus, [upstream(n, sender=sender) for n in range(300)])
    )
    await logic.ledger.until(lambda: len(logic.ledger.by_key) >= 50, WAIT)
    await leaving.stop()
    await publisher
    await logic.ledger.until(lambda: len(logic.ledger.by_key) == 300, WAIT)
    assert await sent_order(inbox, 2, sender) == [f"m-{n}" for n in range(300)]
    workers = logic.ledger.workers()
    assert workers["leaving"] > 0 and workers["staying"] > 0, workers
    assert staying.partitions() == set(range(16))


async def test_a_worker_killed_mid_batch_loses_nothing_and_its_successor_keeps_order(
    nats_url: str, redis_url: str, stack: contextlib.AsyncExitStack
) -> None:
    """The doomed worker dies holding a batch; the pin moves to the survivor *before*
    JetStream redelivers that batch, and newer messages reach the survivor first: it
    must wait for the batch (the take-over check), then store everything in order."""
    settings = nats_settings(nats_url, ack_wait=4.0)
    bus, _ = await access_bus(stack, settings, "n1")
    logic, inbox = await redis_logic(stack, settings, redis_url)
    doomed, doomed_logic = await start_worker(stack, settings, logic, "doomed", hang=True)
    await start_worker(stack, settings, logic, "survivor")
    sender = next(u for u in range(100, 200) if upstream_partition(u, 16) in doomed.partitions())
    partition = upstream_partition(sender, 16)

    await publish_in_order(bus, [upstream(n, sender=sender) for n in range(40)])
    await asyncio.wait_for(doomed_logic.entered.wait(), WAIT)  # holds a batch, no ack
    await doomed.stop(grace=0.1)  # the batch never finishes: stop gives up, as a crash
    await unpin(nats_url, settings, partition)  # the pin moves before ack_wait is up
    await publish_in_order(bus, [upstream(n, sender=sender) for n in range(40, 80)])

    await logic.ledger.until(lambda: len(logic.ledger.by_key) == 80, WAIT)
    assert set(logic.ledger.workers()) == {"survivor"}
    assert await sent_order(inbox, 2, sender) == [f"m-{n}" for n in range(80)]
    info = await consumer_info(nats_url, settings, partition)
    assert info["num_ack_pending"] == 0


async def test_a_failed_batch_is_retried_in_place_behind_its_partition(
    nats_url: str, redis_url: str, stack: contextlib.AsyncExitStack
) -> None:
    settings = nats_settings(nats_url)
    bus, _ = await access_bus(stack, settings, "n1")
    logic, inbox = await redis_logic(stack, settings, redis_url)
    assert logic.service is not None
    real = logic.service.process_batch
    failures: list[int] = []

    async def flaky(messages: Sequence[Upstream]) -> None:
        if len(failures) < 3:
            failures.append(len(messages))
            raise RuntimeError("store down")
        await real(messages)

    logic.service.process_batch = flaky  # type: ignore[method-assign]
    await start_worker(stack, settings, logic, "w1", retry_delay=0.05)
    await publish_in_order(bus, [upstream(n, sender=7) for n in range(30)])
    await logic.ledger.until(lambda: len(logic.ledger.by_key) == 30, WAIT)
    assert len(failures) == 3
    assert await sent_order(inbox, 2, 7) == [f"m-{n}" for n in range(30)]
