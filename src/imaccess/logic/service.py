"""Logic: store and route.

For each upstream message: store it in the recipient's inbox and, for 1:1 chat between
two users, in the sender's (so the sender's other devices see it), then push each stored
copy to every live node that holds a connection of its owner, grouped per node. The
sending connection gets the sender's copy too: it advances that device's inbox cursor
without a Sync, and the client recognises its own msg_id.

A batch of messages (what a worker fetched from one or more partitions) is processed as
one: all inbox appends in one Redis pipeline, in the batch's order (so one sender's
messages keep theirs), all owners' locations in another, and one downstream publish per
node. That is what a message costs the stores, amortised over the batch.

Processing is idempotent: inbox appends are keyed by ``from_user:msg_id``, and pushing a
copy twice is harmless (clients drop a seq they have). So a redelivered message is routed
again but stored once. Broadcasts are not stored: they reach the connections online now.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence

from ..bus import Downstream, Push, SyncResult, Upstream
from ..protocol.messages import ChatMessage, Delivery
from ..storage import Location, LocationStore
from .inbox import AppendAndLocate, Inbox

__all__ = ["LogicService"]


class LogicService:
    def __init__(
        self,
        inbox: Inbox,
        locations: LocationStore,
        downstream: Downstream,
        *,
        sync_batch: int = 200,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        combined: AppendAndLocate | None = None,
    ) -> None:
        """``combined``: the same ``inbox`` and ``locations`` in one round trip."""
        self._combined = combined
        self._inbox = inbox
        self._locations = locations
        self._downstream = downstream
        self._sync_batch = sync_batch
        self._clock_ms = clock_ms

    async def process(self, message: Upstream) -> None:
        await self.process_batch([message])

    async def process_batch(self, messages: Sequence[Upstream]) -> None:
        """Store and route ``messages`` in their order (all or, on an error, some of them:
        a retry of the batch is safe, as for one message)."""
        entries: list[tuple[int, ChatMessage, str]] = []
        for message in messages:
            chat, key = message.as_chat_message(), message.dedupe_key
            entries.append((message.to_user, chat, key))
            if message.from_user != message.to_user:
                entries.append((message.from_user, chat, key))
        owners = list(dict.fromkeys(owner for owner, _, _ in entries))
        if self._combined is not None:
            stored, found = await self._combined.append_and_locate(entries, owners)
        else:
            stored = await self._inbox.append_many(entries)
            found = await self._locations.locations_of(owners)
        copies = [(owner, copy) for (owner, _, _), (copy, _) in zip(entries, stored, strict=True)]
        await self._route(copies, found)

    async def handle_sync(self, user_id: int, since_seq: int, limit: int) -> SyncResult:
        limit = min(limit, self._sync_batch) if limit > 0 else self._sync_batch
        return await self._inbox.since(user_id, since_seq, limit)

    async def broadcast(
        self, content: str, *, content_type: int = 0, msg_id: str | None = None
    ) -> ChatMessage:
        """Send ``content`` to every connected user now (not stored; seq 0)."""
        message = ChatMessage(
            msg_id=msg_id or uuid.uuid4().hex,
            content=content,
            content_type=content_type,
            timestamp=self._clock_ms(),
            delivery=Delivery.BROADCAST,
        )
        await self._downstream.broadcast(message)
        return message

    async def _route(
        self, copies: list[tuple[int, ChatMessage]], found: dict[int, list[Location]]
    ) -> None:
        """Push each (owner, stored copy) to the nodes holding the owner's connections."""
        per_node: dict[str, list[Push]] = defaultdict(list)
        for owner, stored in copies:
            for node_id in {loc.node_id for loc in found[owner]}:
                per_node[node_id].append(Push(owner, stored))
        for node_id, pushes in per_node.items():
            await self._downstream.push(node_id, pushes)
