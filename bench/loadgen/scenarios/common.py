"""What every scenario shares: options, starting the target and the workers pinned to
their CPUs, ramping a population of connections, and merging what workers counted."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..hist import LogHistogram
from ..pool import WorkerPool
from ..procstats import CpuWindow, parse_cpus
from ..profiling import Profiler
from ..recorder import Recorder
from ..stacks import DEFAULT_STACK
from ..targets import Target, make_target
from ..worker import WorkerConfig

__all__ = [
    "Options",
    "Outcome",
    "datagrams",
    "merged",
    "profiler",
    "ramp",
    "running",
    "split",
]


@dataclass(slots=True)
class Options:
    target: str = "embedded"
    workers: int = 1
    connections: int = 100
    pairs: int = 50
    seconds: float = 5.0
    rates: list[float] | None = None
    """Messages/s steps; None: one closed-loop step at maximum rate."""
    window: int = 4
    size: int = 100
    drain: float = 10.0
    baseline: float = 3.0
    """chat: seconds of server CPU measured with no messages, before the steps."""
    heartbeat: float = 30.0
    keepalive: str = "ping"
    """QUIC clients keep alive with a QUIC PING ("ping", as the SDK does) or a
    Heartbeat frame ("frame", as browsers must)."""
    ramp_rate: float | None = 300.0
    concurrency: int = 100
    broadcasts: int = 3
    resume: bool = True
    stop_at_saturation: bool = True
    server_cpus: str | None = None
    client_cpus: str | None = None
    client_stack: str = DEFAULT_STACK
    """QUIC library of the load generator's clients: "qh3" or "aioquic"."""
    profile: str | None = None
    """Directory for py-spy profiles of each measured window; None: no profiling."""
    server_sched: str = "normal"
    """Linux scheduling policy of the server processes: "normal" or "batch"
    (SCHED_BATCH: a process woken does not preempt the one running, so py-spy, which
    counts a runnable process as busy, books samples where CPU is spent rather than
    where a process woke another)."""


@dataclass(slots=True)
class Outcome:
    result: dict[str, Any]
    curves: dict[str, LogHistogram] = field(default_factory=dict)
    """Histograms to plot as CDFs, by label."""


@contextlib.asynccontextmanager
async def running(options: Options) -> AsyncIterator[tuple[Target, WorkerPool]]:
    """Start the target on the server CPUs and the workers on the client CPUs; stop both."""
    server_cpus = parse_cpus(options.server_cpus)
    client_cpus = parse_cpus(options.client_cpus)
    original = os.sched_getaffinity(0)
    target = make_target(options.target, options.heartbeat)
    if server_cpus:
        os.sched_setaffinity(0, server_cpus)  # the servers inherit it
    if options.server_sched == "batch":
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))  # inherited too
    try:
        await target.start()
    finally:
        os.sched_setaffinity(0, client_cpus or original)
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    config = WorkerConfig(
        index=0,
        transport=target.transport,
        endpoints=target.endpoints,
        secret=target.secret,
        idle_timeout=3 * options.heartbeat,
        cpus=client_cpus,
        client_stack=options.client_stack,
    )
    pool = WorkerPool(config, options.workers)
    try:
        await pool.start()
        yield target, pool
    finally:
        await pool.stop()
        await target.stop()
        os.sched_setaffinity(0, original)


def profiler(options: Options, target: Target) -> Profiler:
    """Profiles the target's server processes when ``--profile`` asked for it."""
    directory = Path(options.profile) if options.profile else None
    return Profiler(directory, target.name, target.server_processes())


def split(items: list[Any], workers: int) -> list[list[Any]]:
    """Round-robin, so each worker gets a share of every endpoint."""
    return [items[i::workers] for i in range(workers)]


def merged(snapshots: list[dict[str, Any]]) -> Recorder:
    return Recorder.merge(snapshots)


async def ramp(
    pool: WorkerPool,
    users: list[tuple[int, int]],
    options: Options,
    *,
    rate: float | None,
    label: str,
    resume: bool = False,
) -> dict[str, Any]:
    """Connect ``(user_id, endpoint)`` pairs, spread over the workers; merged counts."""
    shares = split(users, pool.size)
    clients = CpuWindow(pool.processes()).start()
    per_rate = rate / pool.size if rate else None
    answers = await pool.call(
        "connect",
        [
            {
                "users": s,
                "rate": per_rate,
                "concurrency": options.concurrency,
                "resume": resume,
                "heartbeat": options.heartbeat,
                "keepalive": options.keepalive,
            }
            for s in shares
        ],
        progress=(label, len(users)),
    )
    clients.stop()
    recorder = merged([a["recorder"] for a in answers])
    elapsed = max(a["elapsed"] for a in answers)
    connected = sum(a["connected"] for a in answers)
    return {
        "requested": len(users),
        "connected": connected,
        "failed": recorder.connect_failed,
        "resumed": recorder.resumed,
        "seconds": round(elapsed, 3),
        "per_second": round(connected / elapsed, 1) if elapsed else None,
        "time_to_authenticated_ms": recorder.auth.summary_ms(),
        "load_generator_cpu_s": round(clients.cpu, 3),
        "load_generator_cpu_per_connection_ms": (
            round(clients.cpu / connected * 1000, 3) if connected else None
        ),
        "client_datagrams": datagrams(recorder, connected),
        "errors": recorder.errors,
        "_auth": recorder.auth,
    }


def datagrams(recorder: Recorder, per: int) -> dict[str, Any]:
    """QUIC datagrams the clients sent ("out", what the server received) and received,
    in total and per operation; all zero over Socket.IO."""
    return {
        "out": recorder.datagrams_out,
        "in": recorder.datagrams_in,
        "out_per_op": round(recorder.datagrams_out / per, 2) if per else None,
        "in_per_op": round(recorder.datagrams_in / per, 2) if per else None,
    }


def machine() -> dict[str, Any]:
    """What the figures were measured on, for the JSON results."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": commit,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def results_dir(path: str | None) -> Path:
    directory = Path(path) if path else Path("bench/results")
    directory.mkdir(parents=True, exist_ok=True)
    return directory
