"""Worker processes: one access node that uses every core.

One Python process runs on one core, and a QUIC connection costs Python CPU on every
packet, so ``imaccess access`` with ``workers: N`` (N > 1) runs a supervisor and N
worker processes, each a whole access node:

* The supervisor binds N UDP sockets on the QUIC port with ``SO_REUSEPORT`` and a BPF
  program that steers each datagram by its connection ID (:mod:`.transport.reuseport`),
  and N TCP sockets on the HTTP port (kernel hashing: a TCP connection cannot migrate).
  It keeps them all open, so socket ``i`` stays index ``i`` of the group for the node's
  life, and spawns worker ``i`` with socket ``i`` of each (``pass_fds``: the worker
  receives no other descriptor). It serves nothing itself.
* Worker ``i`` is routing target ``<node_id>-w<i>`` (its own downstream subject and
  location entries, its own drain), with its admin listener on admin port + ``i`` (port
  0 stays 0: each picks a free port, named in the banner) and ``1/N`` of
  ``limits.max_connections``; per-address and per-user limits apply per worker.
* SIGTERM or SIGINT to the supervisor drains every worker (each runs the node's graceful
  drain) and the supervisor exits 0 once all have exited 0 (1 otherwise).
* A worker that exits on its own is logged and restarted after a back-off (1 s, doubling
  to 30 s; reset after a minute up) on the same sockets; datagrams for it wait in its
  socket meanwhile. A worker that fails before it is ready at start, or
  :data:`GIVE_UP_AFTER` times in a row, makes the supervisor drain the rest and exit 1,
  for the orchestrator to deal with the whole node.
* A worker dies with its supervisor (``PR_SET_PDEATHSIG``): no orphan holds the port.

Session tickets stay per worker: a resumed connection's new Initial lands on a random
worker, so resumption and 0-RTT succeed only when it is the one that issued the ticket.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import logging
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from .settings import Settings, SettingsError, split_host_port
from .transport.reuseport import WorkerListeners, bind_reuseport, steered_cid_factory

__all__ = ["GIVE_UP_AFTER", "Supervisor", "WorkerSpec", "run_worker", "worker_settings"]

log = logging.getLogger(__name__)

GIVE_UP_AFTER = 5
"""Consecutive failed restarts of one worker before the supervisor gives up."""
_BACKOFF_MAX = 30.0
_STABLE_AFTER = 60.0
"""Seconds up after which a worker's next failure is a first one again."""
_PR_SET_PDEATHSIG = 1
_READY = "imaccess access:"
"""How a worker's ready line starts (the supervisor reads it on the worker's stdout)."""


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What a worker process is told on its command line (``--worker``)."""

    index: int
    count: int
    udp_fd: int
    tcp_fd: int
    """-1: the node has no HTTP listener."""
    supervisor_pid: int

    def argv(self) -> list[str]:
        return [
            "--worker",
            f"{self.index},{self.count},{self.udp_fd},{self.tcp_fd}",
            "--supervisor",
            str(self.supervisor_pid),
        ]

    @classmethod
    def parse(cls, worker: str, supervisor: int) -> WorkerSpec:
        index, count, udp_fd, tcp_fd = (int(part) for part in worker.split(","))
        return cls(index, count, udp_fd, tcp_fd, supervisor)


def worker_settings(settings: Settings, index: int) -> Settings:
    """The settings of worker ``index``: its node id, admin port and connection share."""
    count = settings.workers
    admin = settings.admin.listen
    if admin:
        host, port = split_host_port(admin)
        admin = f"{host}:{port + index if port else 0}"
    return dataclasses.replace(
        settings,
        node_id=f"{settings.node_id}-w{index}",
        admin=dataclasses.replace(settings.admin, listen=admin),
        limits=dataclasses.replace(
            settings.limits, max_connections=math.ceil(settings.limits.max_connections / count)
        ),
    )


# ---------------------------------------------------------------- worker side


async def run_worker(settings: Settings, spec: WorkerSpec, stop: asyncio.Event) -> int:
    """Worker ``spec.index``: an access node on the sockets the supervisor passed."""
    from .embedded import cluster_gateway

    _die_with(spec.supervisor_pid)
    if settings.workers != spec.count:
        raise SettingsError(f"worker of {spec.count} but settings say workers: {settings.workers}")
    mine = worker_settings(settings, spec.index)
    tcp = socket.socket(fileno=spec.tcp_fd) if spec.tcp_fd >= 0 else None
    if tcp is None:
        mine.http.listen = ""
    listeners = WorkerListeners(
        socket.socket(fileno=spec.udp_fd), tcp, steered_cid_factory(spec.index, spec.count)
    )
    gateway = await cluster_gateway(mine, listeners)
    await gateway.start()
    admin = "{}:{}".format(*gateway.admin.address) if gateway.admin.address[1] else "-"
    print(
        f"{_READY} worker {spec.index} node {mine.node_id} pid {os.getpid()} admin {admin} ready",
        flush=True,
    )
    await stop.wait()
    await gateway.stop()
    return 0


def _die_with(supervisor_pid: int) -> None:
    """Get SIGTERM (and drain) when the supervisor dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    if os.getppid() != supervisor_pid:  # it died before the prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


# ------------------------------------------------------------ supervisor side


@dataclass(eq=False)
class _Worker:
    index: int
    node_id: str
    process: asyncio.subprocess.Process | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    admin: str = "-"
    started_at: float = 0.0
    failures: int = 0
    """Consecutive exits without a stable run."""
    reader: asyncio.Task[None] | None = None


class Supervisor:
    """Binds the node's ports, runs the workers, restarts them, drains them on stop."""

    def __init__(self, settings: Settings, command: Sequence[str]) -> None:
        """``command``: the argv of ``imaccess [--config FILE] access``, to which each
        worker's ``--worker`` arguments are appended."""
        self.settings = settings
        self._command = list(command)
        count = settings.workers
        self._workers = [_Worker(i, f"{settings.node_id}-w{i}") for i in range(count)]
        self._udp: list[socket.socket] = []
        self._tcp: list[socket.socket] = []
        self.address: tuple[str, int] = settings.listen_address
        self.http_address: tuple[str, int] | None = None

    async def run(self, stop: asyncio.Event) -> int:
        self._bind()
        try:
            for worker in self._workers:
                await self._spawn(worker)
            if not await self._all_ready(stop):
                code = await self._terminate_all()
                return code if stop.is_set() else 1
            self._banner()
            keepers = [asyncio.create_task(self._keep(w, stop)) for w in self._workers]
            await asyncio.wait(
                [asyncio.create_task(stop.wait()), *keepers], return_when=asyncio.FIRST_COMPLETED
            )
            gave_up = not stop.is_set()
            stop.set()  # a keeper that gave up stops the others
            await asyncio.gather(*keepers)
            code = await self._terminate_all()
            return 1 if gave_up else code
        finally:
            for sock in [*self._udp, *self._tcp]:
                sock.close()

    def _bind(self) -> None:
        count = self.settings.workers
        host, port = self.settings.listen_address
        self._udp = bind_reuseport(host, port, count, socket.SOCK_DGRAM)
        name = self._udp[0].getsockname()
        self.address = (str(name[0]), int(name[1]))
        if self.settings.http.listen:
            http_host, http_port = split_host_port(self.settings.http.listen)
            try:
                self._tcp = bind_reuseport(http_host, http_port, count, socket.SOCK_STREAM)
            except OSError as exc:  # as a single node does: log it, serve QUIC anyway
                log.error("HTTP listener on %s failed: %s", self.settings.http.listen, exc)
            else:
                name = self._tcp[0].getsockname()
                self.http_address = (str(name[0]), int(name[1]))

    async def _spawn(self, worker: _Worker) -> None:
        udp = self._udp[worker.index]
        tcp = self._tcp[worker.index] if self._tcp else None
        spec = WorkerSpec(
            worker.index,
            len(self._workers),
            udp.fileno(),
            tcp.fileno() if tcp else -1,
            os.getpid(),
        )
        worker.ready.clear()
        worker.process = await asyncio.create_subprocess_exec(
            *self._command,
            *spec.argv(),
            pass_fds=[sock.fileno() for sock in (udp, tcp) if sock is not None],
            stdout=asyncio.subprocess.PIPE,
        )
        worker.started_at = time.monotonic()
        worker.reader = asyncio.create_task(self._read(worker, worker.process))

    async def _read(self, worker: _Worker, process: asyncio.subprocess.Process) -> None:
        """The worker's stdout: its ready line is noted, anything else passed on."""
        assert process.stdout is not None
        async for line in process.stdout:
            text = line.decode(errors="replace")
            if text.startswith(_READY) and text.rstrip().endswith(" ready"):
                worker.admin = text.split(" admin ", 1)[1].split()[0]
                worker.ready.set()
            else:
                sys.stdout.write(text)
                sys.stdout.flush()

    async def _ready_or_exit(self, worker: _Worker, stop: asyncio.Event) -> bool:
        """Whether the worker became ready (False: it exited, or we were stopped)."""
        assert worker.process is not None
        waits = [
            asyncio.create_task(worker.ready.wait()),
            asyncio.create_task(worker.process.wait()),
            asyncio.create_task(stop.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        return worker.ready.is_set()

    async def _all_ready(self, stop: asyncio.Event) -> bool:
        results = await asyncio.gather(*(self._ready_or_exit(w, stop) for w in self._workers))
        for worker, ready in zip(self._workers, results, strict=True):
            if not ready and not stop.is_set():
                assert worker.process is not None
                log.error(
                    "worker %d exited at start with %s",
                    worker.index,
                    worker.process.returncode,
                    extra={"node_id": worker.node_id},
                )
        return all(results)

    async def _keep(self, worker: _Worker, stop: asyncio.Event) -> None:
        """Restart ``worker`` whenever it exits, until ``stop``; returns early (having
        given up) after :data:`GIVE_UP_AFTER` failures in a row."""
        while True:
            assert worker.process is not None
            exited = asyncio.create_task(worker.process.wait())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait([exited, stopping], return_when=asyncio.FIRST_COMPLETED)
            exited.cancel()
            stopping.cancel()
            if stop.is_set():
                return
            up = time.monotonic() - worker.started_at
            worker.failures = 1 if up >= _STABLE_AFTER else worker.failures + 1
            code = worker.process.returncode
            if worker.failures > GIVE_UP_AFTER:
                log.error(
                    "worker %d exited with %s, %d times in a row: giving up",
                    worker.index,
                    code,
                    worker.failures,
                    extra={"node_id": worker.node_id},
                )
                return
            delay = min(_BACKOFF_MAX, 2.0 ** (worker.failures - 1))
            log.error(
                "worker %d exited with %s after %.0f s; restarting in %.0f s",
                worker.index,
                code,
                up,
                delay,
                extra={"node_id": worker.node_id},
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return
            await self._spawn(worker)
            if await self._ready_or_exit(worker, stop):
                print(f"  {self._describe(worker)} (restarted)", flush=True)

    async def _terminate_all(self) -> int:
        """SIGTERM every live worker (each drains), wait, and SIGKILL whoever outlasts
        the drain; 0 when every worker exited 0."""
        drain = self.settings.drain
        live = [w.process for w in self._workers if w.process and w.process.returncode is None]
        for process in live:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        if live:
            grace = drain.deadline + drain.task_grace + 15.0
            _, late = await asyncio.wait(
                [asyncio.create_task(p.wait()) for p in live], timeout=grace
            )
            if late:
                log.error("%d worker(s) did not finish draining: killed", len(late))
                for process in live:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                await asyncio.gather(*(p.wait() for p in live))
        readers = [w.reader for w in self._workers if w.reader is not None]
        await asyncio.gather(*readers, return_exceptions=True)
        codes = [w.process.returncode for w in self._workers if w.process is not None]
        return 0 if all(code == 0 for code in codes) else 1

    def _describe(self, worker: _Worker) -> str:
        pid = worker.process.pid if worker.process else 0
        return f"worker {worker.index}: node {worker.node_id} pid {pid} admin {worker.admin}"

    def _banner(self) -> None:
        host, port = self.address
        http = ""
        if self.http_address is not None:
            http = " (WebSocket ws://{}:{}/ws)".format(*self.http_address)
        print(
            f"{_READY} node {self.settings.node_id} ready on quic://{host}:{port}{http}"
            f" with {len(self._workers)} workers",
            flush=True,
        )
        for worker in self._workers:
            print(f"  {self._describe(worker)}", flush=True)
