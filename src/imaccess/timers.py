"""A coarse timer wheel for per-connection deadlines (auth deadline, heartbeat timeout).

One asyncio timer per connection would re-arm on every heartbeat; here a connection
sits in exactly one bucket, at its deadline rounded up to the resolution. When a bucket
comes due, each member is asked whether it really expired; one that was active since
is put back at its new deadline. Activity therefore costs nothing, and an expiry sweep
touches only the connections whose bucket came due. Pure: ``now`` is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["TimerWheel"]

K = TypeVar("K", bound=Hashable)


class TimerWheel(Generic[K]):
    __slots__ = ("_buckets", "_resolution", "_slot_of")

    def __init__(self, resolution: float = 1.0) -> None:
        self._resolution = resolution
        self._buckets: dict[int, set[K]] = {}
        self._slot_of: dict[K, int] = {}

    def schedule(self, key: K, deadline: float) -> None:
        """Put ``key`` in the bucket of ``deadline`` (moving it if it was elsewhere)."""
        slot = math.ceil(deadline / self._resolution)
        old = self._slot_of.get(key)
        if old == slot:
            return
        if old is not None:
            self.cancel(key)
        self._slot_of[key] = slot
        self._buckets.setdefault(slot, set()).add(key)

    def cancel(self, key: K) -> None:
        slot = self._slot_of.pop(key, None)
        if slot is not None:
            bucket = self._buckets.get(slot)
            if bucket is not None:
                bucket.discard(key)
                if not bucket:
                    del self._buckets[slot]

    def pop_due(self, now: float) -> list[K]:
        """Remove and return the keys of every bucket at or before ``now``."""
        resolution = self._resolution
        due: list[K] = []
        # compare as times, exactly as next_due() reports them, so a bucket is due at the
        # time next_due() names even when the resolution is not a binary fraction
        for slot in sorted(s for s in self._buckets if s * resolution <= now):
            for key in self._buckets.pop(slot):
                del self._slot_of[key]
                due.append(key)
        return due

    @property
    def resolution(self) -> float:
        return self._resolution

    def next_due(self) -> float | None:
        if not self._buckets:
            return None
        return min(self._buckets) * self._resolution

    def __len__(self) -> int:
        return len(self._slot_of)
