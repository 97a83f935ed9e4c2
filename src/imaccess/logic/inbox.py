"""Per-user inboxes: an append-only log per user with a per-user sequence.

Every message a user sends or receives lands in that user's inbox, so each of the
user's devices can Sync the whole conversation from its own last seq. Appends are
idempotent per ``(user, key)`` where the key is the message's ``from_user:msg_id``:
Logic may see a message twice (a redelivery after a crash) and must store it once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from ..bus import SyncResult
from ..protocol.messages import ChatMessage
from ..storage import Location

__all__ = ["AppendAndLocate", "Inbox", "MemoryInbox"]


class Inbox(Protocol):
    async def append(
        self, user_id: int, message: ChatMessage, key: str
    ) -> tuple[ChatMessage, bool]:
        """Store ``message`` with the user's next seq, unless ``key`` is already there.

        Returns the stored copy (with its seq) and whether this call stored it.
        """

    async def append_many(
        self, entries: Sequence[tuple[int, ChatMessage, str]]
    ) -> list[tuple[ChatMessage, bool]]:
        """``append`` each ``(user_id, message, key)`` in that order, one round trip on
        Redis: a batch of upstream messages costs one pipeline, not one per message."""

    async def since(self, user_id: int, since_seq: int, limit: int) -> SyncResult: ...

    async def close(self) -> None: ...


class AppendAndLocate(Protocol):
    """An inbox and a location store that answer both in one round trip (Redis:
    :class:`~imaccess.redis_store.RedisLogicStore`); each owner's lookup runs after its
    appends, as two sequential calls would."""

    async def append_and_locate(
        self, entries: Sequence[tuple[int, ChatMessage, str]], user_ids: Sequence[int]
    ) -> tuple[list[tuple[ChatMessage, bool]], dict[int, list[Location]]]: ...


class _UserLog:
    __slots__ = ("entries", "keys", "seq")

    def __init__(self, limit: int) -> None:
        self.entries: deque[tuple[str, ChatMessage]] = deque(maxlen=limit)
        self.keys: dict[str, ChatMessage] = {}
        self.seq = 0


class MemoryInbox:
    def __init__(self, *, limit: int = 10_000) -> None:
        self._limit = limit
        self._logs: dict[int, _UserLog] = {}

    async def append(
        self, user_id: int, message: ChatMessage, key: str
    ) -> tuple[ChatMessage, bool]:
        log = self._logs.get(user_id)
        if log is None:
            log = self._logs[user_id] = _UserLog(self._limit)
        earlier = log.keys.get(key)
        if earlier is not None:
            return earlier, False
        log.seq += 1
        stored = replace(message, seq=log.seq)
        if len(log.entries) == log.entries.maxlen:
            dropped_key, _ = log.entries[0]
            log.keys.pop(dropped_key, None)
        log.entries.append((key, stored))
        log.keys[key] = stored
        return stored, True

    async def append_many(
        self, entries: Sequence[tuple[int, ChatMessage, str]]
    ) -> list[tuple[ChatMessage, bool]]:
        return [await self.append(user_id, message, key) for user_id, message, key in entries]

    async def since(self, user_id: int, since_seq: int, limit: int) -> SyncResult:
        log = self._logs.get(user_id)
        if log is None or since_seq >= log.seq:
            return SyncResult((), log.seq if log else 0, False)
        entries = log.entries
        # seqs in a log are consecutive, so the start index is arithmetic
        first = entries[0][1].seq
        start = max(since_seq + 1 - first, 0)
        picked = [entries[i][1] for i in range(start, min(start + limit, len(entries)))]
        has_more = start + len(picked) < len(entries)
        return SyncResult(tuple(picked), log.seq, has_more)

    async def close(self) -> None:
        self._logs.clear()
