"""Per-user inboxes: an append-only log per user with a per-user sequence, plus the
record of accepted msg_ids that makes a resend idempotent.

Every message a user sends or receives lands in that user's inbox, so each of the
user's devices can Sync the whole conversation from its own last seq.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from ..bus import SyncResult, UpstreamAck
from ..protocol.messages import ChatMessage

__all__ = ["Inbox", "MemoryInbox"]


class Inbox(Protocol):
    async def accepted(self, key: str) -> UpstreamAck | None:
        """The ack given when the message with this de-duplication key was first accepted."""

    async def accept(self, key: str, ack: UpstreamAck) -> UpstreamAck | None:
        """Record ``key``; returns the earlier ack instead if it was already there."""

    async def next_server_seq(self) -> int: ...

    async def append(self, user_id: int, message: ChatMessage) -> ChatMessage:
        """Store ``message`` with the user's next seq; returns the stored copy."""

    async def since(self, user_id: int, since_seq: int, limit: int) -> SyncResult: ...


class MemoryInbox:
    def __init__(
        self,
        *,
        limit: int = 10_000,
        dedupe_window: float = 86400.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit
        self._window = dedupe_window
        self._clock = clock
        self._logs: dict[int, deque[ChatMessage]] = {}
        self._seqs: dict[int, int] = {}
        self._accepted: OrderedDict[str, tuple[UpstreamAck, float]] = OrderedDict()
        self._server_seq = 0

    async def accepted(self, key: str) -> UpstreamAck | None:
        self._expire()
        entry = self._accepted.get(key)
        return entry[0] if entry else None

    async def accept(self, key: str, ack: UpstreamAck) -> UpstreamAck | None:
        earlier = await self.accepted(key)
        if earlier is not None:
            return earlier
        self._accepted[key] = (ack, self._clock() + self._window)
        return None

    async def next_server_seq(self) -> int:
        self._server_seq += 1
        return self._server_seq

    async def append(self, user_id: int, message: ChatMessage) -> ChatMessage:
        seq = self._seqs.get(user_id, 0) + 1
        self._seqs[user_id] = seq
        stored = replace(message, seq=seq)
        log = self._logs.setdefault(user_id, deque(maxlen=self._limit))
        log.append(stored)
        return stored

    async def since(self, user_id: int, since_seq: int, limit: int) -> SyncResult:
        max_seq = self._seqs.get(user_id, 0)
        log = self._logs.get(user_id)
        if not log or since_seq >= max_seq:
            return SyncResult((), max_seq, False)
        # seqs in a log are consecutive, so the start index is arithmetic
        first = log[0].seq
        start = max(since_seq + 1 - first, 0)
        picked = [log[i] for i in range(start, min(start + limit, len(log)))]
        has_more = start + len(picked) < len(log)
        return SyncResult(tuple(picked), max_seq, has_more)

    def _expire(self) -> None:
        now = self._clock()
        while self._accepted:
            _, (_, expires) = next(iter(self._accepted.items()))
            if expires > now:
                break
            self._accepted.popitem(last=False)
