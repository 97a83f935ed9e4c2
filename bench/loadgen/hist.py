"""A log-bucket latency histogram (HDR-style, ~1 % relative error).

Workers record hundreds of thousands of latencies; shipping raw samples between
processes and sorting them costs more than the measurement is worth. Buckets grow
geometrically by 2 %, so any percentile is within 1 % of the true sample, memory is a
fixed ~1,000 counters, and histograms from many processes merge by addition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

_RATIO = 1.02
_LOG_RATIO = math.log(_RATIO)
_MIN_S = 1e-6  # 1 µs: the smallest latency told apart; anything below counts as 1 µs
_BUCKETS = int(math.log(1000.0 / _MIN_S) / _LOG_RATIO) + 2  # up to 1,000 s


@dataclass(slots=True)
class LogHistogram:
    counts: list[int] = field(default_factory=lambda: [0] * _BUCKETS)
    total: int = 0
    sum_s: float = 0.0
    max_s: float = 0.0

    def record(self, seconds: float) -> None:
        if seconds <= _MIN_S:
            index = 0
        else:
            index = min(int(math.log(seconds / _MIN_S) / _LOG_RATIO) + 1, _BUCKETS - 1)
        self.counts[index] += 1
        self.total += 1
        self.sum_s += seconds
        if seconds > self.max_s:
            self.max_s = seconds

    def merge(self, other: LogHistogram) -> None:
        for i, n in enumerate(other.counts):
            if n:
                self.counts[i] += n
        self.total += other.total
        self.sum_s += other.sum_s
        self.max_s = max(self.max_s, other.max_s)

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0 to 100) in seconds: the bucket's geometric middle."""
        if self.total == 0:
            return None
        rank = max(1, math.ceil(self.total * q / 100.0))
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                if i == 0:
                    return _MIN_S
                low = _MIN_S * _RATIO ** (i - 1)
                return min(low * math.sqrt(_RATIO), self.max_s)
        return self.max_s

    def summary_ms(self) -> dict[str, float | int | None]:
        """count, mean and p50/p90/p99/p999/max in milliseconds, for the JSON results."""

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000.0, 3)

        return {
            "count": self.total,
            "mean": ms(self.sum_s / self.total) if self.total else None,
            "p50": ms(self.percentile(50)),
            "p90": ms(self.percentile(90)),
            "p99": ms(self.percentile(99)),
            "p999": ms(self.percentile(99.9)),
            "max": ms(self.max_s) if self.total else None,
        }

    def cdf_points(self) -> tuple[list[float], list[float]]:
        """(latency ms, cumulative fraction) per non-empty bucket, for plots."""
        xs: list[float] = []
        ys: list[float] = []
        seen = 0
        for i, n in enumerate(self.counts):
            if n:
                seen += n
                xs.append(_MIN_S * _RATIO**i * 1000.0)
                ys.append(seen / self.total)
        return xs, ys
