"""A Logic worker on NATS: consumes upstream, serves Sync and broadcast requests.

Upstream in ``jetstream`` mode is split by sender into ``nats.partitions`` subjects
(``im.logic.upstream.<p>``). Each partition has a durable pull consumer ``logic-group-<p>``
shared by every worker, with **one message in flight**: so one sender's messages are
stored in the order JetStream accepted them, however many workers run, while the
partitions spread the load across workers. A message leaves its consumer only when a
worker acks it *after* ``LogicService.process`` returned (stored and routed). A worker that
dies between fetch and ack leaves it unacked: JetStream hands it to another worker after
``ack_wait``, and the partition waits for it (order is kept across a crash too).
Processing is idempotent (inbox appends are keyed by ``from_user:msg_id``), so such a
redelivery stores nothing twice.

``core`` mode queue-subscribes ``im.logic.upstream.>`` instead: what arrives while no
worker listens, or what a worker holds when it dies, is lost (at most once, as
configured), and workers do not keep one sender's order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, cast

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from ..bus import BusUnavailable, SyncResult, UpstreamHandler
from ..nats_bus import (
    BROADCAST_REQUEST_SUBJECT,
    LOGIC_GROUP,
    SYNC_SUBJECT,
    UPSTREAM_SUBJECT,
    close_quietly,
    connect,
    decode_upstream,
    ensure_stream,
    upstream_subject,
)
from ..protocol.codec import encode_table
from ..protocol.codes import Code
from ..protocol.messages import ChatMessage, SyncResponse
from ..settings import NatsSettings

__all__ = ["LogicHandler", "LogicWorker", "sync_reply"]

log = logging.getLogger(__name__)


class LogicHandler(UpstreamHandler, Protocol):
    """What a worker needs of Logic (:class:`~imaccess.logic.service.LogicService`)."""

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
        max_requests: int = 256,
        name: str = "imaccess-logic",
    ) -> None:
        """``retry_delay``: how long a failed message waits before redelivery.
        ``fetch_timeout``: longest idle fetch (and so the longest graceful stop wait).
        ``max_requests``: Sync/broadcast requests served concurrently."""
        if settings.upstream not in ("jetstream", "core"):
            raise ValueError(
                f"nats.upstream must be 'jetstream' or 'core', not {settings.upstream!r}"
            )
        self._settings = settings
        self._logic = logic
        self._retry_delay = retry_delay
        self._fetch_timeout = fetch_timeout
        self._name = name
        self._slots = asyncio.Semaphore(max_requests)
        self._nc: NATS | None = None
        self._pulls: list[JetStreamContext.PullSubscription] = []
        self._subs: list[Subscription] = []
        self._consumers: list[asyncio.Task[None]] = []
        self._requests: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._fetch_failing = False

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
                js = nc.jetstream(timeout=self._settings.request_timeout)
                await ensure_stream(js, self._settings)
                for partition in range(self._settings.partitions):
                    config = self._consumer_config(partition)
                    await js.add_consumer(self._settings.stream, config)
                    pull = await js.pull_subscribe_bind(
                        durable=config.durable_name or "", stream=self._settings.stream
                    )
                    self._pulls.append(pull)
                    self._consumers.append(
                        asyncio.create_task(self._consume(pull), name=f"{self._name}-p{partition}")
                    )
            else:
                self._subs.append(
                    await nc.subscribe(f"{UPSTREAM_SUBJECT}.>", queue=LOGIC_GROUP, cb=self._on_core)
                )
            # serving before start() returns: core upstream published after it is not lost
            await nc.flush(timeout=max(1, math.ceil(self._settings.request_timeout)))
        except (nats.errors.Error, TimeoutError) as exc:
            await self._abort()
            raise BusUnavailable(f"Logic worker did not start: {exc}") from exc
        except BaseException:
            await self._abort()
            raise

    async def stop(self, grace: float = 10.0) -> None:
        """Finish the message in hand, hand back the rest of the batch (nak, no delay),
        answer the requests in flight, then close. After ``grace`` seconds, give up on
        the in-flight work as :meth:`run`'s cancellation does."""
        if self._stopped.is_set():
            return
        self._stopping.set()
        if self._consumers:
            _, pending = await asyncio.wait(set(self._consumers), timeout=grace)
            if pending:
                log.warning("worker %s: message in hand not done after %.1fs", self._name, grace)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        for pull in self._pulls:
            # its subscription has no callback: draining it would wait out drain_timeout
            try:
                await pull.unsubscribe()
            except nats.errors.Error as exc:
                log.debug("unsubscribing a pull subscription failed: %s", exc)
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

    def _consumer_config(self, partition: int) -> ConsumerConfig:
        name = f"{LOGIC_GROUP}-{partition}"
        return ConsumerConfig(
            name=name,
            durable_name=name,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self._settings.ack_wait,
            max_ack_pending=1,  # the partition's order: the next waits for this ack
            filter_subject=upstream_subject(partition),
        )

    # ------------------------------------------------------------------- upstream

    async def _consume(self, pull: JetStreamContext.PullSubscription) -> None:
        while not self._stopping.is_set():
            try:
                messages = await pull.fetch(1, timeout=self._fetch_timeout)
            except TimeoutError:
                continue  # idle, or the request was lost in a reconnect: ask again
            except nats.errors.ConnectionClosedError:
                return
            except nats.errors.Error as exc:  # leader election, consumer moving, ...
                # one line when an outage starts, not one per retry
                level = logging.DEBUG if self._fetch_failing else logging.WARNING
                log.log(level, "worker %s: fetch failed, retrying: %r", self._name, exc)
                self._fetch_failing = True
                await self._pause(self._retry_delay)
                continue
            if self._fetch_failing:
                log.warning("worker %s: fetching again", self._name)
                self._fetch_failing = False
            for index, msg in enumerate(messages):
                if self._stopping.is_set():
                    await self._hand_back(messages[index:])
                    return
                await self._handle(msg)

    async def _handle(self, msg: Msg) -> None:
        try:
            upstream = decode_upstream(msg.data, msg.headers)
        except ValueError as exc:
            # redelivering bytes that never decode would loop forever
            log.error("worker %s: terminating undecodable upstream message: %s", self._name, exc)
            await self._settle(msg.term())
            return
        try:
            await self._logic.process(upstream)
        except Exception:
            log.exception(
                "worker %s: processing %s failed; redelivering in %.1fs",
                self._name,
                upstream.dedupe_key,
                self._retry_delay,
            )
            await self._settle(msg.nak(delay=self._retry_delay))
            return
        await self._settle(msg.ack())

    async def _hand_back(self, messages: list[Msg]) -> None:
        for msg in messages:
            await self._settle(msg.nak())

    async def _settle(self, reply: Coroutine[Any, Any, None]) -> None:
        """An ack lost on the way only means a redelivery, which processing tolerates."""
        try:
            await reply
        except nats.errors.Error as exc:
            log.warning("worker %s: ack/nak not sent: %s", self._name, exc)

    async def _pause(self, seconds: float) -> None:
        """Back off, but wake at once when stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

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
