"""One load-generator process: holds many client connections and runs phases on command.

The coordinator (:mod:`.pool`) sends ``(command, kwargs)`` over a pipe; the worker runs
it on its own event loop (uvloop) and answers ``("result", value)``, with
``("progress", n)`` lines in between during ramps. Connections live across commands,
so a ramp, a hold and several message storms run over the same population.
"""

from __future__ import annotations

import asyncio
import os
import random
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import aiohttp

from imaccess.auth import issue_token
from imaccess.runtime import tune_garbage_collector
from imaccess.settings import AuthSettings

from . import pipes
from .imclient import ImClient, client_configuration
from .quicmux import QuicMux
from .recorder import Recorder
from .sioclient import SioClient
from .stacks import DEFAULT_STACK, load_stack

__all__ = ["WorkerConfig", "run_worker"]

AnyClient = ImClient | SioClient
_POLL = 0.01  # how often a drain checks its counters (a phase end, not a hot path)


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    index: int
    transport: str
    endpoints: list[tuple[str, int]]
    secret: str
    idle_timeout: float
    cpus: set[int] | None = None
    client_stack: str = DEFAULT_STACK
    """QUIC library of the clients: "qh3" or "aioquic" (see :mod:`.stacks`)."""


def run_worker(config: WorkerConfig, pipe: Connection) -> None:
    """Process entry point (multiprocessing, spawn)."""
    if config.cpus:
        os.sched_setaffinity(0, config.cpus)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import uvloop

    # tens of thousands of client connections are millions of objects: without this, the
    # generator's own full collections (seconds each) would show up as server latency
    tune_garbage_collector()
    uvloop.run(Worker(config, pipe).serve())


class Worker:
    def __init__(self, config: WorkerConfig, pipe: Connection) -> None:
        self.config = config
        self.pipe = pipe
        self.recorder = Recorder()
        self.clients: dict[int, AnyClient] = {}
        self.tickets: dict[int, Any] = {}
        self._auth = AuthSettings(secret=config.secret)
        self._mux: QuicMux | None = None
        self._session: aiohttp.ClientSession | None = None
        self._msg_counter = 0
        self._storming = False

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        if self.config.transport == "quic":
            self._mux = await QuicMux.open(load_stack(self.config.client_stack), self.recorder)
        else:
            connector = aiohttp.TCPConnector(limit=0, force_close=False)
            self._session = aiohttp.ClientSession(connector=connector)
        commands: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue()

        def readable() -> None:
            try:
                commands.put_nowait(pipes.receive(self.pipe))
            except EOFError:
                loop.remove_reader(self.pipe.fileno())
                commands.put_nowait(None)

        loop.add_reader(self.pipe.fileno(), readable)
        try:
            while (item := await commands.get()) is not None:
                name, kwargs = item
                if name == "exit":
                    pipes.send(self.pipe, ("result", None))
                    break
                result = await getattr(self, f"cmd_{name}")(**kwargs)
                pipes.send(self.pipe, ("result", result))
        finally:
            loop.remove_reader(self.pipe.fileno())
            await self.cmd_close_all()
            if self._session is not None:
                await self._session.close()
            if self._mux is not None:
                self._mux.close()

    # ------------------------------------------------------------ commands

    async def cmd_reset(self) -> None:
        self.recorder.reset()

    async def cmd_snapshot(self) -> dict[str, Any]:
        return self.recorder.snapshot()

    async def cmd_connect(
        self,
        users: list[tuple[int, int]],
        rate: float | None,
        concurrency: int,
        resume: bool = False,
        heartbeat: float | None = None,
        keepalive: str = "ping",
    ) -> dict[str, Any]:
        """Open and authenticate one connection per (user_id, endpoint index).

        ``rate``: new connections per second from this worker (None: as fast as the
        ``concurrency`` bound on handshakes in flight allows). ``heartbeat``: each
        connection heartbeats from its authentication on, first one at a random point of
        the first interval, so a long ramp never lets early connections time out and the
        population's heartbeats are spread evenly."""
        rng = random.Random(self.config.index)
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(concurrency)
        started = time.monotonic()
        done = 0
        last_report = started

        async def one(user_id: int, endpoint: int) -> None:
            nonlocal done, last_report
            async with slots:
                client = self._new_client(user_id, endpoint, resume)
                self.clients[user_id] = client
                if await client.ready and heartbeat:
                    client.start_heartbeats(heartbeat, rng.uniform(0, heartbeat), keepalive)
            done += 1
            now = time.monotonic()
            if now - last_report > 0.25:
                last_report = now
                pipes.send(self.pipe, ("progress", done))

        tasks = []
        for i, (user_id, endpoint) in enumerate(users):
            if rate:
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing the ramp is the point here
            tasks.append(loop.create_task(one(user_id, endpoint)))
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - started
        alive = sum(1 for u, _ in users if self.clients[u].alive)
        return {"connected": alive, "elapsed": elapsed, "recorder": self.recorder.snapshot()}

    async def cmd_alive(self) -> int:
        return self._alive()

    async def cmd_close_all(self, keep_tickets: bool = False) -> int:
        if keep_tickets:
            self.tickets = {u: c.ticket for u, c in self.clients.items() if c.ticket is not None}
        closed = len(self.clients)
        for client in self.clients.values():
            client.close()
        self.clients.clear()
        return closed

    async def cmd_chat(
        self,
        pairs: list[tuple[int, int]],
        rate: float | None,
        seconds: float,
        start_at: float,
        size: int,
        window: int,
        drain: float,
    ) -> dict[str, Any]:
        """Both ends of each pair send to each other: at ``rate`` messages/s in total from
        this worker, or (``rate`` None) closed-loop with ``window`` unacked per sender.
        Then wait up to ``drain`` s for the acks and deliveries still on their way."""
        self.recorder.reset()
        senders = [
            (self.clients[a], b) for a, b in pairs if a in self.clients and b in self.clients
        ]
        senders += [
            (self.clients[b], a) for a, b in pairs if a in self.clients and b in self.clients
        ]
        if not senders:
            return {"recorder": self.recorder.snapshot(), "send_seconds": 0.0}
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))  # all workers start together
        began = time.monotonic()
        if rate is None:
            await self._closed_loop(senders, seconds, size, window)
        else:
            await self._fixed_rate(senders, rate, seconds, size)
        send_seconds = time.monotonic() - began
        recorder = self.recorder
        await self._until(
            lambda: (
                recorder.acked + recorder.refused >= recorder.sent
                and recorder.delivered >= recorder.sent
            ),
            drain,
        )
        return {"recorder": recorder.snapshot(), "send_seconds": send_seconds, "began": began}

    async def cmd_wait_broadcasts(self, timeout: float) -> dict[str, Any]:
        """Until every live connection of this worker has the broadcast (or ``timeout``);
        "live" is re-counted as it goes, since the server may close some meanwhile."""
        await self._until(lambda: self.recorder.broadcasts >= self._alive(), timeout)
        return self.recorder.snapshot()

    # ------------------------------------------------------------ internals

    def _new_client(self, user_id: int, endpoint: int, resume: bool) -> AnyClient:
        token = issue_token(self._auth, user_id)
        host, port = self.config.endpoints[endpoint]
        if self._mux is not None:
            client = ImClient(user_id, token, self.recorder)
            ticket = self.tickets.get(user_id) if resume else None
            configuration = client_configuration(self._mux.stack, self.config.idle_timeout, ticket)
            client.connect(self._mux, (host, port), configuration)
            return client
        assert self._session is not None
        sio = SioClient(user_id, token, self.recorder)
        sio.connect(self._session, f"ws://{host}:{port}/socket.io/?EIO=4&transport=websocket")
        return sio

    def _alive(self) -> int:
        return sum(1 for c in self.clients.values() if c.alive)

    def _msg_id(self) -> str:
        self._msg_counter += 1
        return f"w{self.config.index}-{self._msg_counter}"

    async def _fixed_rate(
        self, senders: list[tuple[AnyClient, int]], rate: float, seconds: float, size: int
    ) -> None:
        began = time.monotonic()
        sent = 0
        turn = 0
        tick = min(0.005, 1.0 / rate)
        while (elapsed := time.monotonic() - began) < seconds:
            due = int(elapsed * rate) - sent
            for _ in range(due):
                client, to_user = senders[turn % len(senders)]
                turn += 1
                client.send_chat(to_user, size, self._msg_id())
            sent += max(0, due)
            await asyncio.sleep(tick)  # the pacing clock of a fixed-rate storm

    async def _closed_loop(
        self, senders: list[tuple[AnyClient, int]], seconds: float, size: int, window: int
    ) -> None:
        peers = {id(client): to_user for client, to_user in senders}
        self._storming = True

        def next_message(client: Any) -> None:
            if self._storming:
                client.send_chat(peers[id(client)], size, self._msg_id())

        for client, to_user in senders:
            client.on_ack = next_message
            for _ in range(window):
                client.send_chat(to_user, size, self._msg_id())
        await asyncio.sleep(seconds)  # the storm runs on ack callbacks meanwhile
        self._storming = False
        for client, _ in senders:
            client.on_ack = None

    async def _until(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_POLL)  # counters change in protocol callbacks, not events
        return True
