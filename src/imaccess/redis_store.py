"""The Redis location store and inbox: the same behaviour as the in-memory ones, shared
by every access node and Logic process, on one Redis or a Redis Cluster.

Every key of one user carries the user id as a Cluster hash tag (``{42}``), so all of a
user's keys live in one slot and each multi-step change is one Lua script: Redis runs a
script atomically, which serialises two claims of one user exactly like the in-memory
store's single thread does. Nothing here sends a multi-key command across slots.

Location entries expire one by one, like ``MemoryLocationStore``'s: Redis 7.0 has no
per-field TTL, so each entry's JSON ends with its own ``"expires"`` (Redis server time,
ms) and the scripts drop expired entries; the key's own TTL (the latest deadline) only
reclaims the memory of users who are gone entirely.

Every Redis failure reaches the caller as :class:`StoreUnavailable`. The catch is broad
on purpose: during a Cluster failover redis-py also raises ``RuntimeError`` and
``AttributeError`` (see the notes on redis-py 8.1), and the caller's choice is the same.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from redis._parsers import AsyncCommandsParser  # private: see _LoadOnceCommandsParser
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from .bus import SyncResult
from .protocol.codec import decode_table, encode_table
from .protocol.messages import ChatMessage, MsgType
from .settings import MultiDevicePolicy, RedisSettings
from .storage import Location

__all__ = [
    "RedisInbox",
    "RedisLocationStore",
    "RedisLogicStore",
    "StoreUnavailable",
    "connect_redis",
]

RedisClient = Redis | RedisCluster

_SOCKET_TIMEOUT = 5.0
"""Seconds before a command to a frozen (not closed) server fails instead of hanging."""
_CONNECT_TIMEOUT = 2.0
_POOL_SIZE = 100
"""Connections a client keeps to a standalone Redis. redis-py refuses a command beyond
its pool (MaxConnectionsError); ours makes it wait, up to :data:`_SOCKET_TIMEOUT`, so a
burst (a reconnect storm's Sync requests, 256 at once in Logic) queues instead of
failing."""


class StoreUnavailable(Exception):
    """Redis did not answer or failed; the operation may or may not have happened."""


class _LoadOnceCommandsParser(AsyncCommandsParser):
    """Insurance against a redis-py 8.1 failover bug seen on this project: after a master
    died, RedisCluster re-read its command table from its default node outside its retry
    loop, and with the dead node as default, commands for healthy masters failed until
    failover. (Not reproduced by this module's tests, where redis-py moves the failed node
    to the end of its lists first.) The table (COMMAND) does not change while the cluster
    runs, so it is loaded once."""

    async def initialize(self, node: ClusterNode | None = None) -> None:
        if self.commands:
            return
        await super().initialize(node)


async def connect_redis(settings: RedisSettings) -> RedisClient:
    """A client (bytes in, bytes out) that has answered once; StoreUnavailable if not."""
    options: dict[str, Any] = {
        "decode_responses": False,
        "socket_timeout": _SOCKET_TIMEOUT,
        "socket_connect_timeout": _CONNECT_TIMEOUT,
    }
    client: RedisClient
    if settings.cluster:
        client = RedisCluster.from_url(settings.url, **options)
        client.commands_parser = _LoadOnceCommandsParser()
    else:
        pool = BlockingConnectionPool.from_url(
            settings.url, max_connections=_POOL_SIZE, timeout=_SOCKET_TIMEOUT, **options
        )
        client = Redis.from_pool(pool)  # closing the client closes its pool
    try:
        if isinstance(client, RedisCluster):
            await client.initialize()
        else:
            await client.ping()
    except Exception as exc:
        await client.aclose()
        raise StoreUnavailable(f"cannot reach Redis at {settings.url}: {exc}") from exc
    return client


_Call = tuple[AsyncScript, Sequence[str], Sequence[str | int | bytes]]


async def _scripts(client: RedisClient, calls: Sequence[_Call]) -> list[Any]:
    """One script call per ``(script, keys, args)``, all in one pipeline: one round trip
    (per node, in a Cluster) instead of one each, which costs most of the client CPU.
    Each call's keys share a hash tag, and calls on one slot run in this order. Reloads
    the scripts once if the server lost them (restart, promoted replica)."""
    results: list[Any] = []
    for attempt in range(2):
        pipe = client.pipeline(transaction=False)
        for script, keys, args in calls:
            # (execute_command: ClusterPipeline blocks .evalsha, but routes an
            # EVALSHA by its keys like any other command)
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        results = await pipe.execute(raise_on_error=False)
        if attempt or not any(isinstance(r, NoScriptError) for r in results):
            break
        for script in {id(call[0]): call[0] for call in calls}.values():
            await client.script_load(script.script)
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


class _Guarded:
    """Turns any failure inside ``with self._guard()`` into StoreUnavailable, counted."""

    errors = 0
    _client: RedisClient

    async def _each(
        self,
        script: AsyncScript,
        calls: Sequence[tuple[Sequence[str], Sequence[str | int | bytes]]],
    ) -> list[Any]:
        """One script call per ``(keys, args)``, all in one pipeline (:func:`_scripts`)."""
        return await _scripts(self._client, [(script, keys, args) for keys, args in calls])

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:  # redis errors, and what redis-py leaks in failovers
            self.errors += 1
            raise StoreUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc


# Lua: scripts see the Redis server's clock, so every node agrees on what expired.
_NOW = "local t = redis.call('TIME'); local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
# An entry's deadline, or 0 (expired) for one that does not decode.
_EXPIRES = """
local function expires(v)
  local ok, e = pcall(cjson.decode, v)
  if ok and type(e) == 'table' and type(e.expires) == 'number' then return e.expires, e end
  return 0, nil
end
"""

# KEYS[1] user hash; ARGV: field, json (no expires), device_id, lower(platform), policy, ttl_ms.
# Returns the JSON of the entries the new one replaces (logins_to_replace, in Lua).
_CLAIM = (
    _NOW
    + _EXPIRES
    + """
local key, field, device, platform, policy = KEYS[1], ARGV[1], ARGV[3], ARGV[4], ARGV[5]
local deadline = now + tonumber(ARGV[6])
local latest, replaced = deadline, {}
local all = redis.call('HGETALL', key)
for i = 1, #all, 2 do
  local f, v = all[i], all[i + 1]
  local exp, e = expires(v)
  if exp <= now then
    redis.call('HDEL', key, f)
  elseif f ~= field then
    local dev = type(e.device_id) == 'string' and e.device_id or ''
    local plat = type(e.platform) == 'string' and string.lower(e.platform) or ''
    if (dev ~= '' and dev == device) or policy == 'single_device'
        or (policy == 'single_per_platform' and plat == platform) then
      redis.call('HDEL', key, f)
      replaced[#replaced + 1] = v
    elseif exp > latest then
      latest = exp
    end
  end
end
local json = string.sub(ARGV[2], 1, -2) .. ',"expires":' .. string.format('%d', deadline) .. '}'
redis.call('HSET', key, field, json)
redis.call('PEXPIREAT', key, string.format('%d', latest))
return replaced
"""
)

# KEYS[1] user hash; ARGV: ttl_ms, fields... Extends entries that are still there.
_REFRESH = (
    _NOW
    + _EXPIRES
    + """
local key, ttl = KEYS[1], tonumber(ARGV[1])
local stamp = ',"expires":' .. string.format('%d', now + ttl) .. '}'
local touched = 0
for i = 2, #ARGV do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  if v then
    local exp = expires(v)
    local base = string.match(v, '^(.*),"expires":%d+}$')
    if exp <= now or not base then
      redis.call('HDEL', key, ARGV[i])
    else
      redis.call('HSET', key, ARGV[i], base .. stamp)
      touched = touched + 1
    end
  end
end
if touched > 0 and redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
return touched
"""
)

# KEYS[1] user hash. The unexpired entries; drops the expired ones.
_LIVE = (
    _NOW
    + _EXPIRES
    + """
local all, live = redis.call('HGETALL', KEYS[1]), {}
for i = 1, #all, 2 do
  if expires(all[i + 1]) <= now then
    redis.call('HDEL', KEYS[1], all[i])
  else
    live[#live + 1] = all[i + 1]
  end
end
return live
"""
)

# KEYS[1] user hash; ARGV: field, value, ... Deletes each field that still has that value.
_FORGET = """
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
"""

# KEYS[1] node key; ARGV[1] instance. Only the instance that set it may delete it.
_NODE_GONE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def conn_key(user_id: int) -> str:
    return f"im:user:conn:{{{user_id}}}"


def node_key(node_id: str) -> str:
    return f"im:node:{{{node_id}}}:alive"


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


_ENTRY_FIELDS = ("access_node", "conn_id", "device_id", "platform", "login_time", "instance")


def _entry_json(loc: Location) -> str:
    """The seed's entry fields plus ``instance``; the claim script appends ``expires``."""
    values = (loc.node_id, loc.conn_id, loc.device_id, loc.platform, loc.login_time, loc.instance)
    return json.dumps(dict(zip(_ENTRY_FIELDS, values, strict=True)), separators=(",", ":"))


def _location(user_id: int, raw: bytes) -> Location:
    e = json.loads(raw)
    return Location(
        user_id, e["access_node"], int(e["conn_id"]), e["device_id"], e["platform"],
        float(e["login_time"]), e.get("instance", ""),
    )  # fmt: skip


class RedisLocationStore(_Guarded):
    """The LocationStore on Redis: one hash per user, field = conn_id.

    ``locations`` answers only entries whose node's liveness key holds the entry's
    instance. The liveness of a node is cached here for ``node_cache`` seconds (so a
    fan-out to a user costs one round trip, not one per node). Entries of a node that
    restarted (another instance is alive) are deleted when seen; entries of a node whose
    key is merely missing are only hidden, since a late renewal (or a Redis failover that
    lost the key) must not unregister connections that are in fact alive.
    """

    def __init__(self, client: RedisClient, *, node_cache: float = 1.0) -> None:
        self._client = client
        self._node_cache = node_cache
        self._nodes: dict[str, tuple[str | None, float]] = {}
        self._claim = client.register_script(_CLAIM)
        self._refresh = client.register_script(_REFRESH)
        self._live = client.register_script(_LIVE)
        self._forget = client.register_script(_FORGET)
        self._node_gone = client.register_script(_NODE_GONE)

    async def claim(
        self, location: Location, policy: MultiDevicePolicy, ttl: float
    ) -> list[Location]:
        args: list[str | int] = [
            str(location.conn_id), _entry_json(location), location.device_id,
            location.platform.lower(), str(policy), _ms(ttl),
        ]  # fmt: skip
        with self._guard("claim"):
            replaced = await self._claim(keys=[conn_key(location.user_id)], args=args)
            return [_location(location.user_id, raw) for raw in replaced]

    async def refresh(self, locations: Sequence[Location], ttl: float) -> None:
        """One script per user key, all in one pipeline (split per node in a Cluster)."""
        by_user: dict[int, list[str | int]] = {}
        for location in locations:
            by_user.setdefault(location.user_id, [_ms(ttl)]).append(str(location.conn_id))
        if by_user:
            with self._guard("refresh"):
                await self._each(
                    self._refresh, [([conn_key(u)], args) for u, args in by_user.items()]
                )

    async def unregister(self, *locations: Location) -> None:
        """One HDEL per user, all in one pipeline (split per node in a Cluster)."""
        by_user: dict[int, list[str]] = {}
        for location in locations:
            by_user.setdefault(location.user_id, []).append(str(location.conn_id))
        with self._guard("unregister"):
            if len(by_user) == 1:
                ((user_id, fields),) = by_user.items()
                await self._client.hdel(conn_key(user_id), *fields)
            elif by_user:
                pipe = self._client.pipeline(transaction=False)
                for user_id, fields in by_user.items():
                    pipe.hdel(conn_key(user_id), *fields)
                await pipe.execute()

    async def locations(self, user_id: int) -> list[Location]:
        return (await self.locations_of([user_id]))[user_id]

    async def locations_of(self, user_ids: Sequence[int]) -> dict[int, list[Location]]:
        with self._guard("locations"):
            return await self._found(user_ids, await _scripts(self._client, self._calls(user_ids)))

    def _calls(self, user_ids: Sequence[int]) -> list[_Call]:
        return [(self._live, [conn_key(u)], ()) for u in user_ids]

    async def _found(
        self, user_ids: Sequence[int], replies: Sequence[Any]
    ) -> dict[int, list[Location]]:
        """The live locations from the replies of :meth:`_calls`."""
        entries = {
            user_id: [(_location(user_id, raw), raw) for raw in raws]
            for user_id, raws in zip(user_ids, replies, strict=True)
        }
        alive = await self._alive({loc.node_id for e in entries.values() for loc, _ in e})
        found: dict[int, list[Location]] = {}
        for user_id, user_entries in entries.items():
            live, restarted = [], []
            for loc, raw in user_entries:
                instance = alive.get(loc.node_id)
                if instance == loc.instance:
                    live.append(loc)
                elif instance is not None:
                    restarted += [str(loc.conn_id).encode(), raw]
            if restarted:
                await self._forget(keys=[conn_key(user_id)], args=restarted)
            live.sort(key=lambda loc: (loc.login_time, loc.conn_id))
            found[user_id] = live
        return found

    async def node_alive(self, node_id: str, instance: str, ttl: float) -> None:
        with self._guard("node_alive"):
            await self._client.set(node_key(node_id), instance, px=_ms(ttl))
        self._nodes[node_id] = (instance, time.monotonic())

    async def node_gone(self, node_id: str, instance: str) -> None:
        self._nodes.pop(node_id, None)
        with self._guard("node_gone"):
            await self._node_gone(keys=[node_key(node_id)], args=[instance])

    async def ping(self) -> bool:
        """Reachable now: a PING answered within a second (readiness)."""
        try:
            async with asyncio.timeout(1.0):
                return bool(await self._client.ping())
        except Exception:
            return False

    async def close(self) -> None:
        self._nodes.clear()
        with self._guard("close"):
            await self._client.aclose()

    async def _alive(self, node_ids: set[str]) -> dict[str, str | None]:
        """The live instance of each node (None: not alive), from the cache if fresh."""
        now = time.monotonic()
        result: dict[str, str | None] = {}
        stale: list[str] = []
        for node_id in node_ids:
            cached = self._nodes.get(node_id)
            if cached is not None and now - cached[1] < self._node_cache:
                result[node_id] = cached[0]
            else:
                stale.append(node_id)
        if stale:
            pipe = self._client.pipeline(transaction=False)
            for node_id in stale:
                pipe.get(node_key(node_id))
            for node_id, value in zip(stale, await pipe.execute(), strict=True):
                instance = value.decode() if value is not None else None
                result[node_id] = instance
                self._nodes[node_id] = (instance, now)
        return result


# KEYS: inbox zset, seq counter, de-dup marker; ARGV: table bytes (seq 0), limit, window_ms.
# Returns {seq, 1} when stored, {seq, 0, stored member or nil} for a known key.
_APPEND = """
local seen = redis.call('GET', KEYS[3])
if seen then
  local hit = redis.call('ZRANGEBYSCORE', KEYS[1], seen, seen)
  return {tonumber(seen), 0, hit[1] or false}
end
local seq = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], seq, struct.pack('>I8', seq) .. ARGV[1])
redis.call('SET', KEYS[3], seq, 'PX', ARGV[3])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[2]) + 1))
return {seq, 1}
"""

# KEYS: inbox zset, seq counter; ARGV: since_seq, count. One snapshot: {max_seq, members}.
_SINCE = """
local max = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[1]) >= max then return {max, {}} end
return {max, redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'LIMIT', 0, ARGV[2])}
"""


def _decode_member(member: bytes) -> ChatMessage:
    """Member = 8-byte big-endian seq + ChatMessage table (seq 0, so members differ)."""
    message = decode_table(MsgType.MESSAGE, memoryview(member)[8:])
    if not isinstance(message, ChatMessage):  # pragma: no cover - decode_table's contract
        raise TypeError(f"inbox member decodes to {type(message).__name__}")
    return replace(message, seq=int.from_bytes(member[:8], "big"))


class RedisInbox(_Guarded):
    """The Inbox on Redis: a sorted set per user scored by seq, and a seq counter.

    De-duplication keys live ``dedupe_window`` seconds, independent of trimming: unlike
    MemoryInbox (which forgets a key when its message is trimmed away), a redelivery of
    a trimmed message within the window is still reported as a duplicate.
    """

    def __init__(self, client: RedisClient, *, limit: int, dedupe_window: float) -> None:
        if limit < 1:
            raise ValueError("inbox limit must be at least 1")
        self._client = client
        self._limit = limit
        self._window_ms = _ms(dedupe_window)
        self._append = client.register_script(_APPEND)
        self._since = client.register_script(_SINCE)

    async def append(
        self, user_id: int, message: ChatMessage, key: str
    ) -> tuple[ChatMessage, bool]:
        return (await self.append_many([(user_id, message, key)]))[0]

    async def append_many(
        self, entries: Sequence[tuple[int, ChatMessage, str]]
    ) -> list[tuple[ChatMessage, bool]]:
        """All appends in one pipeline, in order: a user's keys share a slot, so one
        user's appends run in this order on one node even in a Cluster."""
        if not entries:
            return []
        with self._guard("inbox append"):
            return self._stored(entries, await _scripts(self._client, self._calls(entries)))

    def _calls(self, entries: Sequence[tuple[int, ChatMessage, str]]) -> list[_Call]:
        tables: dict[int, bytes] = {}  # a message stored for two owners is encoded once
        calls: list[_Call] = []
        for user_id, message, key in entries:
            table = tables.get(id(message))
            if table is None:
                table = tables[id(message)] = encode_table(replace(message, seq=0))
            keys = [
                f"im:user:inbox:{{{user_id}}}",
                f"im:user:seq:{{{user_id}}}",
                f"im:user:msg:{{{user_id}}}:{key}",
            ]
            calls.append((self._append, keys, (table, self._limit, self._window_ms)))
        return calls

    @staticmethod
    def _stored(
        entries: Sequence[tuple[int, ChatMessage, str]], replies: Sequence[Any]
    ) -> list[tuple[ChatMessage, bool]]:
        stored = []
        for (_, message, _), reply in zip(entries, replies, strict=True):
            seq, was_new = int(reply[0]), bool(reply[1])
            if not was_new and len(reply) > 2 and reply[2] is not None:
                stored.append((_decode_member(reply[2]), False))
            else:
                stored.append((replace(message, seq=seq), was_new))
        return stored

    async def since(self, user_id: int, since_seq: int, limit: int) -> SyncResult:
        count = max(limit, 0)
        keys = [f"im:user:inbox:{{{user_id}}}", f"im:user:seq:{{{user_id}}}"]
        with self._guard("inbox since"):
            max_seq, members = await self._since(keys=keys, args=[since_seq, count + 1])
            messages = tuple(_decode_member(m) for m in members[:count])
            return SyncResult(messages, int(max_seq), len(members) > count)

    async def close(self) -> None:
        with self._guard("close"):
            await self._client.aclose()


class RedisLogicStore:
    """Logic's inbox appends and its owners' location lookups in **one** pipeline (the
    two stores share a client): one round trip per batch instead of two.

    Each owner's location lookup follows its appends in the pipeline, and both use keys
    of the owner's slot, so Redis runs them in that order as the two round trips did: a
    connection claimed after the lookup syncs after the append, and sees the message.
    """

    def __init__(self, inbox: RedisInbox, locations: RedisLocationStore) -> None:
        if inbox._client is not locations._client:
            raise ValueError("RedisLogicStore needs an inbox and a store on one client")
        self._inbox = inbox
        self._locations = locations

    async def append_and_locate(
        self, entries: Sequence[tuple[int, ChatMessage, str]], user_ids: Sequence[int]
    ) -> tuple[list[tuple[ChatMessage, bool]], dict[int, list[Location]]]:
        calls = self._inbox._calls(entries) + self._locations._calls(user_ids)
        with self._inbox._guard("inbox append and locations"):
            replies = await _scripts(self._inbox._client, calls)
        stored = self._inbox._stored(entries, replies[: len(entries)])
        with self._locations._guard("locations"):
            found = await self._locations._found(user_ids, replies[len(entries) :])
        return stored, found
