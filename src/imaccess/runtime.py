"""Process-wide tuning of a gateway process: CPython's cyclic garbage collector.

A node holds a few hundred long-lived Python objects per connection (most of them
aioquic's), and every full collection walks all of them with the event loop stopped:
1.5 to 2.4 s for 1.6 million objects on the benchmark machine, that is a stall of every
connection's heartbeats and messages that grows with the connection count. CPython runs
a full collection whenever the old generation has grown by a quarter, so a ramp of
connections paid for one again and again (22 % of the CPU of building 3,000 connections
in one process; 6 % with the thresholds below).

Closed connections do not need the collector: the QUIC peer breaks their reference
cycles when they terminate (:meth:`imaccess.transport.quic.QuicPeer._release`), so
reference counting frees them. So what exists at start-up (modules, settings, the
node: never garbage) is frozen out of the collector's sight, the young generation is
collected a fourteenth as often, and the old generation only after 10,000 young
collections (10^8 allocations): rare cyclic garbage that lives long enough to reach it
(an exception kept with its traceback, say) waits that long to be freed.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_GENERATION_THRESHOLD", "tune_garbage_collector"]

YOUNG_GENERATION_THRESHOLD = 10_000
"""Allocations (net of deallocations) between young collections; CPython's default is 700."""


def tune_garbage_collector() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, 50, 200)
