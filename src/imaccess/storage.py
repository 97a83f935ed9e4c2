"""Where users are connected: the location store, and its in-memory implementation.

A location is one live connection of a user. Access nodes write them (register on auth,
refresh while alive, unregister on close); Logic reads them to route. Entries carry an
expiry so that a node that dies without cleaning up stops attracting routes once its
entries lapse (the Redis implementation adds node liveness on top).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Location", "LocationStore", "MemoryLocationStore"]


@dataclass(frozen=True, slots=True)
class Location:
    user_id: int
    node_id: str
    conn_id: int
    device_id: str
    platform: str
    login_time: float


class LocationStore(Protocol):
    async def register(self, location: Location, ttl: float) -> None: ...

    async def refresh(self, locations: Sequence[Location], ttl: float) -> None: ...

    async def unregister(self, location: Location) -> None: ...

    async def locations(self, user_id: int) -> list[Location]: ...

    async def close(self) -> None: ...


class MemoryLocationStore:
    """For the embedded default and unit tests; the clock is injectable."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[int, dict[int, tuple[Location, float]]] = {}

    async def register(self, location: Location, ttl: float) -> None:
        expires = self._clock() + ttl
        self._entries.setdefault(location.user_id, {})[location.conn_id] = (location, expires)

    async def refresh(self, locations: Sequence[Location], ttl: float) -> None:
        for location in locations:
            await self.register(location, ttl)

    async def unregister(self, location: Location) -> None:
        entries = self._entries.get(location.user_id)
        if entries is not None:
            entries.pop(location.conn_id, None)
            if not entries:
                del self._entries[location.user_id]

    async def locations(self, user_id: int) -> list[Location]:
        now = self._clock()
        entries = self._entries.get(user_id, {})
        for conn_id in [c for c, (_, exp) in entries.items() if exp <= now]:
            del entries[conn_id]
        if not entries:
            self._entries.pop(user_id, None)
        return [loc for loc, _ in entries.values()]

    async def close(self) -> None:
        self._entries.clear()
