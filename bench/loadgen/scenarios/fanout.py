"""``fanout``: one broadcast to N connections, repeated ``--broadcasts`` times.

The broadcast goes the way an operator sends one (``imaccess broadcast``: a request to
a Logic worker over NATS on the cluster; the Logic service's ``broadcast`` in the
embedded process). Its content carries the monotonic send time, so each worker records
send → delivery per connection; deliveries/s is N over the time from the request to
the last delivery.
"""

from __future__ import annotations

import time
from typing import Any

from ..hist import LogHistogram
from ..procstats import CpuWindow
from ..recorder import content_for
from .common import Options, Outcome, merged, profiler, ramp, running

_TIMEOUT = 60.0


async def run(options: Options) -> Outcome:
    async with running(options) as (target, pool):
        nodes = len(target.endpoints)
        users = [(user, (user - 1) % nodes) for user in range(1, options.connections + 1)]
        connect = await ramp(pool, users, options, rate=options.ramp_rate, label="connecting")
        connect.pop("_auth")
        rounds: list[dict[str, Any]] = []
        latency = LogHistogram()
        profile = profiler(options, target)
        for number in range(1, options.broadcasts + 1):
            await pool.call_all("reset")
            window = CpuWindow(target.server_processes()).start()
            clients = CpuWindow(pool.processes()).start()
            profile.start(f"broadcast-{number}")
            sent = time.monotonic()
            await target.broadcast(content_for(sent, options.size))
            answers = await pool.call_all("wait_broadcasts", timeout=_TIMEOUT)
            window.stop()
            clients.stop()
            profiled = profile.stop()
            recorder = merged(answers)
            latency.merge(recorder.broadcast)
            span = (recorder.last_delivery or sent) - sent
            rounds.append(
                {
                    "deliveries": recorder.broadcasts,
                    "seconds_to_last": round(span, 4),
                    "deliveries_per_s": round(recorder.broadcasts / span, 1) if span else None,
                    "deliveries_per_core_s": (
                        round(recorder.broadcasts / window.cpu, 1) if window.cpu else None
                    ),
                    **window.as_dict(),
                    "load_generator_cpu_s": round(clients.cpu, 3),
                    "load_generator_cpu_per_delivery_us": (
                        round(clients.cpu / recorder.broadcasts * 1e6, 1)
                        if recorder.broadcasts
                        else None
                    ),
                    "send_to_delivery_ms": recorder.broadcast.summary_ms(),
                    "profile": profiled,
                }
            )
        result = {
            "scenario": "fanout",
            "target": target.name,
            "connections": options.connections,
            "connected": connect["connected"],
            "nodes": nodes,
            "connect": connect,
            "broadcasts": rounds,
            "deliveries_per_s": max((r["deliveries_per_s"] or 0) for r in rounds),
            "send_to_delivery_ms": latency.summary_ms(),
        }
        return Outcome(result, {"broadcast send → delivery": latency})
