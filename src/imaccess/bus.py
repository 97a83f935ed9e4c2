"""The bus between access nodes and Logic, and its in-process implementation.

Access nodes publish what clients send (``publish_upstream``), ask for missed messages
(``sync``), and exchange per-user events (a kick for a connection held by another node).
Logic delivers stored messages to the node that holds each target connection
(``Downstream.push``) and broadcasts to every node. The NATS implementation
(:mod:`imaccess.nats_bus`) carries the same calls across processes; its envelopes are
documented in ``docs/INTERNALS.md``.

``publish_upstream`` returns once the message is durable. Its ack carries the message's
position in the upstream log, and a resend with the same ``(from_user, msg_id)`` within the
de-duplication window gets the first ack again: JetStream does this with ``Nats-Msg-Id``;
:class:`MemoryBus` mirrors it in memory and hands the message to Logic before answering.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .protocol.messages import ChatMessage, Delivery

__all__ = [
    "Bus",
    "BusUnavailable",
    "Downstream",
    "DownstreamSink",
    "KickEvent",
    "MemoryBus",
    "Push",
    "SyncResult",
    "Upstream",
    "UpstreamAck",
    "UpstreamHandler",
    "UserEvent",
]


class BusUnavailable(Exception):
    """The bus or Logic could not take the request now; the client may retry."""


@dataclass(frozen=True, slots=True)
class Upstream:
    """A chat message accepted from a client, with where it came from."""

    msg_id: str
    from_user: int
    to_user: int
    content: str
    content_type: int
    delivery: Delivery
    group_id: int
    node_id: str
    conn_id: int
    received_at_ms: int

    @property
    def dedupe_key(self) -> str:
        """msg_ids are chosen by clients, so they are unique per sender only."""
        return f"{self.from_user}:{self.msg_id}"

    def as_chat_message(self) -> ChatMessage:
        """The message as stored and delivered: timestamped with when the node accepted it."""
        return ChatMessage(
            msg_id=self.msg_id,
            from_user=self.from_user,
            to_user=self.to_user,
            content=self.content,
            content_type=self.content_type,
            timestamp=self.received_at_ms,
            delivery=self.delivery,
            group_id=self.group_id,
        )


@dataclass(frozen=True, slots=True)
class UpstreamAck:
    server_seq: int
    timestamp: int
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Push:
    """Deliver ``message`` to every connection of the user on one node."""

    user_id: int
    message: ChatMessage


@dataclass(frozen=True, slots=True)
class KickEvent:
    """Close these connections of the user (on whichever node holds them)."""

    user_id: int
    conn_ids: tuple[int, ...]
    code: int
    reason: str


UserEvent = KickEvent


@dataclass(frozen=True, slots=True)
class SyncResult:
    messages: tuple[ChatMessage, ...]
    max_seq: int
    has_more: bool


class DownstreamSink(Protocol):
    """An access node, as the bus delivers to it."""

    def deliver(self, pushes: Sequence[Push]) -> None: ...

    def broadcast(self, message: ChatMessage) -> None: ...

    def user_event(self, event: UserEvent) -> None: ...


class UpstreamHandler(Protocol):
    """Logic, as the bus sees it."""

    async def process(self, message: Upstream) -> None:
        """Store and route; idempotent per ``message.dedupe_key`` (redeliveries happen)."""

    async def handle_sync(self, user_id: int, since_seq: int, limit: int) -> SyncResult: ...


class Downstream(Protocol):
    """How Logic reaches access nodes."""

    async def push(self, node_id: str, pushes: Sequence[Push]) -> None: ...

    async def broadcast(self, message: ChatMessage) -> None: ...


class Bus(Protocol):
    """How an access node reaches Logic and the other nodes."""

    async def start(self, node_id: str, sink: DownstreamSink) -> None: ...

    async def publish_upstream(self, message: Upstream) -> UpstreamAck: ...

    async def sync(self, user_id: int, since_seq: int, limit: int) -> SyncResult: ...

    async def publish_user_event(self, event: UserEvent) -> None: ...

    def healthy(self) -> bool:
        """Connected now (readiness: a node that cannot reach Logic should get no clients)."""

    async def close(self) -> None: ...


class MemoryBus:
    """One process: access nodes and Logic call each other directly."""

    def __init__(
        self,
        *,
        dedupe_window: float = 86400.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logic: UpstreamHandler | None = None
        self._nodes: dict[str, DownstreamSink] = {}
        self._window = dedupe_window
        self._clock = clock
        self._accepted: OrderedDict[str, tuple[UpstreamAck, float]] = OrderedDict()
        self._in_flight: dict[str, asyncio.Future[UpstreamAck]] = {}
        self._log_seq = 0

    def attach_logic(self, logic: UpstreamHandler) -> None:
        self._logic = logic

    # --------------------------------------------------------- access side

    async def start(self, node_id: str, sink: DownstreamSink) -> None:
        self._nodes[node_id] = sink

    async def publish_upstream(self, message: Upstream) -> UpstreamAck:
        logic = self._require_logic()
        key = message.dedupe_key
        self._expire()
        earlier = self._accepted.get(key)
        if earlier is not None:
            first = earlier[0]
            return UpstreamAck(first.server_seq, first.timestamp, duplicate=True)
        pending = self._in_flight.get(key)
        if pending is not None:  # a resend while the first is still being stored
            first = await asyncio.shield(pending)
            return UpstreamAck(first.server_seq, first.timestamp, duplicate=True)
        future: asyncio.Future[UpstreamAck] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            await logic.process(message)  # durable once stored: the embedded default's promise
        except BaseException as exc:
            future.set_exception(BusUnavailable(f"Logic failed: {exc!r}"))
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            del self._in_flight[key]
        self._log_seq += 1
        ack = UpstreamAck(self._log_seq, message.received_at_ms)
        self._accepted[key] = (ack, self._clock() + self._window)
        future.set_result(ack)
        return ack

    async def sync(self, user_id: int, since_seq: int, limit: int) -> SyncResult:
        return await self._require_logic().handle_sync(user_id, since_seq, limit)

    async def publish_user_event(self, event: UserEvent) -> None:
        for sink in list(self._nodes.values()):
            sink.user_event(event)

    def healthy(self) -> bool:
        return self._logic is not None

    async def close(self) -> None:
        self._nodes.clear()

    # ---------------------------------------------------------- Logic side

    async def push(self, node_id: str, pushes: Sequence[Push]) -> None:
        sink = self._nodes.get(node_id)
        if sink is not None:
            sink.deliver(pushes)

    async def broadcast(self, message: ChatMessage) -> None:
        for sink in list(self._nodes.values()):
            sink.broadcast(message)

    # ------------------------------------------------------------ internals

    def _require_logic(self) -> UpstreamHandler:
        if self._logic is None:
            raise BusUnavailable("no Logic service attached")
        return self._logic

    def _expire(self) -> None:
        now = self._clock()
        while self._accepted:
            _, (_, expires) = next(iter(self._accepted.items()))
            if expires > now:
                break
            self._accepted.popitem(last=False)
