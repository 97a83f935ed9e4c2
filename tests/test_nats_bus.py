"""The NATS bus against real nats-server processes: JetStream upstream with acks and
de-duplication, Logic workers sharing one durable consumer, request-reply, fan-out, and
what survives a worker crash and a cluster member's SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import nats
import pytest

from imaccess.bus import BusUnavailable, KickEvent, Push, SyncResult, Upstream, UserEvent
from imaccess.client.core import backoff_delay
from imaccess.logic import LogicService, MemoryInbox
from imaccess.logic.worker import LogicWorker, sync_reply
from imaccess.nats_bus import NatsAccessBus, NatsLogicBus, request_broadcast
from imaccess.nats_envelope import (
    decode_pushes,
    decode_upstream,
    encode_pushes,
    encode_upstream,
    msg_id_header,
)
from imaccess.protocol import ChatMessage, Code, Delivery, MsgType, decode_table
from imaccess.settings import MultiDevicePolicy, NatsSettings
from imaccess.storage import Location, MemoryLocationStore

from .nats_servers import NatsCluster

WAIT = 15.0  # generous bound for anything event-driven on a busy machine


# ------------------------------------------------------------------------- helpers


class Changes:
    """Await a predicate over state that synchronous callbacks change."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def notify(self) -> None:
        self._changed.set()

    async def until(self, predicate: Callable[[], bool], timeout: float = WAIT) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


class RecordingSink(Changes):
    """An access node as the bus sees it, keeping what it was handed."""

    def __init__(self) -> None:
        super().__init__()
        self.pushes: list[Push] = []
        self.broadcasts: list[ChatMessage] = []
        self.events: list[UserEvent] = []

    def deliver(self, pushes: Sequence[Push]) -> None:
        self.pushes.extend(pushes)
        self.notify()

    def broadcast(self, message: ChatMessage) -> None:
        self.broadcasts.append(message)
        self.notify()

    def user_event(self, event: UserEvent) -> None:
        self.events.append(event)
        self.notify()


class Ledger(Changes):
    """Which worker processed which dedupe key, across workers."""

    def __init__(self) -> None:
        super().__init__()
        self.by_key: dict[str, list[str]] = defaultdict(list)

    def record(self, worker: str, key: str) -> None:
        self.by_key[key].append(worker)
        self.notify()

    def workers(self) -> Counter[str]:
        return Counter(w for ws in self.by_key.values() for w in ws)


class RecordingLogic:
    """A LogicService that notes each message this worker finished, and can hang."""

    def __init__(
        self, service: LogicService, name: str, ledger: Ledger, hang: bool = False
    ) -> None:
        self.service = service
        self.name = name
        self.ledger = ledger
        self.hang = hang
        self.entered = asyncio.Event()
        self.holding = ""
        self.batches: list[int] = []

    async def process(self, message: Upstream) -> None:
        await self.process_batch([message])

    async def process_batch(self, messages: Sequence[Upstream]) -> None:
        self.entered.set()
        self.holding = messages[0].dedupe_key
        self.batches.append(len(messages))
        if self.hang:
            await asyncio.Event().wait()  # never returns: the worker dies holding them
        await self.service.process_batch(messages)
        for message in messages:
            self.ledger.record(self.name, message.dedupe_key)

    async def handle_sync(self, user_id: int, since_seq: int, limit: int) -> SyncResult:
        return await self.service.handle_sync(user_id, since_seq, limit)

    async def broadcast(
        self, content: str, *, content_type: int = 0, msg_id: str | None = None
    ) -> ChatMessage:
        return await self.service.broadcast(content, content_type=content_type, msg_id=msg_id)


@dataclass
class LogicStack:
    """Logic's state, shared by every worker of a test (one 'database')."""

    inbox: MemoryInbox = field(default_factory=MemoryInbox)
    locations: MemoryLocationStore = field(default_factory=MemoryLocationStore)
    ledger: Ledger = field(default_factory=Ledger)
    service: LogicService | None = None

    async def online(self, node_id: str, *user_ids: int) -> None:
        """The users hold a connection on ``node_id``: Logic routes their copies there."""
        await self.locations.node_alive(node_id, "instance", 3600)
        for user_id in user_ids:
            location = Location(user_id, node_id, user_id * 100, "d", "p", 0.0, "instance")
            await self.locations.claim(location, MultiDevicePolicy.MULTI_DEVICE, 3600)


def nats_settings(url: str, **changes: Any) -> NatsSettings:
    return replace(NatsSettings(url=url, request_timeout=3.0, ping_interval=2.0), **changes)


def upstream(n: int, *, sender: int = 1, to: int = 2, received_at_ms: int = 0) -> Upstream:
    return Upstream(
        msg_id=f"m-{n}",
        from_user=sender,
        to_user=to,
        content=f"hello {n}",
        content_type=0,
        delivery=Delivery.DIRECT,
        group_id=0,
        node_id="n1",
        conn_id=sender * 100,
        received_at_ms=received_at_ms or int(time.time() * 1000),
    )


async def access_bus(
    stack: contextlib.AsyncExitStack, settings: NatsSettings, node_id: str
) -> tuple[NatsAccessBus, RecordingSink]:
    bus = NatsAccessBus(settings)
    sink = RecordingSink()
    await bus.start(node_id, sink)
    stack.push_async_callback(bus.close)
    return bus, sink


async def logic_stack(stack: contextlib.AsyncExitStack, settings: NatsSettings) -> LogicStack:
    logic = LogicStack()
    downstream = NatsLogicBus(settings)
    stack.push_async_callback(downstream.close)
    logic.service = LogicService(logic.inbox, logic.locations, downstream)
    return logic


async def start_worker(
    stack: contextlib.AsyncExitStack,
    settings: NatsSettings,
    logic: LogicStack,
    name: str,
    *,
    hang: bool = False,
    retry_delay: float = 1.0,
    linger: float = 0.0,
) -> tuple[LogicWorker, RecordingLogic]:
    assert logic.service is not None
    recording = RecordingLogic(logic.service, name, logic.ledger, hang)
    worker = LogicWorker(settings, recording, name=name, retry_delay=retry_delay, linger=linger)
    await worker.start()
    stack.push_async_callback(worker.stop, 2.0)
    return worker, recording


async def stored(logic: LogicStack, user_id: int) -> list[ChatMessage]:
    return list((await logic.inbox.since(user_id, 0, 1_000_000)).messages)


# ------------------------------------------------------------------ envelopes alone


def test_upstream_envelope_round_trip() -> None:
    message = replace(upstream(1), group_id=5, delivery=Delivery.GROUP, content="héllo")
    payload, headers = encode_upstream(message)
    assert headers["Nats-Msg-Id"] == "1:m-1"
    assert headers["Im-Received-At"] == str(message.received_at_ms)
    assert decode_upstream(payload, headers) == message
    with pytest.raises(ValueError):
        decode_upstream(b"\x01\x02", headers)


def test_msg_ids_a_header_cannot_carry_are_hashed_not_merged() -> None:
    spaced, broken = msg_id_header("1:a b"), msg_id_header("1:a\nb")
    assert spaced != broken
    assert spaced.startswith("sha256:") and broken.startswith("sha256:")
    assert msg_id_header("1:plain-id") == "1:plain-id"


def test_push_records_round_trip_and_split_at_the_payload_limit() -> None:
    pushes = [Push(2**63 + n, ChatMessage(f"m{n}", 1, 2, "x" * 100, seq=n)) for n in range(10)]
    one = encode_pushes(pushes, 1 << 20)
    assert len(one) == 1 and decode_pushes(one[0]) == pushes
    many = encode_pushes(pushes, 400)
    assert len(many) > 1 and all(len(p) <= 400 for p in many)
    assert [p for payload in many for p in decode_pushes(payload)] == pushes
    with pytest.raises(ValueError):
        decode_pushes(one[0][:-3])


def test_sync_reply_is_cut_to_fit_a_payload() -> None:
    messages = tuple(ChatMessage(f"m{n}", 1, 2, "x" * 1000, seq=n + 1) for n in range(50))
    body = sync_reply(SyncResult(messages, 50, False), 10_000)
    assert len(body) <= 10_000
    response = decode_table(MsgType.SYNC_ACK, body)
    assert 0 < len(response.messages) < 50 and response.has_more  # type: ignore[union-attr]
    assert response.messages == messages[: len(response.messages)]  # type: ignore[union-attr]


# -------------------------------------------------------------------- single server


async def test_upstream_is_acked_and_a_resend_gets_the_first_ack(
    nats_url: str, stack: contextlib.AsyncExitStack
) -> None:
    bus, _ = await access_bus(stack, nats_settings(nats_url), "n1")
    first = upstream(1, received_at_ms=1_000)
    ack = await bus.publish_upstream(first)
    assert (ack.server_seq, ack.timestamp, ack.duplicate) == (1, 1_000, False)

    resent = replace(first, received_at_ms=2_000, conn_id=999)
    again = await bus.publish_upstream(resent)
    assert (again.server_seq, again.timestamp, again.duplicate) == (1, 1_000, True)

    # the key is per sender: another user's m-1 is another message
    other = await bus.publish_upstream(upstream(1, sender=3, received_at_ms=3_000))
    assert (other.server_seq, other.duplicate) == (2, False)
    # ids that differ only in characters a header cannot hold stay distinct
    a = await bus.publish_upstream(replace(first, msg_id="a b"))
    b = await bus.publish_upstream(replace(first, msg_id="a\nb"))
    assert not a.duplicate and not b.duplicate and a.server_seq != b.server_seq


async def test_worker_stores_and_pushes_to_the_node_holding_the_user(
    nats_url: str, stack: contextlib.AsyncExitStack
) -> None:
    settings = nats_settings(nats_url)
    bus, sink = await access_bus(stack, settings, "n1")
    _, other_sink = await access_bus(stack, settings, "n2")
    logic = await logic_stack(stack, settings)
    await logic.online("n1", 1, 2)
    await start_worker(stack, settings, logic, "w1")

    ack = await bus.publish_upstream(upstream(1))
    await sink.until(lambda: len(sink.pushes) == 2)
    by_user = {p.user_id: p.message for p in sink.pushes}
    assert set(by_user) == {1, 2}
    assert by_user[2].msg_id == "m-1" and by_user[2].seq == 1
    assert by_user[2].content == "hello 1" and by_user[2].timestamp == ack.timestamp
    assert by_user[2].from_user == 1 and by_user[1].seq == 1
    assert [m.msg_id for m in await stored(logic, 2)] == ["m-1"]
    assert other_sink.pushes == []  # n2 holds nobody involved


async def test_two_workers_share_the_stream_and_store_each_message_once(
    nats_url: str, stack: contextlib.AsyncExitStack
) -> None:
    settings = nats_settings(nats_url)
    bus, _ = await access_bus(stack, settings, "n1")
    logic = await logic_stack(stack, settings)
    w1, _ = await start_worker(stack, settings, logic, "w1")
    w2, _ = await start_worker(stack, settings, logic, "w2")
    # each asks for its own partitions (rendezvous over the workers they heard)
    assert w1.partitions().isdisjoint(w2.partitions())
    assert w1.partitions() | w2.partitions() == set(range(settings.partitions))

    count = 200  # from 20 senders, so every partition sees traffic
    acks = await asyncio.gather(
        *(bus.publish_upstream(upstream(n, sender=100 + n % 20)) for n in range(count))
    )
    assert sorted(a.server_seq for a in acks) == list(range(1, count + 1))
    await logic.ledger.until(lambda: len(logic.ledger.by_key) == count)

    per_worker = logic.ledger.workers()
    assert per_worker["w1"] > 0 and per_worker["w2"] > 0, per_worker
    assert all(len(ws) == 1 for ws in logic.ledger.by_key.values())  # none twice
    inbox = await stored(logic, 2)
    assert sorted(m.msg_id for m in inbox) == sorted(f"m-{n}" for n in range(count))
    assert [m.seq for m in inbox] == list(range(1, count + 1))


async def test_one_senders_messages_are_stored_in_order_by_several_workers(
    nats_url: str, stack: contextlib.AsyncExitStack
) -> None:
    settings = nats_settings(nats_url)
    bus, _ = await access_bus(stack, settings, "n1")
    logic = await logic_stack(stack, settings)
    for name in ("w1", "w2", "w3"):
        await start_worker(stack, settings, logic, name)
    count = 60
    for n in range(count):  # as a client does: the next once the previous is acked
        await bus.publish_upstream(upstream(n, sender=7))
    await logic.ledger.until(lambda: len(logic.ledger.by_key) == count)
    inbox = await stored(logic, 2)
    assert [m.msg_id for m in inbox] == [f"m-{n}" for n in range(count)]


async def test_sync_is_served_over_request_reply(
    nats_url: str, stack: contextlib.AsyncExitStack
) -> None:
    settings = nats_settings(nats_url)
    bus, _ = await access_bus(stack, settings, "n1")
    with pytest.raises(BusUnavailable):  # no worker: no responders, at once
        await bus.sync(2, 0, 10)

    logic = await logic_stack(stack, settings)
    await start_worker(stack, settings, logic, "w1")
    for n in range(3):
        await bus.publish_upstream(upstream(n))
    await logic.ledger.until(lambda: len(logic.ledger.by_key) == 3)

    everything = await bus.sync(2, 0, 10)
    assert [m.msg_id for m in everything.messages] == ["m-0", "m-1", "m-2"]
    assert [m.seq for m in everything.messages] == [1, 2, 3]
    assert everything.max_seq == 3 and not everything.has_more
    tail = await bus.sync(2, 1, 1)
    assert [m.seq for m in tail.messages] == [2] and tail.has_more
    assert (await bus.sync(99, 0, 10)) == SyncResult((), 0, False)


async def test_broadcast_reaches_every_access_node(
    nats_url: str, stack: contextlib.AsyncExitStack
) -> None:
    settings = nats_settings(nats_url)
    _, sink1 = await access_bus(stack, settings, "n1")
    _, sink2 = await access_bus(stack, settings, "n2")
    logic = await logic_stack(stack, settings)
    await start_worker(stack, settings, logic, "w1")

    msg_id = await request_broadcast(settings, "maintenance at noon")
    for sink in (sink1, sink2):
        await sink.until(lambda s=sink: len(s.broadcasts) == 1)  # type: ignore[misc]
        (message,) = sink.broadcasts
        assert message.msg_id == msg_id and message.content == "maintenance at noon"
        assert message.delivery == Delivery.BROADCAST


async def test_user_events_reach_every_node_on_one_subscription(
    nats_url: str, stack: contextlib.AsyncExitStack
) -> None:
    """Each node hears every user's events on one wildcard subscription and acts on the
    connections it holds (the node's ``user_event``); a login costs no subscription."""
    settings = nats_settings(nats_url)
    bus1, sink1 = await access_bus(stack, settings, "n1")
    bus2, sink2 = await access_bus(stack, settings, "n2")
    kick = KickEvent(7, (700, 2**62 + 1), int(Code.KICKED_NEW_LOGIN), "replaced")
    other = KickEvent(8, (800,), int(Code.KICKED_NEW_LOGIN), "another")

    await bus2.publish_user_event(kick)
    await bus1.publish_user_event(other)
    for sink in (sink1, sink2):
        await sink.until(lambda s=sink: len(s.events) == 2)  # type: ignore[misc]
        assert sink.events == [kick, other]
    nc = bus1._nc
    assert nc is not None
    subjects = [sub.subject for sub in nc._subs.values()]
    assert [s for s in subjects if s.startswith("im.user.")] == ["im.user.*.event"]


async def test_a_worker_that_dies_before_acking_loses_nothing(
    nats_url: str, stack: contextlib.AsyncExitStack
) -> None:
    settings = nats_settings(nats_url, ack_wait=1.0)
    bus, _ = await access_bus(stack, settings, "n1")
    logic = await logic_stack(stack, settings)
    doomed, doomed_logic = await start_worker(stack, settings, logic, "doomed", hang=True)
    doomed_run = asyncio.create_task(doomed.run())

    count = 20
    acks = await asyncio.gather(*(bus.publish_upstream(upstream(n)) for n in range(count)))
    assert all(not a.duplicate for a in acks)
    await asyncio.wait_for(doomed_logic.entered.wait(), WAIT)  # fetched, processing, no ack
    doomed_run.cancel()  # the crash: between fetch and ack
    with pytest.raises(asyncio.CancelledError):
        await doomed_run

    await start_worker(stack, settings, logic, "survivor")
    await logic.ledger.until(lambda: len(logic.ledger.by_key) == count)
    assert set(logic.ledger.workers()) == {"survivor"}
    assert logic.ledger.by_key[doomed_logic.holding] == ["survivor"]  # redelivered to it
    assert sorted(m.msg_id for m in await stored(logic, 2)) == sorted(
        f"m-{n}" for n in range(count)
    )


async def test_a_failing_message_is_redelivered(
    nats_url: str, stack: contextlib.AsyncExitStack
) -> None:
    settings = nats_settings(nats_url)
    bus, _ = await access_bus(stack, settings, "n1")
    logic = await logic_stack(stack, settings)
    assert logic.service is not None
    real_process = logic.service.process_batch
    failures: list[str] = []

    async def flaky(messages: Sequence[Upstream]) -> None:
        if not failures:
            failures.append(messages[0].dedupe_key)
            raise RuntimeError("store down")
        await real_process(messages)

    logic.service.process_batch = flaky  # type: ignore[method-assign]
    await start_worker(stack, settings, logic, "w1", retry_delay=0.1)
    await bus.publish_upstream(upstream(1))
    await logic.ledger.until(lambda: len(logic.ledger.by_key) == 1)
    assert failures == ["1:m-1"]
    assert [m.msg_id for m in await stored(logic, 2)] == ["m-1"]


async def test_core_mode_round_trip(nats_url: str, stack: contextlib.AsyncExitStack) -> None:
    settings = nats_settings(nats_url, upstream="core")
    bus, sink = await access_bus(stack, settings, "n1")
    logic = await logic_stack(stack, settings)
    await logic.online("n1", 2)
    await start_worker(stack, settings, logic, "w1")

    ack = await bus.publish_upstream(upstream(1, received_at_ms=5_000))
    assert (ack.server_seq, ack.timestamp, ack.duplicate) == (0, 5_000, False)
    await sink.until(lambda: len(sink.pushes) == 1)
    assert sink.pushes[0].user_id == 2 and sink.pushes[0].message.seq == 1
    assert [m.msg_id for m in (await bus.sync(2, 0, 10)).messages] == ["m-1"]
    # no stream was created: core mode needs no JetStream
    nc = await nats.connect(nats_url)
    try:
        assert await nc.jetstream().streams_info() == []
    finally:
        await nc.close()


# ------------------------------------------------------------------ 3-node cluster


async def test_cluster_member_killed_while_publishing_loses_no_acked_message(
    nats_cluster: NatsCluster, stack: contextlib.AsyncExitStack
) -> None:
    settings = nats_settings(nats_cluster.url, replicas=3, request_timeout=2.0, ack_wait=5.0)
    bus, _ = await access_bus(stack, settings, "n1")
    logic = await logic_stack(stack, settings)
    await start_worker(stack, settings, logic, "w1", retry_delay=0.2)
    await start_worker(stack, settings, logic, "w2", retry_delay=0.2)

    count, kill_after = 300, 100
    acked: dict[str, int] = {}
    failures: Counter[str] = Counter()
    halfway = asyncio.Event()

    async def publish_all() -> None:
        for n in range(count):
            message = upstream(n)
            for attempt in itertools.count():
                try:
                    ack = await bus.publish_upstream(message)
                    break
                except BusUnavailable as exc:
                    failures[str(exc.__cause__ or exc)[:60]] += 1
                    # what the client SDK does on UNAVAILABLE: back off, same msg_id
                    await asyncio.sleep(backoff_delay(attempt, 0.05, 0.5))
            acked[message.dedupe_key] = ack.server_seq
            if len(acked) == kill_after:
                halfway.set()

    publisher = asyncio.create_task(publish_all())
    await asyncio.wait_for(halfway.wait(), WAIT)
    nc = await nats.connect(nats_cluster.urls)
    try:
        info = await nc.jetstream().stream_info(settings.stream)
    finally:
        await nc.close()
    assert info.cluster is not None and info.cluster.leader is not None
    nats_cluster.kill(nats_cluster.index_of(info.cluster.leader))  # the stream leader

    await asyncio.wait_for(publisher, 60)
    assert len(acked) == count
    assert len(set(acked.values())) == count  # a retried publish was de-duplicated
    await logic.ledger.until(lambda: set(acked) <= set(logic.ledger.by_key), timeout=60)
    inbox = await stored(logic, 2)
    assert sorted(m.msg_id for m in inbox) == sorted(f"m-{n}" for n in range(count))
    assert [m.seq for m in inbox] == list(range(1, count + 1))  # stored once each
    print(f"publish failures during failover: {dict(failures)}")
