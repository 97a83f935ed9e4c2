"""Token buckets, free of I/O: ``now`` is passed in.

A bucket holds up to ``burst`` tokens and refills at ``rate`` per second; an action
that finds a token goes ahead. Used per user for chat messages, and per client address
for failed authentications (an address whose bucket is empty is refused at accept).
"""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    __slots__ = ("_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = now

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def take(self, now: float, tokens: float = 1.0) -> bool:
        self._refill(now)
        if self._tokens >= tokens:
            self._tokens -= tokens
            return True
        return False

    def available(self, now: float) -> float:
        self._refill(now)
        return self._tokens

    def full(self, now: float) -> bool:
        return self.available(now) >= self.burst
