"""The Redis location store and inbox against real servers.

The behavioural tests run unchanged against the in-memory implementations (the
reference), a standalone Redis and a 6-node Redis Cluster. Redis-specific tests then look
at the keys themselves, the de-dup window, errors, and a master killed mid-run.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
import redis.asyncio
from redis.asyncio.cluster import RedisCluster

from imaccess.hub import logins_to_replace
from imaccess.logic.inbox import Inbox, MemoryInbox
from imaccess.protocol.messages import ChatMessage, Delivery
from imaccess.redis_store import (
    RedisClient,
    RedisInbox,
    RedisLocationStore,
    RedisLogicStore,
    StoreUnavailable,
    conn_key,
    connect_redis,
    node_key,
)
from imaccess.settings import MultiDevicePolicy, RedisSettings
from imaccess.storage import Location, LocationStore, MemoryLocationStore

from .redis_servers import RedisTestCluster

P = MultiDevicePolicy
TTL = 30.0
KINDS = ["memory", "redis", "cluster"]
BURST = 300


async def _client(request: pytest.FixtureRequest, kind: str) -> RedisClient:
    """A connected client on an empty standalone Redis or Cluster."""
    if kind == "redis":
        return await connect_redis(RedisSettings(url=request.getfixturevalue("redis_url")))
    url = request.getfixturevalue("redis_cluster_url")
    client = await connect_redis(RedisSettings(url=url, cluster=True))
    assert isinstance(client, RedisCluster)
    await client.flushall(target_nodes=RedisCluster.PRIMARIES)
    return client


@pytest.fixture(params=KINDS)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[LocationStore]:
    kind: str = request.param
    made: LocationStore
    if kind == "memory":
        made = MemoryLocationStore()
    else:
        made = RedisLocationStore(await _client(request, kind))
    yield made
    await made.close()


@pytest.fixture(params=KINDS)
async def inbox(request: pytest.FixtureRequest) -> AsyncIterator[Inbox]:
    kind: str = request.param
    made: Inbox
    if kind == "memory":
        made = MemoryInbox(limit=5)
    else:
        made = RedisInbox(await _client(request, kind), limit=5, dedupe_window=60.0)
    yield made
    await made.close()


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A plain client on the standalone server, to look at the keys."""
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def loc(
    conn_id: int,
    device_id: str = "",
    platform: str = "ios",
    *,
    user_id: int = 42,
    node_id: str = "n1",
    instance: str = "i1",
) -> Location:
    return Location(user_id, node_id, conn_id, device_id, platform, 1000.0 + conn_id, instance)


def conns(locations: list[Location]) -> list[int]:
    return sorted(location.conn_id for location in locations)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Await ``check()`` every 50 ms until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


# ----------------------------------------------------------------- location store

EXISTING = [loc(1, "phone-1", "iOS"), loc(2, "pc-1", "Windows"), loc(3, "", "android")]
CASES = [
    (P.MULTI_DEVICE, loc(10, "phone-1", "ios"), [1]),  # same device: always replaced
    (P.MULTI_DEVICE, loc(10, "tablet", "IOS"), []),
    (P.MULTI_DEVICE, loc(10, "", "android"), []),  # an empty device_id matches nothing
    (P.SINGLE_PER_PLATFORM, loc(10, "tablet", "IOS"), [1]),  # platform, any case
    (P.SINGLE_PER_PLATFORM, loc(10, "pc-1", "Linux"), [2]),
    (P.SINGLE_DEVICE, loc(10, "tablet", "web"), [1, 2, 3]),
    (P.SINGLE_DEVICE, loc(2, "pc-1", "Windows"), [1, 3]),  # re-claim of the same conn
]


@pytest.mark.parametrize(("policy", "new", "expected"), CASES)
async def test_claim_applies_the_policy(
    store: LocationStore, policy: MultiDevicePolicy, new: Location, expected: list[int]
) -> None:
    await store.node_alive("n1", "i1", TTL)
    for existing in EXISTING:
        await store.claim(existing, P.MULTI_DEVICE, TTL)
    reference = logins_to_replace(policy, [e.as_login() for e in EXISTING], new.as_login())
    assert sorted(login.conn_id for login in reference) == expected

    replaced = await store.claim(new, policy, TTL)

    assert conns(replaced) == expected
    assert sorted(replaced, key=lambda r: r.conn_id) == [
        e for e in EXISTING if e.conn_id in expected
    ]
    remaining = {e.conn_id for e in EXISTING} - set(expected) | {new.conn_id}
    assert conns(await store.locations(42)) == sorted(remaining)


async def test_concurrent_single_device_claims_leave_exactly_one(store: LocationStore) -> None:
    await store.node_alive("n1", "i1", TTL)
    claims = [loc(c, f"dev-{c}", "ios") for c in range(1, 21)]
    results = await asyncio.gather(*(store.claim(c, P.SINGLE_DEVICE, TTL) for c in claims))

    (survivor,) = await store.locations(42)
    replaced = [r.conn_id for result in results for r in result]
    # claims ran one after another: each older one was replaced exactly once
    assert sorted(replaced) == sorted(c.conn_id for c in claims if c != survivor)


async def test_refresh_never_resurrects(store: LocationStore) -> None:
    await store.node_alive("n1", "i1", TTL)
    old, new = loc(1, "phone"), loc(2, "phone")
    await store.claim(old, P.MULTI_DEVICE, TTL)
    assert conns(await store.claim(new, P.MULTI_DEVICE, TTL)) == [1]

    await store.refresh([old, new], TTL)
    assert conns(await store.locations(42)) == [2]

    await store.unregister(new)
    await store.refresh([old, new, loc(5, user_id=43)], TTL)
    assert await store.locations(42) == []
    assert await store.locations(43) == []


async def test_unregister(store: LocationStore) -> None:
    await store.node_alive("n1", "i1", TTL)
    a, b = loc(1, "a"), loc(2, "b")
    await store.claim(a, P.MULTI_DEVICE, TTL)
    await store.claim(b, P.MULTI_DEVICE, TTL)
    await store.unregister(a)
    await store.unregister(a)  # twice: no error
    assert await store.locations(42) == [b]
    await store.unregister(b)
    assert await store.locations(42) == []
    await store.unregister(loc(9, user_id=99))  # unknown user
    await store.unregister()  # nothing


@pytest.mark.parametrize("store", ["memory", "redis"], indirect=True)
async def test_a_burst_of_requests_waits_for_connections_instead_of_failing(
    store: LocationStore,
) -> None:
    """Logic serves up to 256 Sync requests at once (a reconnect storm), more than the
    Redis client keeps connections (redis-py 8 refuses the 101st with MaxConnectionsError
    by default): the excess waits for a free connection. (redis-py 8.1's RedisCluster
    fails such a burst inside itself, 'NoneType' has no 'writelines': not covered.)"""
    await store.node_alive("n1", "i1", TTL)
    results = await asyncio.gather(*(store.locations(user) for user in range(BURST)))
    assert results == [[]] * BURST


async def test_unregister_many_at_once(store: LocationStore) -> None:
    """A draining node removes its locations a slice at a time: users spread over the
    Cluster's slots, several connections of one user, and ones already gone."""
    await store.node_alive("n1", "i1", TTL)
    mine = [loc(conn, f"d{conn}", user_id=user) for user in range(100, 140) for conn in (1, 2)]
    for location in mine:
        await store.claim(location, P.MULTI_DEVICE, TTL)
    kept = loc(3, "d3", user_id=100)
    await store.claim(kept, P.MULTI_DEVICE, TTL)
    await store.unregister(*mine, loc(9, user_id=999))
    assert await store.locations(100) == [kept]
    assert await store.locations_of(list(range(101, 140))) == {u: [] for u in range(101, 140)}


async def test_entries_expire_one_by_one(store: LocationStore) -> None:
    await store.node_alive("n1", "i1", TTL)
    short, kept = loc(1, "a"), loc(2, "b")
    await store.claim(short, P.MULTI_DEVICE, 0.2)
    await store.claim(kept, P.MULTI_DEVICE, 0.2)
    await store.refresh([kept], TTL)

    async def short_gone() -> bool:
        return conns(await store.locations(42)) == [2]

    await eventually(short_gone)
    # an expired entry is not replaced (nobody to kick) and refresh does not revive it
    assert await store.claim(loc(3, "a"), P.MULTI_DEVICE, TTL) == []
    await store.refresh([short], TTL)
    assert conns(await store.locations(42)) == [2, 3]


async def test_locations_follow_node_liveness_and_instance(store: LocationStore) -> None:
    on_n1, on_n2 = loc(1, "a"), loc(2, "b", node_id="n2", instance="j1")
    await store.claim(on_n1, P.MULTI_DEVICE, TTL)
    await store.claim(on_n2, P.MULTI_DEVICE, TTL)
    assert await store.locations(42) == []  # no node alive yet

    await store.node_alive("n1", "i1", TTL)
    await store.node_alive("n2", "j1", TTL)
    assert conns(await store.locations(42)) == [1, 2]

    await store.node_alive("n1", "i2", TTL)  # n1 restarted: its old connections are gone
    assert conns(await store.locations(42)) == [2]
    restarted = loc(3, "c", instance="i2")
    await store.claim(restarted, P.MULTI_DEVICE, TTL)
    assert conns(await store.locations(42)) == [2, 3]

    await store.node_gone("n2", "j0")  # not its instance: no effect
    assert conns(await store.locations(42)) == [2, 3]
    await store.node_gone("n2", "j1")
    assert conns(await store.locations(42)) == [3]


async def test_node_liveness_expires(store: LocationStore) -> None:
    await store.claim(loc(1, "a"), P.MULTI_DEVICE, TTL)
    await store.node_alive("n1", "i1", 0.2)
    assert conns(await store.locations(42)) == [1]

    async def hidden() -> bool:
        return await store.locations(42) == []

    await eventually(hidden)
    await store.node_alive("n1", "i1", TTL)  # renewed late: the entry was only hidden
    assert conns(await store.locations(42)) == [1]


# -------------------------------------------------------------------------- inbox


def chat(n: int, **fields: Any) -> ChatMessage:
    return replace(ChatMessage(f"m{n}", from_user=7, to_user=42, content=f"hello {n}"), **fields)


async def test_append_assigns_consecutive_seqs_once_per_key(inbox: Inbox) -> None:
    first = chat(1, content="héllo ✓", timestamp=123, delivery=Delivery.GROUP, group_id=9)
    stored, new = await inbox.append(42, first, "7:m1")
    assert (stored, new) == (replace(first, seq=1), True)
    assert await inbox.append(42, chat(2), "7:m2") == (chat(2, seq=2), True)

    again, new = await inbox.append(42, replace(first, content="changed"), "7:m1")
    assert (again, new) == (replace(first, seq=1), False)  # the stored copy, first seq
    assert await inbox.append(42, chat(3), "7:m3") == (chat(3, seq=3), True)
    assert await inbox.append(43, chat(1), "7:m1") == (chat(1, seq=1), True)  # per user


async def test_concurrent_appends(inbox: Inbox) -> None:
    results = await asyncio.gather(*(inbox.append(42, chat(n), f"k{n}") for n in range(5)))
    assert sorted(stored.seq for stored, _ in results) == [1, 2, 3, 4, 5]
    dupes = await asyncio.gather(*(inbox.append(43, chat(1), "same") for _ in range(10)))
    assert [new for _, new in dupes].count(True) == 1
    assert {stored.seq for stored, _ in dupes} == {1}


async def test_since_pages(inbox: Inbox) -> None:
    empty = await inbox.since(42, 0, 10)
    assert (empty.messages, empty.max_seq, empty.has_more) == ((), 0, False)
    for n in range(1, 5):
        await inbox.append(42, chat(n), f"k{n}")

    page = await inbox.since(42, 0, 2)
    assert (page.messages, page.max_seq, page.has_more) == (
        (chat(1, seq=1), chat(2, seq=2)),
        4,
        True,
    )
    page = await inbox.since(42, 2, 2)
    assert ([m.seq for m in page.messages], page.has_more) == ([3, 4], False)
    page = await inbox.since(42, 4, 2)
    assert (page.messages, page.max_seq, page.has_more) == ((), 4, False)
    page = await inbox.since(42, 0, 0)
    assert (page.messages, page.has_more) == ((), True)


async def test_inbox_keeps_the_newest(inbox: Inbox) -> None:
    for n in range(1, 9):
        await inbox.append(42, chat(n), f"k{n}")
    page = await inbox.since(42, 0, 100)
    assert ([m.seq for m in page.messages], page.max_seq, page.has_more) == (
        [4, 5, 6, 7, 8],
        8,
        False,
    )
    assert page.messages[0] == chat(4, seq=4)
    page = await inbox.since(42, 0, 2)
    assert ([m.seq for m in page.messages], page.has_more) == ([4, 5], True)
    assert await inbox.append(42, chat(9), "k9") == (chat(9, seq=9), True)


# -------------------------------------------------------------- Redis specifics


async def test_keys_are_the_documented_ones(redis_url: str, raw: redis.asyncio.Redis) -> None:
    store = RedisLocationStore(await connect_redis(RedisSettings(url=redis_url)))
    inbox = RedisInbox(await connect_redis(RedisSettings(url=redis_url)), limit=5, dedupe_window=60)
    try:
        await store.node_alive("n1", "i1", TTL)
        await store.claim(loc(5, "phone", "iOS"), P.MULTI_DEVICE, TTL)
        await inbox.append(42, chat(1), "7:m1")

        assert sorted(await raw.keys("*")) == [
            b"im:node:{n1}:alive",
            b"im:user:conn:{42}",
            b"im:user:inbox:{42}",
            b"im:user:msg:{42}:7:m1",
            b"im:user:seq:{42}",
        ]
        ((field, value),) = (await raw.hgetall("im:user:conn:{42}")).items()
        assert field == b"5"
        entry = json.loads(value)
        assert entry.pop("expires") > time.time() * 1000
        assert entry == {
            "access_node": "n1",
            "conn_id": 5,
            "device_id": "phone",
            "platform": "iOS",
            "login_time": 1005.0,
            "instance": "i1",
        }
        assert 0 < await raw.ttl("im:user:conn:{42}") <= TTL
        assert await raw.get("im:node:{n1}:alive") == b"i1"
        assert 0 < await raw.pttl("im:node:{n1}:alive") <= TTL * 1000
        assert await raw.get("im:user:seq:{42}") == b"1"
        assert await raw.get("im:user:msg:{42}:7:m1") == b"1"
        (member,) = await raw.zrange("im:user:inbox:{42}", 0, -1)
        assert isinstance(member, bytes)
        assert member[:8] == (1).to_bytes(8, "big")
        assert await raw.zscore("im:user:inbox:{42}", member) == 1.0

        await store.unregister(loc(5))
        assert not await raw.exists("im:user:conn:{42}")  # the empty hash is gone
        await store.node_gone("n1", "i1")
        assert not await raw.exists("im:node:{n1}:alive")
    finally:
        await store.close()
        await inbox.close()


async def test_dedupe_marker_expires(redis_url: str, raw: redis.asyncio.Redis) -> None:
    inbox = RedisInbox(
        await connect_redis(RedisSettings(url=redis_url)), limit=2, dedupe_window=0.2
    )
    try:
        assert (await inbox.append(42, chat(1), "k1"))[1]
        assert await inbox.append(42, chat(1), "k1") == (chat(1, seq=1), False)

        async def forgotten() -> bool:
            return not await raw.exists("im:user:msg:{42}:k1")

        await eventually(forgotten)
        assert await inbox.append(42, chat(1), "k1") == (chat(1, seq=2), True)
    finally:
        await inbox.close()


async def test_duplicate_of_a_trimmed_message_keeps_its_seq(redis_url: str) -> None:
    inbox = RedisInbox(await connect_redis(RedisSettings(url=redis_url)), limit=2, dedupe_window=60)
    try:
        for n in range(1, 5):
            await inbox.append(42, chat(n), f"k{n}")
        # unlike MemoryInbox, the window (not the trim) decides: still a duplicate
        assert await inbox.append(42, chat(1), "k1") == (chat(1, seq=1), False)
        assert (await inbox.since(42, 0, 10)).max_seq == 4
    finally:
        await inbox.close()


async def test_restarted_node_entries_are_deleted_missing_node_only_hidden(
    redis_url: str, raw: redis.asyncio.Redis
) -> None:
    store = RedisLocationStore(await connect_redis(RedisSettings(url=redis_url)))
    other = RedisLocationStore(await connect_redis(RedisSettings(url=redis_url)))
    try:
        await store.claim(loc(1, "a"), P.MULTI_DEVICE, TTL)
        await store.claim(loc(2, "b", node_id="n2"), P.MULTI_DEVICE, TTL)
        await store.node_alive("n1", "i1", TTL)
        assert conns(await store.locations(42)) == [1]  # n2 has no liveness key
        assert conns(await other.locations(42)) == [1]  # caches n1 = i1

        await store.node_alive("n1", "i2", TTL)
        assert conns(await other.locations(42)) == [1]  # within its 1 s cache

        async def hidden() -> bool:
            return await other.locations(42) == []

        await eventually(hidden, timeout=3.0)
        assert sorted(await raw.hkeys("im:user:conn:{42}")) == [b"2"]
    finally:
        await store.close()
        await other.close()


async def test_errors_surface_as_store_unavailable(redis_url: str) -> None:
    with pytest.raises(StoreUnavailable):
        await connect_redis(RedisSettings(url="redis://127.0.0.1:1/0"))
    with pytest.raises(StoreUnavailable):
        await connect_redis(RedisSettings(url="redis://127.0.0.1:1/0", cluster=True))

    client = await connect_redis(RedisSettings(url=redis_url))
    store = RedisLocationStore(client)
    await client.set("im:user:conn:{42}", "not a hash")
    with pytest.raises(StoreUnavailable, match="WRONGTYPE"):
        await store.claim(loc(1), P.MULTI_DEVICE, TTL)
    assert store.errors == 1
    await store.close()

    gone = redis.asyncio.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    store, inbox = RedisLocationStore(gone), RedisInbox(gone, limit=5, dedupe_window=60)
    with pytest.raises(StoreUnavailable, match="ConnectionError"):
        await store.locations(42)
    with pytest.raises(StoreUnavailable):
        await store.refresh([loc(1)], TTL)
    with pytest.raises(StoreUnavailable):
        await inbox.append(42, chat(1), "k1")
    assert (store.errors, inbox.errors) == (2, 1)
    await gone.aclose()


# ------------------------------------------------------------------------ Cluster


async def test_cluster_keys_of_a_user_share_a_slot(redis_cluster_url: str) -> None:
    client = await connect_redis(RedisSettings(url=redis_cluster_url, cluster=True))
    assert isinstance(client, RedisCluster)
    try:
        for user_id in (1, 42, 123456789):
            keys = [
                conn_key(user_id),
                f"im:user:inbox:{{{user_id}}}",
                f"im:user:seq:{{{user_id}}}",
                f"im:user:msg:{{{user_id}}}:7:m{{1}}",
            ]
            slots = {await client.cluster_keyslot(key) for key in keys}
            assert len(slots) == 1
        masters = {getattr(client.get_node_from_key(conn_key(u)), "name", "") for u in range(30)}
        assert len(masters) == 3  # these users spread over all three masters
    finally:
        await client.aclose()


async def test_cluster_survives_a_master_killed(redis_cluster: RedisTestCluster) -> None:
    client = await connect_redis(RedisSettings(url=redis_cluster.url, cluster=True))
    assert isinstance(client, RedisCluster)
    store = RedisLocationStore(client, node_cache=0.0)
    inbox = RedisInbox(client, limit=100, dedupe_window=60)

    def port_of(key: str) -> int:
        node = client.get_node_from_key(key)
        assert node is not None
        return int(node.port)

    # the client's default node: the case where redis-py 8.1 (without the store's
    # workaround) also fails commands for the healthy masters until failover
    victim = int(client.get_default_node().port)
    assert victim in redis_cluster.masters()
    doomed = [u for u in range(1, 40) if port_of(conn_key(u)) == victim][:3]
    healthy = [u for u in range(1, 40) if port_of(conn_key(u)) != victim][:6]
    node = next(f"n{i}" for i in range(100) if port_of(node_key(f"n{i}")) != victim)

    async def work(user_id: int, round_: int) -> None:
        location = loc(round_, f"d{round_}", user_id=user_id, node_id=node)
        await store.claim(location, P.SINGLE_DEVICE, TTL)
        await store.refresh([location], TTL)
        assert conns(await store.locations(user_id)) == [round_]
        stored, _ = await inbox.append(user_id, chat(round_), f"k{round_}")
        assert (await inbox.since(user_id, stored.seq - 1, 10)).messages == (stored,)

    await store.node_alive(node, "i1", 60)
    try:
        for user_id in doomed + healthy:
            await work(user_id, 1)

        redis_cluster.kill(victim)
        killed_at = time.monotonic()
        # the other masters keep serving while the cluster has not even noticed yet
        for round_ in range(2, 5):
            for user_id in healthy:
                await work(user_id, round_)
        with pytest.raises(StoreUnavailable):
            await work(doomed[0], 2)

        async def recovered() -> bool:
            try:
                await work(doomed[0], 3)
            except StoreUnavailable:
                return False
            return True

        await eventually(recovered, timeout=15.0)
        assert time.monotonic() - killed_at < 15.0
        assert len(redis_cluster.masters()) == 3  # the victim's replica took over
        for user_id in doomed + healthy:
            await work(user_id, 6)
        assert store.errors + inbox.errors > 0
    finally:
        await client.aclose()


@pytest.mark.parametrize("kind", ["redis", "cluster"])
async def test_scripts_reload_after_script_flush(request: pytest.FixtureRequest, kind: str) -> None:
    """A restarted server or a promoted replica may not know the scripts (NOSCRIPT)."""
    client = await _client(request, kind)
    store = RedisLocationStore(client)
    inbox = RedisInbox(client, limit=5, dedupe_window=60)
    try:
        await store.node_alive("n1", "i1", TTL)
        users = range(1, 10)  # on every master of the cluster
        for user_id in users:
            await store.claim(loc(1, "a", user_id=user_id), P.MULTI_DEVICE, TTL)
            await inbox.append(user_id, chat(1), "k1")

        await client.script_flush()  # a Cluster sends it to every master
        await store.refresh([loc(1, user_id=u) for u in users], TTL)  # a pipeline
        for user_id in users:
            await store.claim(loc(2, "a", user_id=user_id), P.MULTI_DEVICE, TTL)
            assert conns(await store.locations(user_id)) == [2]
            assert (await inbox.append(user_id, chat(2), "k2"))[0].seq == 2
            assert (await inbox.since(user_id, 0, 10)).max_seq == 2
    finally:
        await store.close()


async def test_ping_tells_whether_redis_answers(redis_url: str) -> None:
    import redis.asyncio as aioredis

    from imaccess.redis_store import RedisLocationStore

    store = RedisLocationStore(aioredis.from_url(redis_url))
    assert await store.ping()
    await store.close()
    dead = RedisLocationStore(aioredis.from_url("redis://127.0.0.1:1/0"))
    assert not await dead.ping()
    await dead.close()


@pytest.mark.parametrize("kind", ["redis", "cluster"])
async def test_append_and_locate_answers_as_the_two_calls_in_one_round_trip(
    request: pytest.FixtureRequest, kind: str
) -> None:
    client = await _client(request, kind)
    inbox = RedisInbox(client, limit=100, dedupe_window=60.0)
    locations = RedisLocationStore(client)
    combined = RedisLogicStore(inbox, locations)
    try:
        await locations.node_alive("n1", "i1", TTL)
        for user_id in (7, 8):
            await locations.claim(loc(user_id * 10, user_id=user_id), P.MULTI_DEVICE, TTL)
        messages = [ChatMessage(f"m{n}", 7, 8, f"hello {n}") for n in range(5)]
        entries = [(owner, m, f"7:{m.msg_id}") for m in messages for owner in (8, 7)]
        stored, found = await combined.append_and_locate(entries, [8, 7, 9])
        assert [(copy.msg_id, copy.seq, new) for copy, new in stored] == [
            (f"m{n}", n + 1, True) for n in range(5) for _ in (8, 7)
        ]
        assert {u: conns(ls) for u, ls in found.items()} == {8: [80], 7: [70], 9: []}
        # a redelivered batch stores nothing twice and answers the first copies
        again, _ = await combined.append_and_locate(entries[:2], [8, 7])
        assert [(copy.seq, new) for copy, new in again] == [(1, False), (1, False)]
        assert [m.msg_id for m in (await inbox.since(8, 0, 100)).messages] == [
            f"m{n}" for n in range(5)
        ]
        other = redis.asyncio.Redis()  # another client (never connects)
        with pytest.raises(ValueError):
            RedisLogicStore(inbox, RedisLocationStore(other))
        await other.aclose()
    finally:
        await client.aclose()
