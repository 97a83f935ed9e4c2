"""``compare``: imaccess (cluster target) and the Socket.IO peer, one after the other in
the same invocation with the same options, and their ratios (imaccess / peer).

Ratios above 1 favour imaccess for throughput figures (delivered per server
core-second); for latencies (p99 at an equal offered rate) below 1 does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from . import chat, connect, idle
from .common import Options, Outcome

COMPARABLE = ("chat", "idle", "connect")


async def run(options: Options, scenario: str) -> Outcome:
    runner = {"chat": chat.run, "idle": idle.run, "connect": connect.run}[scenario]
    ours = await runner(dataclasses.replace(options, target="cluster"))
    theirs = await runner(dataclasses.replace(options, target="peer"))
    result = {
        "scenario": "compare",
        "compared": scenario,
        "imaccess": ours.result,
        "peer": theirs.result,
        "ratios": _ratios(scenario, ours.result, theirs.result),
    }
    curves = {f"imaccess {k}": v for k, v in ours.curves.items()}
    curves.update({f"peer {k}": v for k, v in theirs.curves.items()})
    return Outcome(result, curves)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def _ratios(scenario: str, ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    if scenario == "chat":
        peer_steps = {s["offered_per_s"]: s for s in theirs["steps"]}
        at_rate = []
        for step in ours["steps"]:
            other = peer_steps.get(step["offered_per_s"])
            if other is None:
                continue
            at_rate.append(
                {
                    "offered_per_s": step["offered_per_s"],
                    "delivered_per_core_s": _ratio(
                        step["delivered_per_core_s"], other["delivered_per_core_s"]
                    ),
                    "p99_delivery": _ratio(
                        step["send_to_delivery_ms"]["p99"], other["send_to_delivery_ms"]["p99"]
                    ),
                    "p99_ack": _ratio(
                        step["send_to_ack_ms"]["p99"], other["send_to_ack_ms"]["p99"]
                    ),
                }
            )
        return {
            "max_delivered_per_core_s": _ratio(
                ours["max_delivered_per_core_s"], theirs["max_delivered_per_core_s"]
            ),
            "max_delivered_per_s": _ratio(
                ours["max_delivered_per_s"], theirs["max_delivered_per_s"]
            ),
            "at_equal_rate": at_rate,
        }
    if scenario == "idle":
        return {
            "rss_per_connection": _ratio(
                ours["rss_per_connection_bytes"], theirs["rss_per_connection_bytes"]
            ),
            "server_cpu_per_heartbeat": _ratio(
                ours["server_cpu_per_heartbeat_us"], theirs["server_cpu_per_heartbeat_us"]
            ),
        }
    full, other = ours["phases"]["full"], theirs["phases"]["full"]
    return {
        "connections_per_core_s": _ratio(
            full["connections_per_core_s"], other["connections_per_core_s"]
        ),
        "p99_time_to_authenticated": _ratio(
            full["time_to_authenticated_ms"]["p99"], other["time_to_authenticated_ms"]["p99"]
        ),
    }
