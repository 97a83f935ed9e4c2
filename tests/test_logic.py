"""MemoryInbox, LogicService, MemoryLocationStore and MemoryBus, with injected clocks."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imaccess.bus import (
    BusUnavailable,
    KickEvent,
    MemoryBus,
    Push,
    SyncResult,
    Upstream,
    UpstreamAck,
    UserEvent,
)
from imaccess.logic import LogicService, MemoryInbox
from imaccess.protocol.messages import ChatMessage, Delivery
from imaccess.settings import MultiDevicePolicy
from imaccess.storage import Location, MemoryLocationStore

SINGLE = MultiDevicePolicy.SINGLE_DEVICE
MULTI = MultiDevicePolicy.MULTI_DEVICE
PER_PLATFORM = MultiDevicePolicy.SINGLE_PER_PLATFORM


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class RecordingDownstream:
    """Logic's view of the access nodes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[Push]]] = []
        self.broadcasts: list[ChatMessage] = []

    async def push(self, node_id: str, pushes: Sequence[Push]) -> None:
        self.calls.append((node_id, list(pushes)))

    async def broadcast(self, message: ChatMessage) -> None:
        self.broadcasts.append(message)

    def by_node(self) -> dict[str, list[Push]]:
        out: dict[str, list[Push]] = {}
        for node_id, pushes in self.calls:
            assert node_id not in out, f"node {node_id} pushed more than once"
            out[node_id] = pushes
        return out


class RecordingSink:
    """An access node, as the bus delivers to it."""

    def __init__(self) -> None:
        self.delivered: list[list[Push]] = []
        self.broadcasts: list[ChatMessage] = []
        self.events: list[UserEvent] = []

    def deliver(self, pushes: Sequence[Push]) -> None:
        self.delivered.append(list(pushes))

    def broadcast(self, message: ChatMessage) -> None:
        self.broadcasts.append(message)

    def user_event(self, event: UserEvent) -> None:
        self.events.append(event)


class FakeLogic:
    """Records what the bus hands over; fails the first ``fail`` calls to ``process``."""

    def __init__(self, *, fail: int = 0) -> None:
        self.processed: list[Upstream] = []
        self.syncs: list[tuple[int, int, int]] = []
        self.fail = fail

    async def process(self, message: Upstream) -> None:
        self.processed.append(message)
        if self.fail:
            self.fail -= 1
            raise RuntimeError("store down")

    async def handle_sync(self, user_id: int, since_seq: int, limit: int) -> SyncResult:
        self.syncs.append((user_id, since_seq, limit))
        return SyncResult((), 0, False)


def msg(msg_id: str, content: str = "") -> ChatMessage:
    return ChatMessage(msg_id=msg_id, from_user=1, to_user=2, content=content)


def upstream(
    msg_id: str,
    from_user: int,
    to_user: int,
    conn_id: int = 0,
    content: str = "hi",
    received_at_ms: int = 5,
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
        received_at_ms=received_at_ms,
    )


def instance_of(node_id: str) -> str:
    return f"{node_id}-run1"


def loc(
    user_id: int,
    node_id: str,
    conn_id: int,
    *,
    device_id: str = "",
    platform: str = "ios",
    login_time: float = 0.0,
    instance: str | None = None,
) -> Location:
    return Location(
        user_id,
        node_id,
        conn_id,
        device_id or f"dev-{conn_id}",
        platform,
        login_time,
        instance_of(node_id) if instance is None else instance,
    )


async def alive(store: MemoryLocationStore, *node_ids: str, ttl: float = 1e9) -> None:
    for node_id in node_ids:
        await store.node_alive(node_id, instance_of(node_id), ttl)


async def claim_all(store: MemoryLocationStore, *locations: Location) -> None:
    """Register locations that never replace each other (distinct devices, multi_device)."""
    for location in locations:
        assert await store.claim(location, MULTI, 1e9) == []


# ------------------------------------------------------------------ MemoryInbox


async def test_inbox_seq_is_per_user_and_consecutive_from_one() -> None:
    inbox = MemoryInbox()
    seqs = []
    for i, user in enumerate([1, 2, 1, 1, 3, 2]):
        stored, new = await inbox.append(user, msg(f"x{i}"), f"1:x{i}")
        assert new
        seqs.append((user, stored.seq))
    assert seqs == [(1, 1), (2, 1), (1, 2), (1, 3), (3, 1), (2, 2)]


async def test_inbox_append_returns_the_stored_copy_with_its_seq() -> None:
    inbox = MemoryInbox()
    original = msg("a", "hello")
    stored, new = await inbox.append(7, original, "1:a")
    assert new
    assert stored == ChatMessage(msg_id="a", from_user=1, to_user=2, content="hello", seq=1)
    assert original.seq == 0
    assert (await inbox.since(7, 0, 10)).messages == (stored,)


async def test_inbox_append_is_idempotent_per_key() -> None:
    inbox = MemoryInbox()
    first, new = await inbox.append(1, msg("a", "one"), "1:a")
    assert new
    again, new = await inbox.append(1, msg("a", "resent"), "1:a")
    assert not new
    assert again == first  # the first stored copy, not the resend
    assert again.content == "one"
    page = await inbox.since(1, 0, 10)
    assert page.messages == (first,)
    assert page.max_seq == 1
    # the seq did not move: the next new key gets 2
    stored, new = await inbox.append(1, msg("b"), "1:b")
    assert (stored.seq, new) == (2, True)


async def test_inbox_keys_are_per_user() -> None:
    inbox = MemoryInbox()
    for_2, new_2 = await inbox.append(2, msg("a"), "1:a")
    for_1, new_1 = await inbox.append(1, msg("a"), "1:a")
    assert new_1
    assert new_2
    assert (await inbox.since(1, 0, 10)).messages == (for_1,)
    assert (await inbox.since(2, 0, 10)).messages == (for_2,)
    # and within one user, the key (not the msg_id) decides
    other_sender, new = await inbox.append(2, msg("a"), "3:a")
    assert new
    assert other_sender.seq == 2


async def test_since_pages_with_limit_and_has_more() -> None:
    inbox = MemoryInbox()
    for i in range(1, 8):
        await inbox.append(1, msg(f"m{i}"), f"k{i}")
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
        await inbox.append(1, msg(f"m{i}"), f"k{i}")
    page = await inbox.since(1, 0, 3)
    assert [m.seq for m in page.messages] == [1, 2, 3]
    assert not page.has_more


async def test_since_at_or_past_the_end_and_unknown_user() -> None:
    inbox = MemoryInbox()
    await inbox.append(1, msg("a"), "1:a")
    assert await inbox.since(1, 1, 10) == SyncResult((), 1, False)
    assert await inbox.since(1, 99, 10) == SyncResult((), 1, False)
    assert await inbox.since(2, 0, 10) == SyncResult((), 0, False)


async def test_since_is_per_user() -> None:
    inbox = MemoryInbox()
    await inbox.append(1, msg("for-1"), "k1")
    await inbox.append(2, msg("for-2"), "k2")
    page = await inbox.since(2, 0, 10)
    assert [m.msg_id for m in page.messages] == ["for-2"]


async def test_inbox_limit_drops_oldest() -> None:
    inbox = MemoryInbox(limit=3)
    for i in range(1, 7):
        await inbox.append(1, msg(f"m{i}"), f"k{i}")
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
    stored, _ = await inbox.append(1, msg("m7"), "k7")
    assert stored.seq == 7


async def test_inbox_limit_forgets_the_dropped_key() -> None:
    inbox = MemoryInbox(limit=2)
    for key in ("k1", "k2", "k3"):  # k1 is dropped
        await inbox.append(1, msg(key), key)
    # a retained key is still a duplicate
    kept, new = await inbox.append(1, msg("k3"), "k3")
    assert (kept.seq, new) == (3, False)
    # the dropped key is not: it is stored anew with the next seq
    again, new = await inbox.append(1, msg("k1", "again"), "k1")
    assert new
    assert again.seq == 4
    assert again.content == "again"
    page = await inbox.since(1, 0, 10)
    assert [(m.msg_id, m.seq) for m in page.messages] == [("k3", 3), ("k1", 4)]
    # that append dropped k2, so its key is forgotten too; k1 is remembered again
    assert (await inbox.append(1, msg("k1"), "k1"))[1] is False
    assert (await inbox.append(1, msg("k2"), "k2"))[0].seq == 5


async def test_inbox_close_forgets_everything() -> None:
    inbox = MemoryInbox()
    await inbox.append(1, msg("a"), "1:a")
    await inbox.close()
    assert await inbox.since(1, 0, 10) == SyncResult((), 0, False)
    stored, new = await inbox.append(1, msg("a"), "1:a")
    assert (stored.seq, new) == (1, True)


@settings(max_examples=100, deadline=None)
@given(
    limit=st.integers(1, 8),
    appends=st.lists(st.tuples(st.integers(1, 3), st.integers(0, 6)), max_size=40),
    since_seq=st.integers(-2, 45),
    page=st.integers(1, 10),
)
async def test_property_inbox_matches_a_model(
    limit: int, appends: list[tuple[int, int]], since_seq: int, page: int
) -> None:
    """Idempotent per (user, key) while the key is retained; drops forget keys."""
    inbox = MemoryInbox(limit=limit)
    model: dict[int, list[tuple[str, ChatMessage]]] = {}  # retained (key, copy) per user
    top: dict[int, int] = {}
    for i, (user, k) in enumerate(appends):
        key = f"key{k}"
        stored, new = await inbox.append(user, msg(f"m{i}"), key)
        retained = model.setdefault(user, [])
        earlier = [m for kk, m in retained if kk == key]
        if earlier:
            assert (stored, new) == (earlier[0], False)
            continue
        top[user] = top.get(user, 0) + 1
        assert new
        assert stored.seq == top[user]
        assert stored.msg_id == f"m{i}"
        retained.append((key, stored))
        del retained[:-limit]
    for user in (1, 2, 3):
        newer = [m for _, m in model.get(user, []) if m.seq > since_seq]
        result = await inbox.since(user, since_seq, page)
        assert result.messages == tuple(newer[:page])
        assert result.has_more == (len(newer) > page)
        assert result.max_seq == top.get(user, 0)


# ----------------------------------------------------------------- LogicService


def make_logic(
    *, clock: Clock | None = None, sync_batch: int = 200, inbox_limit: int = 10_000
) -> tuple[LogicService, MemoryInbox, MemoryLocationStore, RecordingDownstream]:
    inbox = MemoryInbox(limit=inbox_limit)
    locations = MemoryLocationStore(clock or Clock())
    down = RecordingDownstream()
    logic = LogicService(inbox, locations, down, sync_batch=sync_batch, clock_ms=lambda: 777)
    return logic, inbox, locations, down


async def test_logic_stores_recipient_and_sender_copies() -> None:
    logic, inbox, _, down = make_logic()
    await logic.process(upstream("m1", 1, 2, conn_id=11, content="hello", received_at_ms=42))
    want = ChatMessage(
        msg_id="m1",
        from_user=1,
        to_user=2,
        content="hello",
        content_type=1,
        timestamp=42,  # when the node received it, not Logic's clock
        seq=1,
        delivery=Delivery.DIRECT,
    )
    assert (await inbox.since(2, 0, 10)).messages == (want,)
    assert (await inbox.since(1, 0, 10)).messages == (want,)
    assert down.calls == []  # nobody is online
    assert down.broadcasts == []


async def test_logic_copies_take_each_owners_own_seq() -> None:
    logic, inbox, _, _ = make_logic()
    await inbox.append(1, msg("earlier"), "9:earlier")  # the sender already has one message
    await logic.process(upstream("m1", 1, 2))
    assert [m.seq for m in (await inbox.since(1, 0, 10)).messages] == [1, 2]
    assert [m.seq for m in (await inbox.since(2, 0, 10)).messages] == [1]


async def test_logic_routes_each_copy_once_per_node_grouped() -> None:
    logic, inbox, locations, down = make_logic()
    await alive(locations, "A", "B", "C", "D")
    await claim_all(
        locations,
        loc(1, "A", 11),  # the sending connection
        loc(1, "B", 12),  # the sender's other device
        loc(2, "A", 21),
        loc(2, "A", 22),  # two conns of user 2 on A: one push
        loc(2, "C", 23),
        loc(3, "D", 31),  # a bystander
    )
    await logic.process(upstream("m1", 1, 2, conn_id=11))
    to_copy = (await inbox.since(2, 0, 1)).messages[0]
    from_copy = (await inbox.since(1, 0, 1)).messages[0]
    assert down.by_node() == {
        # the sending connection's node gets the sender's copy too: it advances that
        # device's cursor without a Sync
        "A": [Push(2, to_copy), Push(1, from_copy)],
        "B": [Push(1, from_copy)],
        "C": [Push(2, to_copy)],
    }


async def test_logic_redelivery_stores_once_and_routes_again() -> None:
    logic, inbox, locations, down = make_logic()
    await alive(locations, "A", "B")
    await claim_all(locations, loc(1, "A", 11), loc(2, "B", 21))
    await logic.process(upstream("m1", 1, 2, content="one"))
    first = down.by_node()
    down.calls.clear()
    await logic.process(upstream("m1", 1, 2, content="redelivered"))
    # routed again, with the copies stored the first time
    assert down.by_node() == first
    assert first["B"][0].message.content == "one"
    for user in (1, 2):
        page = await inbox.since(user, 0, 10)
        assert [m.msg_id for m in page.messages] == ["m1"]
        assert page.max_seq == 1


async def test_logic_redelivery_completes_a_half_stored_message() -> None:
    """A crash between the two appends: the redelivery stores only the missing copy."""
    logic, inbox, _, _ = make_logic()
    recipient_copy, _ = await inbox.append(
        2,
        ChatMessage("m1", 1, 2, "hi", 1, timestamp=5, delivery=Delivery.DIRECT),
        "1:m1",
    )
    await logic.process(upstream("m1", 1, 2))
    assert (await inbox.since(2, 0, 10)).messages == (recipient_copy,)
    assert [m.msg_id for m in (await inbox.since(1, 0, 10)).messages] == ["m1"]


async def test_logic_self_message_is_stored_once() -> None:
    logic, inbox, locations, down = make_logic()
    await alive(locations, "A", "B")
    await claim_all(locations, loc(1, "A", 11), loc(1, "B", 12))
    await logic.process(upstream("note", 1, 1, conn_id=11))
    page = await inbox.since(1, 0, 10)
    assert [m.msg_id for m in page.messages] == ["note"]
    assert page.max_seq == 1
    stored = page.messages[0]
    assert down.by_node() == {"A": [Push(1, stored)], "B": [Push(1, stored)]}


async def test_logic_same_msg_id_from_different_senders_are_different_messages() -> None:
    logic, inbox, _, _ = make_logic()
    await logic.process(upstream("same-id", 1, 2))
    await logic.process(upstream("same-id", 3, 2))
    assert [m.from_user for m in (await inbox.since(2, 0, 10)).messages] == [1, 3]


async def test_logic_does_not_route_to_expired_locations() -> None:
    clock = Clock(0.0)
    logic, _, locations, down = make_logic(clock=clock)
    await alive(locations, "A", "B")
    await locations.claim(loc(2, "A", 21), MULTI, 10)
    await locations.claim(loc(2, "B", 22), MULTI, 100)
    clock.now = 10.0
    await logic.process(upstream("m1", 1, 2))
    assert [node for node, _ in down.calls] == ["B"]


async def test_logic_does_not_route_to_dead_nodes() -> None:
    clock = Clock(0.0)
    logic, _, locations, down = make_logic(clock=clock)
    await locations.node_alive("A", instance_of("A"), 10)
    await locations.node_alive("B", instance_of("B"), 100)
    await claim_all(locations, loc(2, "A", 21), loc(2, "B", 22), loc(2, "Z", 23))  # Z: never
    clock.now = 10.0
    await logic.process(upstream("m1", 1, 2))
    assert [node for node, _ in down.calls] == ["B"]


async def test_logic_broadcast_is_unstored_seq_zero_through_downstream_broadcast() -> None:
    logic, inbox, locations, down = make_logic()
    await alive(locations, "A")
    await claim_all(locations, loc(1, "A", 11), loc(2, "A", 21))
    sent = await logic.broadcast("maintenance at noon", content_type=3, msg_id="bc-1")
    assert sent == ChatMessage(
        msg_id="bc-1",
        content="maintenance at noon",
        content_type=3,
        timestamp=777,
        seq=0,
        delivery=Delivery.BROADCAST,
    )
    assert down.broadcasts == [sent]
    assert down.calls == []  # not routed per user
    for user in (0, 1, 2):
        assert await inbox.since(user, 0, 10) == SyncResult((), 0, False)


async def test_logic_broadcast_picks_a_fresh_msg_id() -> None:
    logic, _, _, down = make_logic()
    one = await logic.broadcast("a")
    two = await logic.broadcast("b")
    assert one.msg_id
    assert two.msg_id
    assert one.msg_id != two.msg_id
    assert [m.content for m in down.broadcasts] == ["a", "b"]


async def test_handle_sync_clamps_the_limit_to_the_batch() -> None:
    logic, inbox, _, _ = make_logic(sync_batch=3)
    for i in range(5):
        await inbox.append(1, msg(f"m{i}"), f"k{i}")
    assert len((await logic.handle_sync(1, 0, 0)).messages) == 3  # 0: the default
    assert len((await logic.handle_sync(1, 0, -1)).messages) == 3
    assert len((await logic.handle_sync(1, 0, 2)).messages) == 2
    result = await logic.handle_sync(1, 0, 100)
    assert [m.seq for m in result.messages] == [1, 2, 3]
    assert result.has_more
    assert result.max_seq == 5
    assert [m.seq for m in (await logic.handle_sync(1, 3, 0)).messages] == [4, 5]


# ----------------------------------------------------------- MemoryLocationStore


async def test_first_claim_replaces_nothing() -> None:
    store = MemoryLocationStore(Clock())
    await alive(store, "A")
    a = loc(1, "A", 11)
    assert await store.claim(a, SINGLE, 30) == []
    assert await store.locations(1) == [a]


@pytest.mark.parametrize(
    ("policy", "replaced"),
    [(SINGLE, {11, 12, 13}), (PER_PLATFORM, {11, 12}), (MULTI, {11})],
)
async def test_claim_removes_and_returns_what_the_policy_replaces(
    policy: MultiDevicePolicy, replaced: set[int]
) -> None:
    store = MemoryLocationStore(Clock())
    await alive(store, "A", "B")
    existing = [
        loc(1, "A", 11, device_id="phone", platform="ios"),
        loc(1, "B", 12, device_id="tablet", platform="IOS"),
        loc(1, "B", 13, device_id="laptop", platform="web"),
    ]
    bystander = loc(2, "A", 21, device_id="phone", platform="ios")
    await claim_all(store, *existing, bystander)
    new = loc(1, "B", 14, device_id="phone", platform="ios")
    gone = await store.claim(new, policy, 30)
    assert {x.conn_id for x in gone} == replaced
    assert all(x in existing for x in gone)  # the stored entries, as registered
    left = {x.conn_id for x in await store.locations(1)}
    assert left == {11, 12, 13, 14} - replaced
    assert await store.locations(2) == [bystander]


@pytest.mark.parametrize("policy", list(MultiDevicePolicy))
async def test_claimant_wins_whatever_its_login_time(policy: MultiDevicePolicy) -> None:
    store = MemoryLocationStore(Clock())
    await alive(store, "A")
    later_stamp = loc(1, "A", 11, device_id="phone", login_time=100.0)
    await store.claim(later_stamp, policy, 30)
    claimant = loc(1, "A", 12, device_id="phone", login_time=1.0)
    assert await store.claim(claimant, policy, 30) == [later_stamp]
    assert await store.locations(1) == [claimant]


async def test_reclaiming_the_same_connection_does_not_replace_itself() -> None:
    store = MemoryLocationStore(Clock())
    await alive(store, "A")
    a = loc(1, "A", 11)
    await store.claim(a, SINGLE, 30)
    assert await store.claim(a, SINGLE, 30) == []
    assert await store.locations(1) == [a]


async def test_claim_does_not_return_expired_entries() -> None:
    clock = Clock(0.0)
    store = MemoryLocationStore(clock)
    await alive(store, "A")
    await store.claim(loc(1, "A", 11), SINGLE, 10)
    clock.now = 10.0
    new = loc(1, "A", 12)
    assert await store.claim(new, SINGLE, 10) == []
    assert await store.locations(1) == [new]


async def test_concurrent_single_device_claims_leave_exactly_one() -> None:
    store = MemoryLocationStore(Clock())
    await alive(store, "A", "B")
    a = loc(1, "A", 11, device_id="phone", login_time=5.0)
    b = loc(1, "B", 21, device_id="laptop", login_time=5.0)
    got_a, got_b = await asyncio.gather(store.claim(a, SINGLE, 30), store.claim(b, SINGLE, 30))
    left = await store.locations(1)
    assert len(left) == 1
    survivor = left[0]
    loser = a if survivor == b else b
    # the survivor's claim reported the loser, so its node can be told to kick it
    assert (got_a, got_b) == (([], [a]) if survivor == b else ([b], []))
    assert loser not in left


async def test_locations_claim_and_unregister() -> None:
    store = MemoryLocationStore(Clock())
    await alive(store, "A", "B")
    a, b = loc(1, "A", 11), loc(1, "B", 12)
    await claim_all(store, a, b, loc(2, "A", 21))
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
    await alive(store, "A", "B")
    short, long = loc(1, "A", 11), loc(1, "B", 12)
    await store.claim(short, MULTI, 30)
    await store.claim(long, MULTI, 60)
    clock.now = 129.9
    assert len(await store.locations(1)) == 2
    clock.now = 130.0
    assert await store.locations(1) == [long]
    clock.now = 160.0
    assert await store.locations(1) == []


async def test_location_refresh_extends_the_expiry() -> None:
    clock = Clock(0.0)
    store = MemoryLocationStore(clock)
    await alive(store, "A")
    a = loc(1, "A", 11)
    await store.claim(a, MULTI, 30)
    clock.now = 20.0
    await store.refresh([a], 30)
    clock.now = 45.0
    assert await store.locations(1) == [a]
    clock.now = 50.0
    assert await store.locations(1) == []


async def test_refresh_does_not_resurrect_unregistered_or_replaced_entries() -> None:
    store = MemoryLocationStore(Clock())
    await alive(store, "A")
    gone, replaced = loc(1, "A", 11, device_id="phone"), loc(2, "A", 21)
    await claim_all(store, gone, replaced)
    await store.unregister(gone)
    new = loc(2, "A", 22)
    assert await store.claim(new, SINGLE, 30) == [replaced]
    await store.refresh([gone, replaced, new], 30)
    assert await store.locations(1) == []
    assert await store.locations(2) == [new]
    await store.refresh([loc(3, "A", 31)], 30)  # never registered at all
    assert await store.locations(3) == []


async def test_refresh_does_not_resurrect_an_expired_entry() -> None:
    clock = Clock(0.0)
    store = MemoryLocationStore(clock)
    await alive(store, "A")
    a = loc(1, "A", 11)
    await store.claim(a, MULTI, 10)
    clock.now = 15.0  # a lapsed without being read
    await store.refresh([a], 10)
    assert await store.locations(1) == []


async def test_locations_only_on_live_nodes() -> None:
    clock = Clock(0.0)
    store = MemoryLocationStore(clock)
    a, b = loc(1, "A", 11), loc(1, "B", 12)
    await claim_all(store, a, b)
    assert await store.locations(1) == []  # no node has announced itself
    await store.node_alive("A", instance_of("A"), 10)
    assert await store.locations(1) == [a]
    await store.node_alive("B", instance_of("B"), 20)
    assert await store.locations(1) == [a, b]
    clock.now = 10.0  # A stopped renewing
    assert await store.locations(1) == [b]
    await store.node_alive("A", instance_of("A"), 10)  # A renews: its entries return
    assert await store.locations(1) == [a, b]


async def test_restarted_node_hides_the_old_instances_entries() -> None:
    store = MemoryLocationStore(Clock())
    old = loc(1, "A", 11, instance="A-run1")
    await store.claim(old, MULTI, 30)
    await store.node_alive("A", "A-run1", 30)
    assert await store.locations(1) == [old]
    await store.node_alive("A", "A-run2", 30)  # restarted without cleaning up
    assert await store.locations(1) == []
    new = loc(1, "A", 12, instance="A-run2")
    await store.claim(new, MULTI, 30)
    assert await store.locations(1) == [new]


async def test_node_gone_hides_its_entries_at_once() -> None:
    store = MemoryLocationStore(Clock())
    await alive(store, "A", "B")
    a, b = loc(1, "A", 11), loc(1, "B", 12)
    await claim_all(store, a, b)
    await store.node_gone("A", instance_of("A"))
    assert await store.locations(1) == [b]
    await store.node_gone("A", instance_of("A"))  # again: no-op


async def test_node_gone_of_an_old_instance_leaves_the_new_one_alive() -> None:
    store = MemoryLocationStore(Clock())
    await store.node_alive("A", "A-run1", 30)
    await store.node_alive("A", "A-run2", 30)  # restarted
    new = loc(1, "A", 11, instance="A-run2")
    await store.claim(new, MULTI, 30)
    await store.node_gone("A", "A-run1")  # the old process's late shutdown
    assert await store.locations(1) == [new]
    await store.node_gone("Z", "Z-run1")  # unknown node: no-op


async def test_node_gone_of_an_unknown_node_with_an_empty_instance() -> None:
    store = MemoryLocationStore(Clock())
    await store.node_gone("Z", "")  # no KeyError: an unknown node is simply not there
    await alive(store, "A")
    await store.node_gone("Z", "")
    await store.claim(loc(1, "A", 11), MULTI, 30)
    assert [x.conn_id for x in await store.locations(1)] == [11]


async def test_location_close_forgets_everything() -> None:
    store = MemoryLocationStore(Clock())
    await alive(store, "A")
    await store.claim(loc(1, "A", 11), MULTI, 30)
    await store.close()
    assert await store.locations(1) == []


# -------------------------------------------------------------------- MemoryBus


async def test_bus_without_logic_is_unavailable() -> None:
    bus = MemoryBus()
    with pytest.raises(BusUnavailable):
        await bus.publish_upstream(upstream("m1", 1, 2))
    with pytest.raises(BusUnavailable):
        await bus.sync(1, 0, 10)
    logic = FakeLogic()
    bus.attach_logic(logic)
    # the refused publish neither recorded the msg_id nor used up a seq
    assert await bus.publish_upstream(upstream("m1", 1, 2)) == UpstreamAck(1, 5)
    assert len(logic.processed) == 1


async def test_bus_acks_after_processing_with_a_global_seq_and_the_receive_time() -> None:
    bus = MemoryBus()
    logic = FakeLogic()
    bus.attach_logic(logic)
    sent = [
        upstream("a", 1, 2, received_at_ms=100),
        upstream("b", 3, 4, received_at_ms=90),
        upstream("a", 2, 1, received_at_ms=110),  # same msg_id, another sender
    ]
    acks = [await bus.publish_upstream(m) for m in sent]
    assert acks == [UpstreamAck(1, 100), UpstreamAck(2, 90), UpstreamAck(3, 110)]
    assert logic.processed == sent


async def test_bus_duplicate_gets_the_first_ack_and_is_not_processed_again() -> None:
    bus = MemoryBus(clock=Clock())
    logic = FakeLogic()
    bus.attach_logic(logic)
    first = await bus.publish_upstream(upstream("m1", 1, 2, content="one", received_at_ms=7))
    await bus.publish_upstream(upstream("m2", 1, 2))
    again = await bus.publish_upstream(upstream("m1", 1, 2, content="resent", received_at_ms=9))
    assert not first.duplicate
    assert again == UpstreamAck(first.server_seq, first.timestamp, duplicate=True)
    assert again == UpstreamAck(1, 7, duplicate=True)
    assert [m.msg_id for m in logic.processed] == ["m1", "m2"]
    # a duplicate takes no seq
    assert (await bus.publish_upstream(upstream("m3", 1, 2))).server_seq == 3


async def test_bus_dedupe_window_expires_with_the_clock() -> None:
    clock = Clock(0.0)
    bus = MemoryBus(dedupe_window=60.0, clock=clock)
    logic = FakeLogic()
    bus.attach_logic(logic)
    first = await bus.publish_upstream(upstream("a", 1, 2))
    clock.now = 30.0
    second = await bus.publish_upstream(upstream("b", 1, 2))
    clock.now = 59.999
    assert (await bus.publish_upstream(upstream("a", 1, 2))).duplicate
    clock.now = 60.0
    later = await bus.publish_upstream(upstream("a", 1, 2))
    assert not later.duplicate
    assert later.server_seq == 3
    # "b" is still inside its own window, and the new "a" has a fresh one
    clock.now = 89.999
    assert await bus.publish_upstream(upstream("b", 1, 2)) == UpstreamAck(
        second.server_seq, second.timestamp, duplicate=True
    )
    assert (await bus.publish_upstream(upstream("a", 1, 2))).server_seq == later.server_seq
    clock.now = 90.0
    assert not (await bus.publish_upstream(upstream("b", 1, 2))).duplicate
    assert [m.msg_id for m in logic.processed] == ["a", "b", "a", "b"]
    assert first.server_seq == 1


async def test_bus_failed_processing_leaves_the_msg_id_unrecorded() -> None:
    """At least once: a resend of a message Logic failed on is processed again."""
    bus = MemoryBus(clock=Clock())
    logic = FakeLogic(fail=1)
    bus.attach_logic(logic)
    with pytest.raises(RuntimeError, match="store down"):
        await bus.publish_upstream(upstream("m1", 1, 2))
    retry = await bus.publish_upstream(upstream("m1", 1, 2))
    assert not retry.duplicate
    assert len(logic.processed) == 2
    # now it is recorded: the next resend is a duplicate with the retry's ack
    again = await bus.publish_upstream(upstream("m1", 1, 2))
    assert again == UpstreamAck(retry.server_seq, retry.timestamp, duplicate=True)
    assert len(logic.processed) == 2


async def test_bus_resend_while_the_first_is_in_flight_gets_the_first_ack() -> None:
    entered = asyncio.Event()
    gate = asyncio.Event()

    class SlowLogic(FakeLogic):
        async def process(self, message: Upstream) -> None:
            await super().process(message)
            entered.set()
            await gate.wait()

    async def release() -> None:
        gate.set()

    bus = MemoryBus(clock=Clock())
    bus.attach_logic(SlowLogic())
    first = asyncio.create_task(bus.publish_upstream(upstream("m1", 1, 2)))
    await entered.wait()
    resend = asyncio.create_task(bus.publish_upstream(upstream("m1", 1, 2)))
    opener = asyncio.create_task(release())  # runs after the resend's first step
    a, b, _ = await asyncio.gather(first, resend, opener)
    assert (a.server_seq, a.duplicate) == (1, False)
    assert b == UpstreamAck(1, a.timestamp, duplicate=True)


async def test_bus_sync_goes_to_logic() -> None:
    bus = MemoryBus()
    logic = FakeLogic()
    bus.attach_logic(logic)
    assert await bus.sync(7, 3, 50) == SyncResult((), 0, False)
    assert logic.syncs == [(7, 3, 50)]


async def test_bus_fans_out_to_started_sinks() -> None:
    bus = MemoryBus()
    a, b = RecordingSink(), RecordingSink()
    await bus.start("A", a)
    await bus.start("B", b)
    push = Push(2, msg("m1"))
    await bus.push("A", [push])
    await bus.push("Z", [push])  # a node that never started: dropped
    assert a.delivered == [[push]]
    assert b.delivered == []
    announcement = ChatMessage("bc", delivery=Delivery.BROADCAST)
    await bus.broadcast(announcement)
    assert a.broadcasts == [announcement]
    assert b.broadcasts == [announcement]
    kick = KickEvent(2, (21, 22), 4001, "replaced by a newer login")
    await bus.publish_user_event(kick)
    assert a.events == [kick]
    assert b.events == [kick]
    await bus.close()
    await bus.push("A", [push])
    await bus.broadcast(announcement)
    await bus.publish_user_event(kick)
    assert len(a.delivered) == len(a.broadcasts) == len(a.events) == 1


async def test_bus_with_logic_delivers_to_the_nodes_of_the_recipient() -> None:
    bus = MemoryBus(clock=Clock())
    inbox = MemoryInbox()
    locations = MemoryLocationStore(Clock())
    logic = LogicService(inbox, locations, bus, clock_ms=lambda: 5)
    bus.attach_logic(logic)
    node_a = RecordingSink()
    await bus.start("A", node_a)
    await alive(locations, "A")
    await claim_all(locations, loc(2, "A", 21))
    ack = await bus.publish_upstream(upstream("m1", 1, 2, received_at_ms=50))
    assert ack == UpstreamAck(1, 50)
    stored = (await bus.sync(2, 0, 10)).messages
    assert [m.timestamp for m in stored] == [50]
    assert node_a.delivered == [[Push(2, stored[0])]]
    # the resend is answered by the bus: nothing stored or routed again
    assert (await bus.publish_upstream(upstream("m1", 1, 2))).duplicate
    assert len(node_a.delivered) == 1
    sent = await logic.broadcast("hello all")
    assert node_a.broadcasts == [sent]


async def test_bus_with_logic_retry_after_a_failed_push_stores_once_and_delivers() -> None:
    class FlakyBus(MemoryBus):
        failed = False

        async def push(self, node_id: str, pushes: Sequence[Push]) -> None:
            if not self.failed:
                self.failed = True
                raise ConnectionError("node unreachable")
            await super().push(node_id, pushes)

    bus = FlakyBus(clock=Clock())
    inbox = MemoryInbox()
    locations = MemoryLocationStore(Clock())
    bus.attach_logic(LogicService(inbox, locations, bus))
    node_a = RecordingSink()
    await bus.start("A", node_a)
    await alive(locations, "A")
    await claim_all(locations, loc(2, "A", 21))
    with pytest.raises(ConnectionError):
        await bus.publish_upstream(upstream("m1", 1, 2))
    assert node_a.delivered == []
    ack = await bus.publish_upstream(upstream("m1", 1, 2))
    assert not ack.duplicate
    stored = (await inbox.since(2, 0, 10)).messages
    assert [m.seq for m in stored] == [1]  # stored once despite two processings
    assert node_a.delivered == [[Push(2, stored[0])]]
