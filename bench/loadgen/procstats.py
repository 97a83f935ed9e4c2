"""Server-side CPU and memory, from psutil.

CPU is user + system seconds summed over every server process (all their threads), read
before and after a measured window: on a shared, noisy machine the work a server did
per message is steadier than how fast it went, so results are given per server
core-second as well as per wall-clock second.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any

import psutil  # type: ignore[import-untyped]

__all__ = ["CpuWindow", "cpu_seconds", "parse_cpus", "rss_bytes", "wait_quiet"]


def cpu_seconds(pids: list[int]) -> float:
    return sum(_Reading.of(pid).cpu for pid in pids)


def rss_bytes(pid: int) -> int:
    """Of the process and its children: an access node with ``workers: N`` is a
    supervisor and N worker processes."""
    process = psutil.Process(pid)
    family = [process, *process.children(recursive=True)]
    return sum(int(member.memory_info().rss) for member in family)


@dataclass(slots=True, frozen=True)
class _Reading:
    cpu: float = 0.0
    system: float = 0.0
    switches: int = 0
    """Involuntary context switches: times the process was preempted while runnable."""

    @staticmethod
    def of(pid: int) -> _Reading:
        try:
            process = psutil.Process(pid)
            times, switches = process.cpu_times(), process.num_ctx_switches()
        except psutil.NoSuchProcess:
            return _Reading()
        return _Reading(float(times.user + times.system), float(times.system), switches.involuntary)

    def __sub__(self, other: _Reading) -> _Reading:
        return _Reading(
            self.cpu - other.cpu, self.system - other.system, self.switches - other.switches
        )


@dataclass(slots=True)
class CpuWindow:
    """``start()`` … ``stop()``: server CPU seconds, in total and per process (by name),
    and wall seconds in between. Also the kernel's part of that CPU and how often the
    processes were preempted: on one shared core, a message that wakes six processes
    costs context switches, which the user-space profiles do not show."""

    processes: dict[str, int]
    readings: dict[str, _Reading] = field(default_factory=dict)
    wall_start: float = 0.0
    by_process: dict[str, float] = field(default_factory=dict)
    cpu: float = 0.0
    system: float = 0.0
    preemptions: int = 0
    wall: float = 0.0

    def start(self) -> CpuWindow:
        self.readings = {name: _Reading.of(pid) for name, pid in self.processes.items()}
        self.wall_start = time.monotonic()
        return self

    def stop(self) -> CpuWindow:
        used = {
            name: _Reading.of(pid) - self.readings[name] for name, pid in self.processes.items()
        }
        self.by_process = {name: reading.cpu for name, reading in used.items()}
        self.cpu = sum(self.by_process.values())
        self.system = sum(reading.system for reading in used.values())
        self.preemptions = sum(reading.switches for reading in used.values())
        self.wall = time.monotonic() - self.wall_start
        return self

    def as_dict(self) -> dict[str, Any]:
        return {
            "server_cpu_s": round(self.cpu, 4),
            "server_cpu_s_by_process": {k: round(v, 3) for k, v in self.by_process.items()},
            "server_system_share": round(self.system / self.cpu, 3) if self.cpu else None,
            "server_preemptions": self.preemptions,
            "wall_s": round(self.wall, 4),
            "server_cores_busy": round(self.cpu / self.wall, 3) if self.wall else 0.0,
        }


def parse_cpus(text: str | None) -> set[int] | None:
    """``"0"``, ``"0,1"`` or ``"0-3"`` → a CPU set; None or empty: no pinning."""
    if not text:
        return None
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    available = os.sched_getaffinity(0)
    if not cpus <= available:
        raise ValueError(f"CPUs {sorted(cpus - available)} are not available")
    return cpus


async def wait_quiet(
    processes: dict[str, int], cores: float = 0.1, step: float = 0.5, timeout: float = 20.0
) -> float:
    """Wait until the servers use under ``cores`` for one ``step`` (or ``timeout``): work
    left over from one phase (closing connections) must not be billed to the next.
    There is no event for "the server is idle", so this samples; returns seconds waited."""
    pids = list(processes.values())
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        before = cpu_seconds(pids)
        await asyncio.sleep(step)
        if cpu_seconds(pids) - before < cores * step:
            break
    return time.monotonic() - began
