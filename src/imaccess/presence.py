"""What the location store says about one access node: that it is alive, and where its
connections are. Logic routes by it, so the node keeps it alive while it serves, forgets
each connection that closes, and withdraws it for good when it drains.

Every write is batched or sliced: 50,000 connections refreshed in one loop turn stalled
everyone's packets for a fifth of a second, and a mass disconnect with one Redis command
per connection exceeded the Redis client's connection pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import Any, TypeVar

from .connection import Connection
from .metrics import NodeMetrics
from .storage import Location, LocationStore

__all__ = ["Presence", "end_tasks"]

log = logging.getLogger(__name__)

LOCATION_SLICE = 1000
"""Locations refreshed per loop turn, or unregistered per round trip."""

_T = TypeVar("_T")


class Presence:
    def __init__(
        self,
        locations: LocationStore,
        node_id: str,
        instance: str,
        *,
        node_ttl: float,
        location_ttl: float,
        registered: Callable[[], Iterable[Connection]],
        locate: Callable[[Connection], Location],
        spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
        metrics: NodeMetrics,
    ) -> None:
        """``registered``: the node's authenticated connections; ``locate``: the location
        of one; ``spawn``: runs background work the node cancels when it stops."""
        self._locations = locations
        self._node_id = node_id
        self._instance = instance
        self._node_ttl = node_ttl
        self._location_ttl = location_ttl
        self._registered = registered
        self._locate = locate
        self._spawn = spawn
        self._metrics = metrics
        self._renewals: list[asyncio.Task[None]] = []
        self._withdrawn = False
        self._closed: list[Location] = []
        """Of connections that closed, until :meth:`_unregister_closed` removes them."""
        self._unregistering = False

    async def start(self) -> None:
        await self._locations.node_alive(self._node_id, self._instance, self._node_ttl)
        self._renewals = [self._spawn(self._keep_alive()), self._spawn(self._refresh())]

    def forget(self, location: Location) -> None:
        """A connection closed: unregister it with the others closing now."""
        self._closed.append(location)
        if not self._unregistering:
            self._unregistering = True
            self._spawn(self._unregister_closed())

    async def withdraw(self, grace: float) -> None:
        """The node drains: end the renewals first (nothing may mark the node or its
        connections alive again), then delete the node and its connections' entries."""
        self._withdrawn = True
        await end_tasks(self._renewals, grace)
        live = [self._locate(c) for c in self._registered()]
        try:
            await self._locations.node_gone(self._node_id, self._instance)
            for batch in _slices(live):
                await self._locations.unregister(*batch)
        except Exception:
            log.exception("could not deregister from the location store")

    async def _unregister_closed(self) -> None:
        try:
            await asyncio.sleep(0)  # this loop turn's closes join the first slice
            while self._closed:
                batch = self._closed[:LOCATION_SLICE]
                del self._closed[:LOCATION_SLICE]
                try:
                    await self._locations.unregister(*batch)
                except Exception as exc:  # the entries expire with their TTL, unrefreshed
                    log.warning("could not unregister closed connections (%d): %s", len(batch), exc)
                    self._metrics.backend_error("locations")
        finally:
            self._unregistering = False

    async def _serving_after(self, delay: float) -> bool:
        """Sleep ``delay``; then whether the node still serves. The renewals end with
        the drain even if a library swallowed the cancellation meant to end them (seen:
        the liveness loop outlived it while Redis was gone, and the drain waited)."""
        await asyncio.sleep(delay)
        return not self._withdrawn

    async def _keep_alive(self) -> None:
        while await self._serving_after(self._node_ttl / 3):
            try:
                await self._locations.node_alive(self._node_id, self._instance, self._node_ttl)
            except Exception:
                log.exception("node liveness renewal failed")

    async def _refresh(self) -> None:
        """Extend every location's life, a slice per loop turn."""
        while await self._serving_after(self._location_ttl / 3):
            for batch in _slices(list(self._registered())):
                live = [self._locate(c) for c in batch if not c.closed]
                try:
                    await self._locations.refresh(live, self._location_ttl)
                except Exception:
                    log.exception("location refresh failed")
                    break
                await asyncio.sleep(0)


def _slices(items: list[_T]) -> Iterator[list[_T]]:
    for start in range(0, len(items), LOCATION_SLICE):
        yield items[start : start + LOCATION_SLICE]


async def end_tasks(tasks: Iterable[asyncio.Task[None]], grace: float) -> None:
    """Cancel ``tasks`` and wait up to ``grace`` seconds for them: a task that does not
    end (its cancellation swallowed) is logged, and must not hold a drain forever."""
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if not pending:
        return
    done, stuck = await asyncio.wait(pending, timeout=grace)
    for task in done:
        if not task.cancelled():
            task.exception()  # retrieved: each task logs its own failures
    if stuck:
        log.warning("%d background tasks outlived the drain", len(stuck))
