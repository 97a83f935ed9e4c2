"""``idle``: ramp N authenticated connections to one node and hold them with heartbeats.

Reports the connections still held at the end, the node's RSS per connection (RSS after
the ramp minus before, over N), server CPU per heartbeat during the hold (all of the
target's processes, so a cluster's Redis location refreshes count too) and the
heartbeat round trip. For the peer the keepalive is Engine.IO's ping, answered by the
client: CPU per keepalive is given, its round trip is not visible to the client.
"""

from __future__ import annotations

import asyncio

from ..procstats import CpuWindow, rss_bytes
from .common import Options, Outcome, datagrams, merged, profiler, ramp, running


async def run(options: Options) -> Outcome:
    async with running(options) as (target, pool):
        node = target.node_pids()[0]
        rss_before = rss_bytes(node)
        users = [(user, 0) for user in range(1, options.connections + 1)]
        connect = await ramp(pool, users, options, rate=options.ramp_rate, label="connecting")
        auth = connect.pop("_auth")
        rss_after = rss_bytes(node)
        await pool.call_all("reset")
        window = CpuWindow(target.server_processes()).start()
        clients = CpuWindow(pool.processes()).start()
        profile = profiler(options, target)
        profile.start("hold")
        await asyncio.sleep(options.seconds)  # holding is the measurement
        window.stop()
        clients.stop()
        profiled = profile.stop()
        recorder = merged(await pool.call_all("snapshot"))
        held = sum(await pool.call_all("alive"))
        rss_end = rss_bytes(node)
        beats = recorder.heartbeats_echoed or recorder.keepalives_answered
        connected = connect["connected"]
        result = {
            "scenario": "idle",
            "target": target.name,
            "connections_requested": options.connections,
            "connections_held": held,
            "connect": connect,
            "hold_seconds": options.seconds,
            "heartbeat_interval_s": options.heartbeat,
            "keepalive": options.keepalive if target.transport == "quic" else "socket.io ping",
            "node_rss_before_bytes": rss_before,
            "node_rss_after_ramp_bytes": rss_after,
            "node_rss_end_bytes": rss_end,
            "rss_per_connection_bytes": (
                round((rss_after - rss_before) / connected) if connected else None
            ),
            "heartbeats_sent": recorder.heartbeats_sent,
            "heartbeats_echoed": recorder.heartbeats_echoed,
            "keepalives_answered": recorder.keepalives_answered,
            **window.as_dict(),
            "load_generator_cpu_s": round(clients.cpu, 3),
            "load_generator_cpu_per_heartbeat_us": (
                round(clients.cpu / beats * 1e6, 1) if beats else None
            ),
            "client_datagrams": datagrams(recorder, beats),
            "server_cpu_per_heartbeat_us": round(window.cpu / beats * 1e6, 1) if beats else None,
            "heartbeat_rtt_ms": recorder.heartbeat.summary_ms(),
            "disconnects": recorder.disconnects,
            "errors": recorder.errors,
            "profile": profiled,
        }
        curves = {"heartbeat RTT": recorder.heartbeat, "time to authenticated": auth}
        return Outcome(result, curves)
