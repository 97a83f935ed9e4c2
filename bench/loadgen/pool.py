"""The coordinator's side of the worker processes.

Workers are spawned (not forked: the coordinator holds an event loop and child
processes of its own), pinned to the client CPUs, and driven with ``(command, kwargs)``
messages; their pipes are read by the coordinator's event loop, so ramps from all
workers add up to one progress line on stderr.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import time
from dataclasses import replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from . import pipes
from .worker import WorkerConfig, run_worker

__all__ = ["WorkerPool"]


class WorkerPool:
    def __init__(self, base: WorkerConfig, count: int) -> None:
        self._configs = [replace(base, index=i) for i in range(count)]
        self._procs: list[BaseProcess] = []
        self._pipes: list[Connection] = []
        self._inbox: list[asyncio.Queue[tuple[str, Any]]] = []

    @property
    def size(self) -> int:
        return len(self._configs)

    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    def processes(self) -> dict[str, int]:
        """The workers by name, for a :class:`~.procstats.CpuWindow` of client CPU."""
        return {f"worker-{i}": pid for i, pid in enumerate(self.pids())}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        context = multiprocessing.get_context("spawn")
        for config in self._configs:
            parent, child = context.Pipe()
            proc = context.Process(target=run_worker, args=(config, child), daemon=True)
            proc.start()
            child.close()
            queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
            loop.add_reader(parent.fileno(), self._readable, parent, queue)
            self._procs.append(proc)
            self._pipes.append(parent)
            self._inbox.append(queue)

    @staticmethod
    def _readable(pipe: Connection, queue: asyncio.Queue[tuple[str, Any]]) -> None:
        try:
            queue.put_nowait(pipes.receive(pipe))
        except EOFError:
            asyncio.get_running_loop().remove_reader(pipe.fileno())
            queue.put_nowait(("died", None))

    async def call(
        self, name: str, per_worker: list[dict[str, Any]], progress: tuple[str, int] | None = None
    ) -> list[Any]:
        """Run ``name`` on every worker with its own kwargs; results in worker order."""
        for pipe, kwargs in zip(self._pipes, per_worker, strict=True):
            pipes.send(pipe, (name, kwargs))
        counts = [0] * self.size
        shown = [0.0]

        async def answer(i: int) -> Any:
            while True:
                kind, value = await self._inbox[i].get()
                if kind == "result":
                    return value
                if kind == "died":
                    raise RuntimeError(f"load worker {i} died during {name}")
                counts[i] = value
                if progress is not None and time.monotonic() - shown[0] > 0.5:
                    shown[0] = time.monotonic()
                    label, total = progress
                    print(f"\r{label}: {sum(counts)}/{total}", end="", file=sys.stderr, flush=True)

        results = await asyncio.gather(*(answer(i) for i in range(self.size)))
        if progress is not None:
            label, total = progress
            print(f"\r{label}: done ({total})      ", file=sys.stderr, flush=True)
        return list(results)

    async def call_all(self, name: str, **kwargs: Any) -> list[Any]:
        return await self.call(name, [kwargs] * self.size)

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        for pipe in self._pipes:
            try:
                pipes.send(pipe, ("exit", {}))
            except (BrokenPipeError, OSError):
                continue
        for proc in self._procs:
            await asyncio.to_thread(proc.join, 10.0)  # join() in the loop would block it
            if proc.is_alive():
                proc.kill()
            proc.join(1.0)
        for pipe in self._pipes:
            loop.remove_reader(pipe.fileno())
            pipe.close()
