"""Logic: accept, store, route.

For each upstream message: de-duplicate by msg_id (a resend gets the first ack again),
store it in the recipient's inbox and, for 1:1 chat between two users, in the sender's
(so the sender's other devices see it), then push each stored copy to every node that
holds a connection of its owner, grouped per node. The sending connection gets the
sender's copy too: it advances that device's inbox cursor without a Sync, and the client
recognises its own msg_id. De-duplication is per sender: ``(from_user, msg_id)``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

from ..bus import Downstream, Push, SyncResult, Upstream, UpstreamAck
from ..protocol.messages import ChatMessage
from ..storage import LocationStore
from .inbox import Inbox

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
    ) -> None:
        self._inbox = inbox
        self._locations = locations
        self._downstream = downstream
        self._sync_batch = sync_batch
        self._clock_ms = clock_ms

    async def handle_upstream(self, message: Upstream) -> UpstreamAck:
        key = f"{message.from_user}:{message.msg_id}"
        earlier = await self._inbox.accepted(key)
        if earlier is not None:
            return UpstreamAck(earlier.server_seq, earlier.timestamp, duplicate=True)
        now = self._clock_ms()
        ack = UpstreamAck(await self._inbox.next_server_seq(), now)
        chat = ChatMessage(
            msg_id=message.msg_id,
            from_user=message.from_user,
            to_user=message.to_user,
            content=message.content,
            content_type=message.content_type,
            timestamp=now,
            delivery=message.delivery,
            group_id=message.group_id,
        )
        # Store first, then record the msg_id: a failure in between makes a resend store
        # the message again (at least once) instead of acking a message that was lost.
        copies = [(message.to_user, await self._inbox.append(message.to_user, chat))]
        if message.from_user != message.to_user:
            copies.append((message.from_user, await self._inbox.append(message.from_user, chat)))
        earlier = await self._inbox.accept(key, ack)
        if earlier is not None:  # a concurrent resend was accepted first
            return UpstreamAck(earlier.server_seq, earlier.timestamp, duplicate=True)
        await self._route(copies)
        return ack

    async def handle_sync(self, user_id: int, since_seq: int, limit: int) -> SyncResult:
        limit = min(limit, self._sync_batch) if limit > 0 else self._sync_batch
        return await self._inbox.since(user_id, since_seq, limit)

    async def _route(self, copies: list[tuple[int, ChatMessage]]) -> None:
        """Push each (owner, stored copy) to the nodes holding the owner's connections."""
        per_node: dict[str, list[Push]] = defaultdict(list)
        for owner, stored in copies:
            nodes = {loc.node_id for loc in await self._locations.locations(owner)}
            for node_id in nodes:
                per_node[node_id].append(Push(owner, stored))
        for node_id, pushes in per_node.items():
            await self._downstream.push(node_id, pushes)
