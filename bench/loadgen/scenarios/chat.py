"""``chat``: 1:1 chat between pairs whose two ends sit on different access nodes.

Each pair (2i+1, 2i+2) has its first user on endpoint 0 and its second on endpoint 1
(on a one-node target both are on the one node); both ends of a pair live in the same
worker, which sends both ways. Every step sends at a fixed total rate for ``seconds``
(or closed-loop with ``window`` unacked messages per sender for ``--rate max``), then
waits up to ``drain`` seconds for acks and deliveries in flight. Server CPU is read
around each step, so the headline figure, delivered messages per server core-second,
holds on a noisy machine; the target's CPU with connections up but no messages is read
first (``idle_baseline``) and each step also gives the figure above that floor. Steps
stop after the first one that no longer keeps up.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from ..procstats import CpuWindow
from ..profiling import Profiler
from .common import Options, Outcome, datagrams, merged, profiler, ramp, running, split

_SATURATED = 0.9  # a step whose delivered rate is under 90 % of the offered one


async def run(options: Options) -> Outcome:
    async with running(options) as (target, pool):
        nodes = len(target.endpoints)
        pairs = [(2 * i + 1, 2 * i + 2) for i in range(options.pairs)]
        users = [(a, 0) for a, _ in pairs] + [(b, 1 % nodes) for _, b in pairs]
        connect = await ramp(pool, users, options, rate=options.ramp_rate, label="connecting")
        connect.pop("_auth")
        baseline = CpuWindow(target.server_processes()).start()
        await asyncio.sleep(options.baseline)  # the target's CPU with no messages flowing
        baseline.stop()
        idle_cores = baseline.cpu / baseline.wall if baseline.wall else 0.0
        shares = split(pairs, pool.size)
        steps: list[dict[str, Any]] = []
        curves = {}
        rates: list[float | None] = list(options.rates) if options.rates else [None]
        profile = profiler(options, target)
        for rate in rates:
            step, delivery = await _step(
                options, pool, target.server_processes(), shares, rate, profile
            )
            busy = step["server_cpu_s"] - idle_cores * step["wall_s"]
            step["delivered_per_core_s_above_idle"] = (
                round(step["delivered"] / busy, 1) if busy > 0 else None
            )
            steps.append(step)
            curves[f"{_label(rate)} msg/s"] = delivery
            print(_line(step), file=sys.stderr, flush=True)
            if options.stop_at_saturation and step["saturated"]:
                break
        best = max(steps, key=lambda s: s["delivered_per_s"])
        result = {
            "scenario": "chat",
            "target": target.name,
            "pairs": options.pairs,
            "nodes": nodes,
            "workers": pool.size,
            "message_bytes": options.size,
            "step_seconds": options.seconds,
            "connect": connect,
            "idle_baseline": baseline.as_dict(),
            "steps": steps,
            "max_delivered_per_s": best["delivered_per_s"],
            "max_delivered_per_core_s": max(s["delivered_per_core_s"] or 0 for s in steps),
        }
        return Outcome(result, curves)


async def _step(
    options: Options,
    pool: Any,
    server_processes: dict[str, int],
    shares: list[Any],
    rate: float | None,
    profile: Profiler,
) -> tuple[dict[str, Any], Any]:
    start_at = time.monotonic() + 0.2
    window = CpuWindow(server_processes).start()
    clients = CpuWindow(pool.processes()).start()
    profile.start(f"rate-{_label(rate)}")
    answers = await pool.call(
        "chat",
        [
            {
                "pairs": share,
                "rate": rate / pool.size if rate else None,
                "seconds": options.seconds,
                "start_at": start_at,
                "size": options.size,
                "window": options.window,
                "drain": options.drain,
            }
            for share in shares
        ],
    )
    window.stop()
    clients.stop()
    profiled = profile.stop()
    recorder = merged([a["recorder"] for a in answers])
    last = recorder.last_delivery
    span = max(last - start_at, options.seconds) if last is not None else options.seconds
    delivered_per_s = recorder.delivered / span
    step = {
        "offered_per_s": rate,
        "sent": recorder.sent,
        "acked": recorder.acked,
        "refused": recorder.refused,
        "delivered": recorder.delivered,
        "duplicates": recorder.duplicates,
        "lost": recorder.sent - recorder.delivered,
        "delivered_per_s": round(delivered_per_s, 1),
        "delivered_per_core_s": round(recorder.delivered / window.cpu, 1) if window.cpu else None,
        **window.as_dict(),
        "load_generator_cpu_s": round(clients.cpu, 3),
        "load_generator_cpu_per_message_us": (
            round(clients.cpu / recorder.delivered * 1e6, 1) if recorder.delivered else None
        ),
        "client_datagrams": datagrams(recorder, recorder.delivered),
        "send_to_delivery_ms": recorder.delivery.summary_ms(),
        "send_to_ack_ms": recorder.ack.summary_ms(),
        "errors": recorder.errors,
        "profile": profiled,
    }
    keeping_up = recorder.delivered == recorder.sent and (
        rate is None or delivered_per_s >= _SATURATED * rate
    )
    step["saturated"] = rate is None or not keeping_up
    return step, recorder.delivery


def _label(rate: float | None) -> str:
    return "max" if rate is None else f"{rate:g}"


def _line(step: dict[str, Any]) -> str:
    delivery = step["send_to_delivery_ms"]
    return (
        f"rate {_label(step['offered_per_s'])}: delivered {step['delivered']}/{step['sent']}"
        f" at {step['delivered_per_s']}/s, {step['delivered_per_core_s']}/core-s,"
        f" p50 {delivery['p50']} ms p99 {delivery['p99']} ms"
    )
