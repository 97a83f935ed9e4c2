"""MemoryInbox, LogicService, MemoryLocationStore and MemoryBus, with injected clocks."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imaccess.bus import BusUnavailable, MemoryBus, Push, SyncResult, Upstream, UpstreamAck
from imaccess.logic import LogicService, MemoryInbox
from imaccess.protocol.messages import ChatMessage, Delivery
from imaccess.storage import Location, MemoryLocationStore


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class RecordingDownstream:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[Push]]] = []

    async def push(self, node_id: str, pushes: Sequence[Push]) -> None:
        self.calls.append((node_id, list(pushes)))

    def by_node(self) -> dict[str, list[Push]]:
        out: dict[str, list[Push]] = {}
        for node_id, pushes in self.calls:
            assert node_id not in out, f"node {node_id} pushed more than once"
            out[node_id] = pushes
        return out


def msg(msg_id: str, content: str = "") -> ChatMessage:
    return ChatMessage(msg_id=msg_id, from_user=1, to_user=2, content=content)


def upstream(
    msg_id: str, from_user: int, to_user: int, conn_id: int = 0, content: str = "hi"
) -> Upstream:
    return Upstream(
        msg_id=msg_id,
        from_user=from_user,
        to_user=to_user,
        content=content,
        content_type=1,
        delivery=Delivery.DIRECT,
        group_id=0,
        node_id="A",
        conn_id=conn_id,
        received_at_ms=5,
    )


def loc(user_id: int, node_id: str, conn_id: int) -> Location:
    return Location(user_id, node_id, conn_id, f"dev-{conn_id}", "ios", 0.0)


# ------------------------------------------------------------------ MemoryInbox


async def test_inbox_seq_is_per_user_and_consecutive_from_one() -> None:
    inbox = MemoryInbox()
    seqs = []
    for user in [1, 2, 1, 1, 3, 2]:
        stored = await inbox.append(user, msg(f"x{len(seqs)}"))
        seqs.append((user, stored.seq))
    assert seqs == [(1, 1), (2, 1), (1, 2), (1, 3), (3, 1), (2, 2)]


async def test_inbox_append_returns_the_stored_copy_with_its_seq() -> None:
    inbox = MemoryInbox()
    original = msg("a", "hello")
    stored = await inbox.append(7, original)
    assert stored == ChatMessage(msg_id="a", from_user=1, to_user=2, content="hello", seq=1)
    assert original.seq == 0
    assert (await inbox.since(7, 0, 10)).messages == (stored,)


async def test_since_pages_with_limit_and_has_more() -> None:
    inbox = MemoryInbox()
    for i in range(1, 8):
        await inbox.append(1, msg(f"m{i}"))
    page = await inbox.since(1, 0, 3)
    assert [m.seq for m in page.messages] == [1, 2, 3]
    assert page.max_seq == 7
    assert page.has_more
    page = await inbox.since(1, 3, 3)
    assert [m.seq for m in page.messages] == [4, 5, 6]
    assert page.has_more
    page = await inbox.since(1, 6, 3)
    assert [m.seq for m in page.messages] == [7]
    assert not page.has_more
    assert page.max_seq == 7


async def test_since_exact_fit_has_no_more() -> None:
    inbox = MemoryInbox()
    for i in range(1, 4):
        await inbox.append(1, msg(f"m{i}"))
    page = await inbox.since(1, 0, 3)
    assert [m.seq for m in page.messages] == [1, 2, 3]
    assert not page.has_more


async def test_since_at_or_past_the_end_and_unknown_user() -> None:
    inbox = MemoryInbox()
    await inbox.append(1, msg("a"))
    assert await inbox.since(1, 1, 10) == SyncResult((), 1, False)
    assert await inbox.since(1, 99, 10) == SyncResult((), 1, False)
    assert await inbox.since(2, 0, 10) == SyncResult((), 0, False)


async def test_since_is_per_user() -> None:
    inbox = MemoryInbox()
    await inbox.append(1, msg("for-1"))
    await inbox.append(2, msg("for-2"))
    page = await inbox.since(2, 0, 10)
    assert [m.msg_id for m in page.messages] == ["for-2"]


async def test_inbox_limit_drops_oldest() -> None:
    inbox = MemoryInbox(limit=3)
    for i in range(1, 7):
        await inbox.append(1, msg(f"m{i}"))
    page = await inbox.since(1, 0, 100)
    assert [m.seq for m in page.messages] == [4, 5, 6]
    assert [m.msg_id for m in page.messages] == ["m4", "m5", "m6"]
    assert page.max_seq == 6
    assert not page.has_more
    # a cursor inside the retained window pages from the right place
    assert [m.seq for m in (await inbox.since(1, 4, 100)).messages] == [5, 6]
    page = await inbox.since(1, 1, 2)
    assert [m.seq for m in page.messages] == [4, 5]
    assert page.has_more
    # seqs keep counting after drops
    assert (await inbox.append(1, msg("m7"))).seq == 7


@settings(max_examples=100, deadline=None)
@given(
    limit=st.integers(1, 8),
    users=st.lists(st.integers(1, 3), max_size=40),
    since_seq=st.integers(-2, 45),
    page=st.integers(1, 10),
)
async def test_property_since_matches_a_model(
    limit: int, users: list[int], since_seq: int, page: int
) -> None:
    inbox = MemoryInbox(limit=limit)
    model: dict[int, list[ChatMessage]] = {}
    for i, user in enumerate(users):
        stored = await inbox.append(user, msg(f"m{i}"))
        assert stored.seq == len(model.get(user, [])) + 1
        model.setdefault(user, []).append(stored)
    for user in (1, 2, 3):
        everything = model.get(user, [])
        retained = everything[-limit:]
        newer = [m for m in retained if m.seq > since_seq]
        result = await inbox.since(user, since_seq, page)
        assert result.messages == tuple(newer[:page])
        assert result.has_more == (len(newer) > page)
        assert result.max_seq == len(everything)


# ---------------------------------------------------------------- dedupe window


async def test_accept_records_and_returns_the_earlier_ack() -> None:
    inbox = MemoryInbox()
    first = UpstreamAck(1, 100)
    assert await inbox.accepted("a") is None
    assert await inbox.accept("a", first) is None
    assert await inbox.accepted("a") == first
    assert await inbox.accept("a", UpstreamAck(2, 200)) == first
    assert await inbox.accepted("a") == first


async def test_dedupe_window_expires_with_the_clock() -> None:
    clock = Clock(0.0)
    inbox = MemoryInbox(dedupe_window=10.0, clock=clock)
    await inbox.accept("a", UpstreamAck(1, 1))
    clock.now = 5.0
    await inbox.accept("b", UpstreamAck(2, 2))
    clock.now = 9.999
    assert await inbox.accepted("a") == UpstreamAck(1, 1)
    clock.now = 10.0
    assert await inbox.accepted("a") is None
    assert await inbox.accepted("b") == UpstreamAck(2, 2)
    clock.now = 15.0
    assert await inbox.accepted("b") is None
    # after expiry the id can be accepted afresh
    assert await inbox.accept("a", UpstreamAck(3, 3)) is None
    assert await inbox.accepted("a") == UpstreamAck(3, 3)


async def test_next_server_seq_increments() -> None:
    inbox = MemoryInbox()
    assert [await inbox.next_server_seq() for _ in range(3)] == [1, 2, 3]


# ----------------------------------------------------------------- LogicService


async def make_logic(
    *, inbox: MemoryInbox | None = None, clock: Clock | None = None, sync_batch: int = 200
) -> tuple[LogicService, MemoryInbox, MemoryLocationStore, RecordingDownstream]:
    inbox = inbox or MemoryInbox()
    locations = MemoryLocationStore(clock or Clock())
    down = RecordingDownstream()
    logic = LogicService(inbox, locations, down, sync_batch=sync_batch, clock_ms=lambda: 777)
    return logic, inbox, locations, down


async def test_logic_stores_recipient_and_sender_copies() -> None:
    logic, inbox, _, down = await make_logic()
    ack = await logic.handle_upstream(upstream("m1", 1, 2, conn_id=11, content="hello"))
    assert ack == UpstreamAck(1, 777, duplicate=False)
    want = ChatMessage(
        msg_id="m1",
        from_user=1,
        to_user=2,
        content="hello",
        content_type=1,
        timestamp=777,
        seq=1,
        delivery=Delivery.DIRECT,
    )
    assert (await inbox.since(2, 0, 10)).messages == (want,)
    assert (await inbox.since(1, 0, 10)).messages == (want,)
    assert down.calls == []  # nobody is online


async def test_logic_copies_take_each_owners_own_seq() -> None:
    logic, inbox, _, _ = await make_logic()
    await inbox.append(1, msg("earlier"))  # the sender already has one message
    await logic.handle_upstream(upstream("m1", 1, 2))
    assert [m.seq for m in (await inbox.since(1, 0, 10)).messages] == [1, 2]
    assert [m.seq for m in (await inbox.since(2, 0, 10)).messages] == [1]


async def test_logic_routes_each_copy_once_per_node_grouped() -> None:
    logic, inbox, locations, down = await make_logic()
    await locations.register(loc(1, "A", 11), 60)  # the sending connection
    await locations.register(loc(1, "B", 12), 60)  # the sender's other device
    await locations.register(loc(2, "A", 21), 60)
    await locations.register(loc(2, "A", 22), 60)  # two conns of user 2 on A: one push
    await locations.register(loc(2, "C", 23), 60)
    await locations.register(loc(3, "D", 31), 60)  # a bystander
    await logic.handle_upstream(upstream("m1", 1, 2, conn_id=11))
    to_copy = (await inbox.since(2, 0, 1)).messages[0]
    from_copy = (await inbox.since(1, 0, 1)).messages[0]
    assert down.by_node() == {
        # the sending connection's node gets the sender's copy too: it advances that
        # device's cursor without a Sync
        "A": [Push(2, to_copy), Push(1, from_copy)],
        "B": [Push(1, from_copy)],
        "C": [Push(2, to_copy)],
    }


async def test_logic_self_message_is_stored_once() -> None:
    logic, inbox, locations, down = await make_logic()
    await locations.register(loc(1, "A", 11), 60)
    await locations.register(loc(1, "B", 12), 60)
    ack = await logic.handle_upstream(upstream("note", 1, 1, conn_id=11))
    page = await inbox.since(1, 0, 10)
    assert [m.msg_id for m in page.messages] == ["note"]
    assert page.max_seq == 1
    stored = page.messages[0]
    by_node = down.by_node()
    assert set(by_node) == {"A", "B"}
    assert all(len(p) == 1 and p[0].message == stored for p in by_node.values())
    assert ack.server_seq == 1


async def test_logic_duplicate_returns_the_first_ack_and_routes_nothing() -> None:
    logic, inbox, locations, down = await make_logic()
    await locations.register(loc(2, "A", 21), 60)
    first = await logic.handle_upstream(upstream("m1", 1, 2, content="one"))
    await logic.handle_upstream(upstream("m2", 1, 2))
    calls = len(down.calls)
    again = await logic.handle_upstream(upstream("m1", 1, 2, content="resent"))
    assert again == UpstreamAck(first.server_seq, first.timestamp, duplicate=True)
    assert not first.duplicate
    assert len(down.calls) == calls
    page = await inbox.since(2, 0, 10)
    assert [m.msg_id for m in page.messages] == ["m1", "m2"]
    assert page.messages[0].content == "one"
    assert (await inbox.since(1, 0, 10)).max_seq == 2


async def test_logic_dedupes_per_sender() -> None:
    logic, inbox, _, _ = await make_logic()
    first = await logic.handle_upstream(upstream("same-id", 1, 2))
    other = await logic.handle_upstream(upstream("same-id", 3, 2))
    assert not other.duplicate
    assert other.server_seq != first.server_seq
    assert [m.from_user for m in (await inbox.since(2, 0, 10)).messages] == [1, 3]
    assert (await logic.handle_upstream(upstream("same-id", 3, 2))).duplicate


async def test_logic_server_seq_is_global_across_users() -> None:
    logic, *_ = await make_logic()
    acks = [
        await logic.handle_upstream(upstream("a", 1, 2)),
        await logic.handle_upstream(upstream("b", 3, 4)),
        await logic.handle_upstream(upstream("c", 2, 1)),
    ]
    assert [a.server_seq for a in acks] == [1, 2, 3]


async def test_logic_resend_after_the_dedupe_window_is_new() -> None:
    clock = Clock(0.0)
    logic, inbox, _, _ = await make_logic(inbox=MemoryInbox(dedupe_window=60, clock=clock))
    first = await logic.handle_upstream(upstream("m1", 1, 2))
    clock.now = 59.0
    assert (await logic.handle_upstream(upstream("m1", 1, 2))).duplicate
    clock.now = 60.0
    later = await logic.handle_upstream(upstream("m1", 1, 2))
    assert not later.duplicate
    assert later.server_seq != first.server_seq
    assert (await inbox.since(2, 0, 10)).max_seq == 2


async def test_logic_lost_race_with_a_concurrent_resend_is_a_duplicate() -> None:
    class RacyInbox(MemoryInbox):
        """A concurrent resend gets its accept() in between accepted() and accept()."""

        raced = False

        async def accept(self, key: str, ack: UpstreamAck) -> UpstreamAck | None:
            if not self.raced:
                self.raced = True
                await super().accept(key, UpstreamAck(99, 5))
            return await super().accept(key, ack)

    logic, inbox, locations, down = await make_logic(inbox=RacyInbox())
    await locations.register(loc(2, "A", 21), 60)
    ack = await logic.handle_upstream(upstream("m1", 1, 2))
    assert ack == UpstreamAck(99, 5, duplicate=True)
    assert down.calls == []
    # stored before the msg_id was recorded: at least once, never acked-but-lost
    assert (await inbox.since(2, 0, 10)).max_seq == 1


async def test_logic_does_not_route_to_expired_locations() -> None:
    clock = Clock(0.0)
    logic, _, locations, down = await make_logic(clock=clock)
    await locations.register(loc(2, "A", 21), 10)
    await locations.register(loc(2, "B", 22), 100)
    clock.now = 10.0
    await logic.handle_upstream(upstream("m1", 1, 2))
    assert [node for node, _ in down.calls] == ["B"]


async def test_handle_sync_clamps_the_limit_to_the_batch() -> None:
    logic, inbox, _, _ = await make_logic(sync_batch=3)
    for i in range(5):
        await inbox.append(1, msg(f"m{i}"))
    assert len((await logic.handle_sync(1, 0, 0)).messages) == 3  # 0: the default
    assert len((await logic.handle_sync(1, 0, 2)).messages) == 2
    result = await logic.handle_sync(1, 0, 100)
    assert [m.seq for m in result.messages] == [1, 2, 3]
    assert result.has_more
    assert result.max_seq == 5
    assert [m.seq for m in (await logic.handle_sync(1, 3, 0)).messages] == [4, 5]


# ----------------------------------------------------------- MemoryLocationStore


async def test_locations_register_and_unregister() -> None:
    store = MemoryLocationStore(Clock())
    a, b = loc(1, "A", 11), loc(1, "B", 12)
    await store.register(a, 30)
    await store.register(b, 30)
    await store.register(loc(2, "A", 21), 30)
    assert sorted(x.conn_id for x in await store.locations(1)) == [11, 12]
    await store.unregister(a)
    assert await store.locations(1) == [b]
    await store.unregister(a)  # again: no-op
    await store.unregister(b)
    assert await store.locations(1) == []
    assert [x.conn_id for x in await store.locations(2)] == [21]
    assert await store.locations(99) == []


async def test_location_entries_expire_with_the_clock() -> None:
    clock = Clock(100.0)
    store = MemoryLocationStore(clock)
    short, long = loc(1, "A", 11), loc(1, "B", 12)
    await store.register(short, 30)
    await store.register(long, 60)
    clock.now = 129.9
    assert len(await store.locations(1)) == 2
    clock.now = 130.0
    assert await store.locations(1) == [long]
    clock.now = 160.0
    assert await store.locations(1) == []


async def test_location_refresh_extends_the_expiry() -> None:
    clock = Clock(0.0)
    store = MemoryLocationStore(clock)
    a = loc(1, "A", 11)
    await store.register(a, 30)
    clock.now = 20.0
    await store.refresh([a], 30)
    clock.now = 45.0
    assert await store.locations(1) == [a]
    clock.now = 50.0
    assert await store.locations(1) == []


async def test_location_close_forgets_everything() -> None:
    store = MemoryLocationStore(Clock())
    await store.register(loc(1, "A", 11), 30)
    await store.close()
    assert await store.locations(1) == []


# -------------------------------------------------------------------- MemoryBus


async def test_bus_without_logic_is_unavailable() -> None:
    bus = MemoryBus()
    with pytest.raises(BusUnavailable):
        await bus.publish_upstream(upstream("m1", 1, 2))
    with pytest.raises(BusUnavailable):
        await bus.sync(1, 0, 10)


async def test_bus_forwards_to_logic_and_pushes_to_started_nodes() -> None:
    bus = MemoryBus()
    inbox = MemoryInbox()
    locations = MemoryLocationStore(Clock())
    logic = LogicService(inbox, locations, bus, clock_ms=lambda: 5)
    bus.attach_logic(logic)
    received: list[list[Push]] = []
    await bus.start("A", lambda pushes: received.append(list(pushes)))
    await locations.register(loc(2, "A", 21), 60)
    await locations.register(loc(2, "Z", 22), 60)  # a node that never started: dropped
    ack = await bus.publish_upstream(upstream("m1", 1, 2))
    assert ack == UpstreamAck(1, 5)
    stored = (await bus.sync(2, 0, 10)).messages
    assert received == [[Push(2, stored[0])]]
    await bus.close()
    await bus.publish_upstream(upstream("m2", 1, 2))
    assert len(received) == 1
