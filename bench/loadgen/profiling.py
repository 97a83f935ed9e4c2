"""Sampling profiles of the server processes during a measured window (``--profile``).

The issue asks that a target not reached be explained "with the profile that shows
it". So a profile is taken by the same command as the figure, over the same window:
py-spy samples every Python server process (nats-server and redis-server are not
Python; their CPU is in the window's per-process seconds) and each window gets a
summary in the result JSON — where the samples fall by component (aioquic, nats.py,
redis-py, imaccess, the event loop, ...) and the functions with the most samples of
their own — beside the raw collapsed stacks, kept for flame graphs.

py-spy samples without pausing the process (``--nonblocking``) and runs on the load
generator's CPUs, so the profiled figures move little; they are still not the figures
of record (those come from runs without ``--profile``).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

__all__ = ["COMPONENTS", "Profiler", "component_of", "summarise"]

COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("aioquic", ("aioquic/", "qh3/")),
    ("nats.py", ("nats/",)),
    ("redis-py", ("redis/",)),
    ("flatbuffers", ("flatbuffers/",)),
    ("imaccess", ("imaccess/",)),
    ("bench (the peer)", ("bench/",)),
    ("event loop", ("asyncio/", "uvloop/", "selectors.py")),
    ("crypto", ("cryptography/", "ssl.py", "jwt/")),
)
"""What a frame's file says it belongs to, by the start of its path as py-spy writes it
(relative to ``sys.path``), first match wins; the rest is "other". A C function
(a system call, uvloop's loop, OpenSSL) counts to the Python frame that called it: the
event loop's own turn shows as ``Runner.run``."""

_RATE = 250
_TOP = 25
_LOOP_RUNS = ("Runner.run (", "BaseEventLoop.run_until_complete (", "BaseEventLoop.run_forever (")


def component_of(frame: str) -> str:
    """``frame`` as py-spy writes it: ``function (path:line)``."""
    path = frame.rpartition(" (")[2]
    for name, markers in COMPONENTS:
        if any(path.startswith(marker) or f"/{marker}" in path for marker in markers):
            return name
    return "other"


def summarise(collapsed: str) -> dict[str, Any]:
    """Where the samples fall: by component of the innermost frame (*self*) and of any
    frame the event loop called into (*inclusive*: what a callback spends, callees
    included), and the functions with the most samples of each kind.

    Samples whose innermost frame is the event loop's run itself are counted apart
    (``loop_share``) and left out of every share: they are uvloop's C code, the kernel
    under it, *and* the time a woken process waited for the CPU, which py-spy cannot
    tell from running. On a shared core that wait is most of them, so the shares are
    of the Python code's samples, which a wait does not inflate."""
    total = loop = 0
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    own_functions: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [
            _function(f) for f in stack.split(";") if not f.startswith(("process ", "thread ("))
        ]
        if not frames:
            continue
        total += count
        leaf = frames[-1]
        if leaf.startswith(_LOOP_RUNS):
            loop += count
            continue
        own[component_of(leaf)] += count
        own_functions[leaf] += count
        called = _below_loop(frames)
        for component in {component_of(frame) for frame in called}:
            inclusive[component] += count
        for function in set(called):
            functions[function] += count
    python = total - loop

    def share(counter: Counter[str], top: int | None = None) -> dict[str, float]:
        if not python:
            return {}
        return {k: round(v / python, 4) for k, v in counter.most_common(top)}

    return {
        "samples": total,
        "loop_share": round(loop / total, 4) if total else None,
        "self_by_component": share(own),
        "inclusive_by_component": share(inclusive),
        "top_self": share(own_functions, _TOP),
        "top_inclusive": share(functions, _TOP),
    }


def _function(frame: str) -> str:
    """``handle (aioquic/quic/connection.py:123)`` → ``handle (aioquic/quic/connection.py)``:
    py-spy names the line each frame is at, which splits one function over many rows."""
    head, colon, line = frame.rpartition(":")
    return f"{head})" if colon and line[:-1].isdigit() else frame


def _below_loop(frames: list[str]) -> list[str]:
    """The frames under the event loop's run (``asyncio.run`` and above are on every
    stack and say nothing); the whole stack where there is no loop."""
    for index, frame in enumerate(frames):
        if frame.startswith(_LOOP_RUNS):
            return frames[index + 1 :]
    return frames


class Profiler:
    """``start(label)`` … ``stop()`` around a measured window; a disabled profiler
    (``directory`` None) does nothing and ``stop()`` returns None."""

    def __init__(self, directory: Path | None, target: str, processes: dict[str, int]) -> None:
        self._directory = directory
        self._target = target
        self._processes = processes
        self._running: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        self._label = ""
        self._spy = _py_spy() if directory is not None else None
        if directory is not None:
            if self._spy is None:
                raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
            directory.mkdir(parents=True, exist_ok=True)

    def start(self, label: str) -> None:
        if self._directory is None or self._spy is None:
            return
        self._label = label
        for name, pid in self._processes.items():
            if not _is_python(pid):
                continue
            raw = self._directory / f"{self._target}-{label}-{name}.txt"
            argv = [
                self._spy,
                *("record", "--pid", str(pid), "--rate", str(_RATE)),
                *("--format", "raw", "--nonblocking", "--output", str(raw)),
            ]
            spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self._running[name] = (spy, raw)

    def stop(self) -> dict[str, Any] | None:
        """Stop every sampler (py-spy writes its file on SIGINT); summaries by process."""
        if self._directory is None:
            return None
        summaries: dict[str, Any] = {}
        for name, (spy, raw) in self._running.items():
            with contextlib.suppress(ProcessLookupError):
                spy.send_signal(signal.SIGINT)
            try:
                spy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
            if not raw.exists():
                summaries[name] = {"error": f"py-spy wrote nothing (exit {spy.returncode})"}
                continue
            text = raw.read_text()
            summaries[name] = {**summarise(text), "stacks": f"{raw.name}.gz"}
            with gzip.open(raw.with_name(f"{raw.name}.gz"), "wt") as packed:
                packed.write(text)
            raw.unlink()
        self._running.clear()
        return {"label": self._label, "rate_hz": _RATE, "processes": summaries}


def _is_python(pid: int) -> bool:
    try:
        command = psutil.Process(pid).cmdline()
    except psutil.Error:
        return False
    return bool(command) and "python" in os.path.basename(command[0])


def _py_spy() -> str | None:
    """The one installed beside this interpreter (the venv's), else the PATH's."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")
