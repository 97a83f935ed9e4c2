"""Which Logic worker should consume which upstream partition.

Workers announce themselves on a core NATS subject (a heartbeat every ``beat`` seconds, a
goodbye when they stop) and each computes the same assignment from the workers it heard
within ``ttl``: rendezvous hashing, so a worker joining or leaving moves only the
partitions it gains or loses. The assignment only decides who *asks* for a partition's
messages: that one worker at a time consumes a partition is enforced by JetStream's
pinned-client priority group (see :mod:`imaccess.logic.worker`), so two workers that
briefly disagree cost a hand-off, never the partition's order. Pure: no I/O, a clock
passed in.
"""

from __future__ import annotations

import hashlib

__all__ = ["Membership", "rendezvous_owner"]


def rendezvous_owner(partition: int, workers: list[str]) -> str:
    """The worker with the highest hash of (worker, partition): stable across processes
    (``hash()`` is salted per process, so it would not do)."""

    def score(worker: str) -> bytes:
        return hashlib.blake2b(f"{worker}/{partition}".encode(), digest_size=8).digest()

    return max(workers, key=score)


class Membership:
    """The live workers, as this one has heard them."""

    def __init__(self, me: str, ttl: float) -> None:
        self.me = me
        self._ttl = ttl
        self._seen: dict[str, float] = {}
        self._assigned: tuple[list[str], int, set[int]] = ([], 0, set())

    def heard(self, worker: str, now: float) -> bool:
        """Note a heartbeat; True when the worker is new here (answer it with ours, so a
        starting worker learns the others within a round trip, not a beat)."""
        new = worker not in self._seen or self._seen[worker] + self._ttl < now
        self._seen[worker] = now
        return new and worker != self.me

    def left(self, worker: str) -> None:
        self._seen.pop(worker, None)

    def live(self, now: float) -> list[str]:
        for worker in [w for w, at in self._seen.items() if at + self._ttl < now]:
            del self._seen[worker]
        return sorted({self.me, *self._seen})

    def mine(self, partitions: int, now: float) -> set[int]:
        """This worker's partitions (cached: asked on every turn of the consume loop)."""
        workers = self.live(now)
        cached_workers, cached_partitions, assigned = self._assigned
        if workers != cached_workers or partitions != cached_partitions:
            assigned = {p for p in range(partitions) if rendezvous_owner(p, workers) == self.me}
            self._assigned = (workers, partitions, assigned)
        return assigned
