"""``connect``: a connection storm, new connections authenticated per second.

First every connection does a full handshake (as fast as ``--concurrency`` handshakes
in flight per worker allow), then all are closed and, on QUIC targets, reconnected with
the session ticket each got from the first (TLS resumption: no certificate signature
or verification). Server CPU per connection and connections per server core-second
come with each phase.
"""

from __future__ import annotations

from typing import Any

from ..procstats import CpuWindow, wait_quiet
from .common import Options, Outcome, profiler, ramp, running


async def run(options: Options) -> Outcome:
    async with running(options) as (target, pool):
        nodes = len(target.endpoints)
        users = [(user, (user - 1) % nodes) for user in range(1, options.connections + 1)]
        phases: dict[str, Any] = {}
        curves = {}
        profile = profiler(options, target)
        kinds = ["full"] + (["resumed"] if options.resume and target.transport == "quic" else [])
        for kind in kinds:
            await wait_quiet(target.server_processes())
            await pool.call_all("reset")
            window = CpuWindow(target.server_processes()).start()
            profile.start(kind)
            phase = await ramp(
                pool, users, options, rate=None, label=f"{kind} handshakes", resume=kind != "full"
            )
            window.stop()
            phase["profile"] = profile.stop()
            curves[f"{kind} handshake"] = phase.pop("_auth")
            phase.update(window.as_dict())
            phase["server_cpu_per_connection_ms"] = (
                round(window.cpu / phase["connected"] * 1000, 3) if phase["connected"] else None
            )
            phase["connections_per_core_s"] = (
                round(phase["connected"] / window.cpu, 1) if window.cpu else None
            )
            phases[kind] = phase
            await pool.call_all("close_all", keep_tickets=True)
            phase["settled_after_s"] = round(await wait_quiet(target.server_processes()), 2)
        result = {
            "scenario": "connect",
            "target": target.name,
            "connections": options.connections,
            "nodes": nodes,
            "workers": pool.size,
            "concurrency_per_worker": options.concurrency,
            "phases": phases,
        }
        return Outcome(result, curves)
