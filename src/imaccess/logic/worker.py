"""A Logic worker on NATS: consumes upstream, serves Sync and broadcast requests.

Upstream in ``jetstream`` mode is split by sender into ``nats.partitions`` subjects
(``im.logic.upstream.<p>``), each with a durable consumer ``logic-group-<p>`` shared by
every worker. **One worker at a time consumes a partition** (JetStream's pinned-client
priority group, :mod:`imaccess.logic.partition`), so it may hold many of the partition's
messages at once (``batch`` per pull request, ``2 * batch`` unacked) and still process
them in the order JetStream accepted them: one sender's messages are stored in order
however many workers run. Which worker asks for which partition is agreed through
heartbeats (:mod:`imaccess.logic.membership`), so the partitions spread over the workers.

Each turn the worker takes everything its partitions delivered, processes it as one batch
(``LogicHandler.process_batch``: one Redis pipeline for all inbox appends, one for all
locations, one publish per node) and then acks each message. A worker that dies between
delivery and ack leaves its messages unacked: JetStream redelivers them after
``ack_wait``, and the worker that gets the pin next processes nothing of the partition
until all of them are in its hands (the take-over check), then goes by stream sequence:
order is kept across a crash too. Processing is idempotent (inbox appends are keyed by
``from_user:msg_id``), so a redelivery stores nothing twice. A batch that fails is retried
partition by partition after ``retry_delay``, in place: the partition's later messages
wait behind it, and one poisoned partition does not stop the others.

``core`` mode queue-subscribes ``im.logic.upstream.>`` instead: what arrives while no
worker listens, or what a worker holds when it dies, is lost (at most once, as
configured), and workers do not keep one sender's order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol, cast

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from ..bus import BusUnavailable, SyncResult, Upstream, UpstreamHandler
from ..nats_bus import (
    BROADCAST_REQUEST_SUBJECT,
    LOGIC_GROUP,
    SYNC_SUBJECT,
    UPSTREAM_SUBJECT,
    close_quietly,
    connect,
    decode_upstream,
    ensure_stream,
)
from ..protocol.codec import encode_table
from ..protocol.codes import Code
from ..protocol.messages import ChatMessage, SyncResponse
from ..settings import NatsSettings
from .membership import Membership
from .partition import Partition, ensure_consumer

__all__ = ["WORKERS_SUBJECT", "LogicHandler", "LogicWorker", "sync_reply"]

log = logging.getLogger(__name__)

WORKERS_SUBJECT = "im.logic.workers"
"""Worker heartbeats (``+id``) and goodbyes (``-id``), core NATS."""
_BEAT = 1.0
_TICK = 0.2
"""Seconds between housekeeping turns: heartbeats, lost requests, take-over checks."""


class LogicHandler(UpstreamHandler, Protocol):
    """What a worker needs of Logic (:class:`~imaccess.logic.service.LogicService`)."""

    async def process_batch(self, messages: Sequence[Upstream]) -> None:
        """``process`` each, in order; idempotent as a whole (a failed batch is retried)."""

    async def broadcast(
        self, content: str, *, content_type: int = 0, msg_id: str | None = None
    ) -> ChatMessage: ...


def sync_reply(result: SyncResult, max_payload: int) -> bytes:
    """A SyncResponse table within ``max_payload``: a full batch of large messages can
    exceed a NATS payload, so trailing messages are cut (``has_more`` tells the client)."""
    messages, has_more = result.messages, result.has_more
    while True:
        body = encode_table(SyncResponse(int(Code.OK), messages, result.max_seq, has_more))
        if len(body) <= max_payload or len(messages) <= 1:
            return body
        messages, has_more = messages[: len(messages) // 2], True


class LogicWorker:
    """One worker. ``start()`` then ``stop()``; or ``run()``, which returns after
    ``stop()`` and, when cancelled, lets go of everything unacked (a crash, as far as
    JetStream is concerned: redelivered to another worker after ``ack_wait``)."""

    def __init__(
        self,
        settings: NatsSettings,
        logic: LogicHandler,
        *,
        retry_delay: float = 1.0,
        fetch_timeout: float = 1.0,
        batch: int = 128,
        max_requests: int = 256,
        linger: float = 0.0,
        name: str = "imaccess-logic",
    ) -> None:
        """``retry_delay``: how long a failed batch waits before it is tried again.
        ``fetch_timeout``: life of an idle pull request (and so of a graceful hand-back).
        ``batch``: messages per pull request; up to twice that are held per partition.
        ``max_requests``: Sync/broadcast requests served concurrently.
        ``linger``: how long to let upstream messages gather before a batch."""
        if settings.upstream not in ("jetstream", "core"):
            raise ValueError(
                f"nats.upstream must be 'jetstream' or 'core', not {settings.upstream!r}"
            )
        self._settings = settings
        self._logic = logic
        self._retry_delay = retry_delay
        self._fetch_timeout = fetch_timeout
        self._batch = batch
        self._linger = linger
        self._name = name
        self._membership = Membership(f"{name}.{uuid.uuid4().hex[:12]}", ttl=3 * _BEAT)
        self._slots = asyncio.Semaphore(max_requests)
        self._nc: NATS | None = None
        self._partitions: list[Partition] = []
        self._subs: list[Subscription] = []
        self._consumers: list[asyncio.Task[None]] = []
        self._requests: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._failing = False

    def partitions(self) -> set[int]:
        """The partitions this worker asks for now (after the membership it heard)."""
        return self._membership.mine(self._settings.partitions, time.monotonic())

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._nc is not None or self._stopping.is_set():
            raise RuntimeError("a LogicWorker starts once")
        nc = self._nc = await connect(self._settings, self._name)
        try:
            for subject, handler in (
                (SYNC_SUBJECT, self._on_sync),
                (BROADCAST_REQUEST_SUBJECT, self._on_broadcast),
            ):
                self._subs.append(await nc.subscribe(subject, queue=LOGIC_GROUP, cb=handler))
            if self._settings.upstream == "jetstream":
                await self._start_partitions(nc)
            else:
                self._subs.append(
                    await nc.subscribe(f"{UPSTREAM_SUBJECT}.>", queue=LOGIC_GROUP, cb=self._on_core)
                )
            # serving before start() returns: core upstream published after it is not lost
            await nc.flush(timeout=max(1, math.ceil(self._settings.request_timeout)))
        except (nats.errors.Error, TimeoutError, BusUnavailable) as exc:
            await self._abort()
            raise BusUnavailable(f"Logic worker did not start: {exc}") from exc
        except BaseException:
            await self._abort()
            raise

    async def _start_partitions(self, nc: NATS) -> None:
        js: JetStreamContext = nc.jetstream(timeout=self._settings.request_timeout)
        await ensure_stream(js, self._settings)
        for index in range(self._settings.partitions):
            await ensure_consumer(nc, self._settings, index, 2 * self._batch)
            partition = Partition(index, self._settings.stream)
            await self._listen(partition)
            self._partitions.append(partition)
        self._subs.append(await nc.subscribe(WORKERS_SUBJECT, cb=self._on_worker))
        await self._announce("+")
        # the running workers answer at once: asking before hearing them would take
        # their partitions' pins first and cost a hand-over each
        await asyncio.sleep(_TICK)
        self._consumers += [
            asyncio.create_task(self._consume(), name=f"{self._name}-consume"),
            asyncio.create_task(self._tick(), name=f"{self._name}-tick"),
        ]

    async def stop(self, grace: float = 10.0) -> None:
        """Finish the batch in hand, let the pins go and hand back what arrives after
        (nak, no delay: the next holder gets it first), answer the requests in flight,
        then close. After ``grace`` seconds, give up as :meth:`run`'s cancellation does."""
        if self._stopped.is_set():
            return
        self._stopping.set()
        self._wake.set()
        if self._partitions:
            with contextlib.suppress(nats.errors.Error, BusUnavailable):
                await self._announce("-")  # the others ask for its partitions from now
        if self._consumers:
            _, pending = await asyncio.wait(set(self._consumers), timeout=grace)
            if pending:
                log.warning("worker %s: batch in hand not done after %.1fs", self._name, grace)
                await self._abort()
                return
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await asyncio.wait_for(self._hand_back(), grace)
        for sub in self._subs:
            # Subscription.drain is untyped in nats-py 2.16; it returns None when done
            drain = cast(Callable[[], Awaitable[None]], sub.drain)
            try:
                await drain()
            except nats.errors.Error as exc:
                log.debug("draining a subscription failed: %s", exc)
        if self._requests:
            await asyncio.wait(set(self._requests), timeout=grace)
        nc, self._nc = self._nc, None
        await close_quietly(nc)
        self._stopped.set()

    async def run(self) -> None:
        """Start (unless started) and serve until :meth:`stop`."""
        if self._nc is None:
            await self.start()
        try:
            await self._stopped.wait()
        except asyncio.CancelledError:
            await self._abort()
            raise

    async def _abort(self) -> None:
        """Drop everything without acking or answering: what a crash does."""
        self._stopping.set()
        tasks = [*self._consumers, *self._requests]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            await nc.close()
        self._stopped.set()

    async def _hand_back(self) -> None:
        """Stopping: let each pin go, then wait for the open requests to end (their 423
        or expiry), naking what still arrives, so the successor gets it at once and in
        order (the take-over check makes it wait for anything still on its way)."""
        nc = self._require()
        while True:
            for partition in self._partitions:
                if partition.pin is not None:  # first: a nak must not come back to us
                    await partition.unpin(nc, self._settings.request_timeout)
                for seq in sorted(partition.held):
                    await self._settle(partition.held.pop(seq).nak())
            if not any(p.open() for p in self._partitions):
                break
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), _TICK)
        for partition in self._partitions:
            if partition.sub is not None:
                await partition.sub.unsubscribe()

    # -------------------------------------------------------------- membership

    async def _announce(self, sign: str) -> None:
        nc = self._require()
        await nc.publish(WORKERS_SUBJECT, (sign + self._membership.me).encode())

    async def _on_worker(self, msg: Msg) -> None:
        text = msg.data.decode(errors="replace")
        worker = text[1:]
        if text.startswith("-"):
            self._membership.left(worker)
        elif self._membership.heard(worker, time.monotonic()) and not self._stopping.is_set():
            await self._announce("+")
            await self._withdraw()
        self._wake.set()

    async def _withdraw(self) -> None:
        """Cancel the open requests on partitions this worker no longer should ask for
        and holds no pin of: a request cannot be cancelled, but the server drops one
        whose reply subject lost its interest, so those inboxes are replaced."""
        mine = self.partitions()
        for partition in self._partitions:
            if partition.index in mine or partition.pin is not None or partition.held:
                continue
            if partition.open():
                await self._listen(partition)

    async def _listen(self, partition: Partition) -> None:
        nc = self._require()
        if partition.sub is not None:
            await partition.sub.unsubscribe()
        partition.credit = 0
        partition.inbox = nc.new_inbox()
        partition.sub = await nc.subscribe(
            partition.inbox, cb=functools.partial(self._on_pull, partition)
        )

    async def _tick(self) -> None:
        """Heartbeats, and a turn of the consume loop every tick (lost requests are
        renewed, take-over checks repeated, failed batches retried)."""
        next_beat = time.monotonic() + _BEAT
        while not self._stopping.is_set():
            await asyncio.sleep(_TICK)
            if time.monotonic() >= next_beat:
                next_beat += _BEAT
                with contextlib.suppress(nats.errors.Error):
                    await self._announce("+")
            self._wake.set()

    # ------------------------------------------------------------------- upstream

    async def _on_pull(self, partition: Partition, msg: Msg) -> None:
        if partition.received(msg):
            self._wake.set()
        elif not self._stopping.is_set():
            await self._ask(partition)  # a request ended: keep one open

    async def _ask(self, partition: Partition, mine: set[int] | None = None) -> None:
        """Keep a pull request open on a partition this worker should consume."""
        if partition.index not in (self.partitions() if mine is None else mine):
            return
        body = partition.request(self._batch, self._fetch_timeout)
        if body is not None:
            await self._require().publish(partition.next_subject, body, reply=partition.inbox)

    async def _consume(self) -> None:
        while not self._stopping.is_set():
            await self._wake.wait()
            if self._linger:
                await asyncio.sleep(self._linger)  # let more messages join the batch
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                await self._turn()
            except (nats.errors.Error, TimeoutError) as exc:  # reconnecting, leader moving
                # one line when an outage starts, not one per retry
                level = logging.DEBUG if self._failing else logging.WARNING
                log.log(level, "worker %s: JetStream request failed, retrying: %r", self._name, exc)
                self._failing = True
                continue
            if self._failing:
                log.warning("worker %s: JetStream answers again", self._name)
                self._failing = False

    async def _turn(self) -> None:
        nc = self._require()
        now = time.monotonic()
        mine = self.partitions()
        ready = []
        for partition in self._partitions:
            if (
                partition.held
                and partition.retry_at <= now
                and await partition.settle(nc, self._settings.request_timeout, _TICK)
            ):
                ready.append(partition)
        if ready:
            await self._process(ready)
        for partition in self._partitions:
            if partition.index in mine:
                await self._ask(partition, mine)
            elif partition.pin is not None and not partition.held:
                # another worker should have it (it joined, or we disagreed): hand over
                await partition.unpin(nc, self._settings.request_timeout)

    async def _process(self, ready: list[Partition]) -> None:
        """One batch for all ready partitions; on failure, each partition on its own."""
        groups: list[tuple[Partition, list[int], list[Upstream]]] = []
        for partition in ready:
            seqs, upstreams = [], []
            for seq in sorted(partition.held):
                msg = partition.held[seq]
                try:
                    upstreams.append(decode_upstream(msg.data, msg.headers))
                except ValueError as exc:
                    # redelivering bytes that never decode would loop forever
                    log.error("worker %s: terminating undecodable upstream: %s", self._name, exc)
                    del partition.held[seq]
                    await self._settle(msg.term())
                    continue
                seqs.append(seq)
            if upstreams:
                groups.append((partition, seqs, upstreams))
        if not groups:
            return
        try:
            await self._logic.process_batch([u for _, _, us in groups for u in us])
        except Exception:
            if len(groups) == 1:
                self._failed(groups[0][0], groups[0][2])
                return
            for group in groups:
                await self._process_group(*group)
            return
        for partition, seqs, _ in groups:
            await self._ack(partition, seqs)

    async def _process_group(
        self, partition: Partition, seqs: list[int], upstreams: list[Upstream]
    ) -> None:
        try:
            await self._logic.process_batch(upstreams)
        except Exception:
            self._failed(partition, upstreams)
            return
        await self._ack(partition, seqs)

    def _failed(self, partition: Partition, upstreams: list[Upstream]) -> None:
        log.exception(
            "worker %s: processing %d messages of partition %d (first %s) failed; "
            "retrying in %.1fs",
            self._name,
            len(upstreams),
            partition.index,
            upstreams[0].dedupe_key,
            self._retry_delay,
        )
        partition.retry_at = time.monotonic() + self._retry_delay

    async def _ack(self, partition: Partition, seqs: list[int]) -> None:
        for seq in seqs:
            msg = partition.held.pop(seq, None)  # the latest delivery, if redelivered meanwhile
            if msg is not None:
                await self._settle(msg.ack())

    async def _settle(self, reply: Coroutine[Any, Any, None]) -> None:
        """An ack lost on the way only means a redelivery, which processing tolerates."""
        try:
            await reply
        except nats.errors.Error as exc:
            log.warning("worker %s: ack/nak not sent: %s", self._name, exc)

    def _require(self) -> NATS:
        if self._nc is None:
            raise BusUnavailable("Logic worker not started")
        return self._nc

    async def _on_core(self, msg: Msg) -> None:
        try:
            upstream = decode_upstream(msg.data, msg.headers)
        except ValueError as exc:
            log.error("worker %s: dropping undecodable upstream message: %s", self._name, exc)
            return
        try:
            await self._logic.process(upstream)
        except Exception:
            log.exception("worker %s: core upstream %s lost", self._name, upstream.dedupe_key)

    # ------------------------------------------------------------------- requests

    async def _on_sync(self, msg: Msg) -> None:
        await self._spawn(self._serve_sync(msg))

    async def _on_broadcast(self, msg: Msg) -> None:
        await self._spawn(self._serve_broadcast(msg))

    async def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Serve requests concurrently (Logic awaits its stores), but at most
        ``max_requests`` at once: beyond that the subscription's queue absorbs them."""
        await self._slots.acquire()
        task = asyncio.create_task(work)
        self._requests.add(task)
        task.add_done_callback(self._request_done)

    def _request_done(self, task: asyncio.Task[None]) -> None:
        self._requests.discard(task)
        self._slots.release()

    async def _serve_sync(self, msg: Msg) -> None:
        try:
            request = json.loads(msg.data)
            user_id = int(request["user_id"])
            since_seq = int(request.get("since_seq", 0))
            limit = int(request.get("limit", 0))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("worker %s: malformed sync request: %s", self._name, exc)
            await self._respond(msg, encode_table(SyncResponse(int(Code.INVALID_MESSAGE))))
            return
        try:
            result = await self._logic.handle_sync(user_id, since_seq, limit)
        except Exception:
            log.exception("worker %s: sync for user %d failed", self._name, user_id)
            await self._respond(msg, encode_table(SyncResponse(int(Code.UNAVAILABLE))))
            return
        max_payload = self._nc.max_payload if self._nc is not None else 1 << 20
        await self._respond(msg, sync_reply(result, max_payload))

    async def _serve_broadcast(self, msg: Msg) -> None:
        try:
            request = json.loads(msg.data)
            content = request["content"]
            content_type = int(request.get("content_type", 0))
            if not isinstance(content, str):
                raise TypeError("content must be a string")
        except (ValueError, KeyError, TypeError) as exc:
            await self._respond(msg, json.dumps({"error": f"malformed request: {exc}"}).encode())
            return
        try:
            message = await self._logic.broadcast(content, content_type=content_type)
        except Exception as exc:
            log.exception("worker %s: broadcast failed", self._name)
            await self._respond(msg, json.dumps({"error": str(exc)}).encode())
            return
        await self._respond(msg, json.dumps({"msg_id": message.msg_id}).encode())

    async def _respond(self, msg: Msg, payload: bytes) -> None:
        if not msg.reply:
            return  # published without a reply subject: nobody waits for an answer
        try:
            await msg.respond(payload)
        except nats.errors.Error as exc:
            log.warning("worker %s: reply not sent: %s", self._name, exc)
