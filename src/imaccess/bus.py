"""The bus between access nodes and Logic, and its in-process implementation.

Access nodes publish what clients send (``publish_upstream``) and ask for missed
messages (``sync``); Logic pushes deliveries to the node that holds each target
connection (``Downstream.push``). The in-memory bus calls Logic directly, so an
upstream publish returns once Logic has stored the message: that is the embedded
default's durability point. The NATS bus (JetStream) implements the same interfaces
across processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .protocol.messages import ChatMessage, Delivery

__all__ = [
    "Bus",
    "BusUnavailable",
    "Downstream",
    "MemoryBus",
    "Push",
    "PushHandler",
    "SyncResult",
    "Upstream",
    "UpstreamAck",
    "UpstreamHandler",
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
class SyncResult:
    messages: tuple[ChatMessage, ...]
    max_seq: int
    has_more: bool


PushHandler = Callable[[Sequence[Push]], None]


class UpstreamHandler(Protocol):
    """Logic, as the bus sees it."""

    async def handle_upstream(self, message: Upstream) -> UpstreamAck: ...

    async def handle_sync(self, user_id: int, since_seq: int, limit: int) -> SyncResult: ...


class Downstream(Protocol):
    """How Logic reaches access nodes."""

    async def push(self, node_id: str, pushes: Sequence[Push]) -> None: ...


class Bus(Protocol):
    """How an access node reaches Logic and hears back from it."""

    async def start(self, node_id: str, on_push: PushHandler) -> None: ...

    async def publish_upstream(self, message: Upstream) -> UpstreamAck: ...

    async def sync(self, user_id: int, since_seq: int, limit: int) -> SyncResult: ...

    async def close(self) -> None: ...


class MemoryBus:
    """One process: access nodes and Logic call each other directly."""

    def __init__(self) -> None:
        self._logic: UpstreamHandler | None = None
        self._nodes: dict[str, PushHandler] = {}

    def attach_logic(self, logic: UpstreamHandler) -> None:
        self._logic = logic

    async def start(self, node_id: str, on_push: PushHandler) -> None:
        self._nodes[node_id] = on_push

    async def publish_upstream(self, message: Upstream) -> UpstreamAck:
        return await self._require_logic().handle_upstream(message)

    async def sync(self, user_id: int, since_seq: int, limit: int) -> SyncResult:
        return await self._require_logic().handle_sync(user_id, since_seq, limit)

    async def push(self, node_id: str, pushes: Sequence[Push]) -> None:
        handler = self._nodes.get(node_id)
        if handler is not None:
            handler(pushes)

    async def close(self) -> None:
        self._nodes.clear()

    def _require_logic(self) -> UpstreamHandler:
        if self._logic is None:
            raise BusUnavailable("no Logic service attached")
        return self._logic
