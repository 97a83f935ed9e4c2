"""Where users are connected: the location store, and its in-memory implementation.

A location is one live connection of a user. An access node *claims* a location when a
connection authenticates: the store registers it and, in the same atomic step, removes
the user's locations that the multi-device policy says it replaces, returning them so the
nodes holding them can kick those connections. Claims are serialised per user, so the
claimant is always the newest login: two simultaneous SingleDevice logins never both
survive, and an old connection can never replace its successor.

Nodes also renew a liveness record (``node_alive``) carrying a random instance id per
process start. ``locations`` returns only entries whose node is alive *and* still the
same instance, so a node that died (or restarted) without cleaning up stops attracting
routes within the node TTL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .hub import DeviceLogin, logins_to_replace
from .settings import MultiDevicePolicy

__all__ = ["Location", "LocationStore", "MemoryLocationStore"]


@dataclass(frozen=True, slots=True)
class Location:
    user_id: int
    node_id: str
    conn_id: int
    device_id: str
    platform: str
    login_time: float
    instance: str = ""
    """The node process that holds the connection (changes when the node restarts)."""

    def as_login(self) -> DeviceLogin:
        return DeviceLogin(
            self.conn_id, self.user_id, self.device_id, self.platform, self.login_time
        )


class LocationStore(Protocol):
    async def claim(
        self, location: Location, policy: MultiDevicePolicy, ttl: float
    ) -> list[Location]:
        """Register ``location``; remove and return the locations it replaces."""

    async def refresh(self, locations: Sequence[Location], ttl: float) -> None:
        """Extend the life of these (still registered) locations; never re-adds one."""

    async def unregister(self, *locations: Location) -> None: ...

    async def locations(self, user_id: int) -> list[Location]:
        """The user's locations on live nodes."""

    async def locations_of(self, user_ids: Sequence[int]) -> dict[int, list[Location]]:
        """``locations`` of several users at once (one round trip on Redis)."""

    async def node_alive(self, node_id: str, instance: str, ttl: float) -> None: ...

    async def node_gone(self, node_id: str, instance: str) -> None: ...

    async def ping(self) -> bool:
        """Reachable now (readiness)."""

    async def close(self) -> None: ...


class MemoryLocationStore:
    """For the embedded default and unit tests; the clock is injectable."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[int, dict[int, tuple[Location, float]]] = {}
        self._nodes: dict[str, tuple[str, float]] = {}

    async def claim(
        self, location: Location, policy: MultiDevicePolicy, ttl: float
    ) -> list[Location]:
        current = self._live_entries(location.user_id)
        replaced_logins = logins_to_replace(
            policy, [loc.as_login() for loc in current], location.as_login()
        )
        gone = {login.conn_id for login in replaced_logins}
        replaced = [loc for loc in current if loc.conn_id in gone]
        entries = self._entries.setdefault(location.user_id, {})
        for loc in replaced:
            entries.pop(loc.conn_id, None)
        entries[location.conn_id] = (location, self._clock() + ttl)
        return replaced

    async def refresh(self, locations: Sequence[Location], ttl: float) -> None:
        now = self._clock()
        for location in locations:
            entries = self._entries.get(location.user_id, {})
            current = entries.get(location.conn_id)
            if current is not None and current[1] > now:  # lapsed entries stay gone
                entries[location.conn_id] = (location, now + ttl)

    async def unregister(self, *locations: Location) -> None:
        for location in locations:
            entries = self._entries.get(location.user_id)
            if entries is not None:
                entries.pop(location.conn_id, None)
                if not entries:
                    del self._entries[location.user_id]

    async def locations(self, user_id: int) -> list[Location]:
        now = self._clock()
        return [
            loc
            for loc in self._live_entries(user_id)
            if (node := self._nodes.get(loc.node_id)) is not None
            and node[0] == loc.instance
            and node[1] > now
        ]

    async def locations_of(self, user_ids: Sequence[int]) -> dict[int, list[Location]]:
        return {user_id: await self.locations(user_id) for user_id in user_ids}

    async def node_alive(self, node_id: str, instance: str, ttl: float) -> None:
        self._nodes[node_id] = (instance, self._clock() + ttl)

    async def node_gone(self, node_id: str, instance: str) -> None:
        current = self._nodes.get(node_id)
        if current is not None and current[0] == instance:
            del self._nodes[node_id]

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._entries.clear()

    def _live_entries(self, user_id: int) -> list[Location]:
        """Unexpired entries of the user, dropping expired ones as a side effect."""
        now = self._clock()
        entries = self._entries.get(user_id, {})
        for conn_id in [c for c, (_, exp) in entries.items() if exp <= now]:
            del entries[conn_id]
        if not entries:
            self._entries.pop(user_id, None)
        return [loc for loc, _ in entries.values()]
