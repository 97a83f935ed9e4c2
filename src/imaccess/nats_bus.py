"""The bus on NATS: access nodes and Logic workers in separate processes.

Subjects (``docs/INTERNALS.md``, section "NATS", documents every byte):

- ``im.logic.upstream``: what clients send. In ``jetstream`` mode it is the only subject of
  the stream ``settings.stream``, so a publish returns once the message is stored (and
  replicated), and ``Nats-Msg-Id`` = the sender-scoped msg_id de-duplicates resends within
  ``duplicate_window``: the MessageAck promise. ``core`` mode is a plain publish, at most
  once, for deployments that prefer latency to that promise.
- ``im.logic.sync`` / ``im.logic.broadcast``: request-reply to Logic (queue group
  ``logic-group``).
- ``im.access.{node_id}.downstream`` / ``im.access.broadcast``: Logic to access nodes,
  core NATS. Pushes are best-effort by design: the message is already stored, and a
  client that missed a push gets it from Sync after its next reconnect.
- ``im.user.{user_id}.event``: kicks between nodes; every node subscribes once to
  ``im.user.*.event`` and acts on the connections it holds (a subscription per user
  cost each node ~4.8 KB per connected user, and kicks are rare).

Bodies are the schema's FlatBuffers tables encoded standalone (what the gateway already
has in hand); routing metadata travels in headers, readable without decoding the body.
The encoders and decoders are in :mod:`imaccess.nats_envelope` (pure, no I/O).

The Logic side (:class:`LogicWorker`) lives in :mod:`imaccess.logic.worker`; it is
re-exported here lazily (the worker imports this module for the envelopes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig

from .bus import (
    BusUnavailable,
    DownstreamSink,
    Push,
    SyncResult,
    Upstream,
    UpstreamAck,
    UserEvent,
)
from .nats_envelope import (
    BROADCAST_REQUEST_SUBJECT,
    BROADCAST_SUBJECT,
    HEADER_RECEIVED_AT,
    LOGIC_GROUP,
    SUBJECT_TOKEN,
    SYNC_SUBJECT,
    UPSTREAM_SUBJECT,
    USER_EVENT_SUBJECTS,
    check_node_id,
    decode_pushes,
    decode_upstream,
    decode_user_event,
    downstream_subject,
    encode_pushes,
    encode_upstream,
    encode_user_event,
    upstream_partition,
    upstream_subject,
    user_event_subject,
)
from .protocol.codec import decode_table, encode_table
from .protocol.codes import Code
from .protocol.errors import ProtocolError
from .protocol.messages import ChatMessage, MsgType, SyncResponse
from .settings import NatsSettings

if TYPE_CHECKING:
    from .logic.worker import LogicHandler, LogicWorker

__all__ = [
    "BROADCAST_REQUEST_SUBJECT",
    "BROADCAST_SUBJECT",
    "LOGIC_GROUP",
    "SYNC_SUBJECT",
    "UPSTREAM_SUBJECT",
    "LogicHandler",
    "LogicWorker",
    "NatsAccessBus",
    "NatsLogicBus",
    "connect",
    "decode_pushes",
    "decode_upstream",
    "downstream_subject",
    "encode_pushes",
    "encode_upstream",
    "ensure_stream",
    "request_broadcast",
    "upstream_partition",
    "upstream_subject",
    "user_event_subject",
]

log = logging.getLogger(__name__)


def server_list(settings: NatsSettings) -> list[str]:
    return [url.strip() for url in settings.url.split(",") if url.strip()]


class _ConnectionLog:
    """nats-py's default error callback prints a traceback per failed attempt, and a
    dead cluster member fails every few seconds forever: log one line when the trouble
    starts and stay at DEBUG until the connection is back."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.troubled = False
        self.client: NATS | None = None

    async def error(self, exc: Exception) -> None:
        if self.client is not None and self.client.is_connected:
            # not about the connection (a slow consumer, a permission): each one matters
            log.warning("NATS %s: %s: %s", self.name, type(exc).__name__, exc)
            return
        level = logging.DEBUG if self.troubled else logging.WARNING
        self.troubled = True
        log.log(level, "NATS %s: %s: %s", self.name, type(exc).__name__, exc)

    async def disconnected(self) -> None:
        if self.client is not None and self.client.is_closed:
            return  # closed on purpose (nats-py reports that as a disconnect too)
        if not self.troubled:
            log.warning("NATS %s: disconnected; reconnecting", self.name)
        self.troubled = True

    async def reconnected(self) -> None:
        self.troubled = False
        log.info("NATS %s: reconnected", self.name)

    async def closed(self) -> None:
        log.debug("NATS %s: closed", self.name)


async def connect(settings: NatsSettings, name: str) -> NATS:
    """A connection to ``settings.url`` (comma-separated servers) that reconnects forever.

    The first connection is retried forever too (a service waiting for NATS to come up);
    bound it with ``asyncio.timeout`` where that is wrong."""
    callbacks = _ConnectionLog(name)
    nc = await nats.connect(
        servers=server_list(settings),
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        ping_interval=max(1, math.ceil(settings.ping_interval)),
        max_outstanding_pings=2,
        connect_timeout=max(1, math.ceil(settings.request_timeout)),
        error_cb=callbacks.error,
        disconnected_cb=callbacks.disconnected,
        reconnected_cb=callbacks.reconnected,
        closed_cb=callbacks.closed,
    )
    callbacks.troubled = False
    callbacks.client = nc
    return nc


async def close_quietly(nc: NATS | None) -> None:
    """Drain (finish callbacks in flight, send what is buffered), or close if that fails."""
    if nc is None or nc.is_closed:
        return
    try:
        await nc.drain()
    except Exception as exc:
        log.debug("NATS drain failed (%s); closing", exc)
        await nc.close()


async def flush_quietly(nc: NATS, timeout: float, what: str) -> None:
    try:
        await nc.flush(timeout=max(1, math.ceil(timeout)))
    except (nats.errors.Error, TimeoutError) as exc:
        log.warning(
            "NATS flush after %s failed (%s); nats-py resends after reconnecting", what, exc
        )


def stream_config(settings: NatsSettings) -> StreamConfig:
    return StreamConfig(
        name=settings.stream,
        subjects=[f"{UPSTREAM_SUBJECT}.>"],
        storage=StorageType.FILE,
        num_replicas=settings.replicas,
        duplicate_window=settings.duplicate_window,
        max_age=settings.max_age,
    )


async def ensure_stream(js: JetStreamContext, settings: NatsSettings) -> None:
    """Create the upstream stream, or bring an existing one to ``settings``."""
    config = stream_config(settings)
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError as exc:
        if exc.err_code != 10058:  # "stream name already in use with a different configuration"
            raise
        log.info("updating stream %s to the configured settings", settings.stream)
        await js.update_stream(config)


# ---------------------------------------------------------------------------- access side


class NatsAccessBus:
    """:class:`~imaccess.bus.Bus` for an access node."""

    def __init__(self, settings: NatsSettings) -> None:
        if settings.upstream not in ("jetstream", "core"):
            raise ValueError(
                f"nats.upstream must be 'jetstream' or 'core', not {settings.upstream!r}"
            )
        self._settings = settings
        self._jetstream = settings.upstream == "jetstream"
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._sink: DownstreamSink | None = None
        self._node_id = ""

    async def start(self, node_id: str, sink: DownstreamSink) -> None:
        self._node_id = check_node_id(node_id)
        self._sink = sink
        nc = self._nc = await connect(self._settings, f"imaccess-access-{node_id}")
        try:
            if self._jetstream:
                self._js = nc.jetstream(timeout=self._settings.request_timeout)
                await ensure_stream(self._js, self._settings)
            await nc.subscribe(downstream_subject(node_id), cb=self._on_downstream)
            await nc.subscribe(BROADCAST_SUBJECT, cb=self._on_broadcast)
            await nc.subscribe(USER_EVENT_SUBJECTS, cb=self._on_user_event)
            # subscriptions are live on the server before the node registers locations
            await nc.flush(timeout=max(1, math.ceil(self._settings.request_timeout)))
        except (nats.errors.Error, TimeoutError) as exc:
            self._nc = self._js = None
            await nc.close()
            raise BusUnavailable(f"NATS bus did not start: {exc}") from exc
        except BaseException:
            self._nc = self._js = None
            await nc.close()
            raise

    async def publish_upstream(self, message: Upstream) -> UpstreamAck:
        nc = self._require_connection()
        payload, headers = encode_upstream(message)
        subject = upstream_subject(upstream_partition(message.from_user, self._settings.partitions))
        if self._js is None:
            # core mode: at most once; refuse rather than buffer while disconnected,
            # so the client retries instead of trusting an ack for a message in limbo
            if not nc.is_connected:
                raise BusUnavailable("NATS is reconnecting")
            try:
                await nc.publish(subject, payload, headers=headers)
            except nats.errors.Error as exc:
                raise BusUnavailable(f"upstream publish failed: {exc}") from exc
            return UpstreamAck(0, message.received_at_ms)
        try:
            ack = await self._js.publish(
                subject,
                payload,
                timeout=self._settings.request_timeout,
                stream=self._settings.stream,
                headers=headers,
            )
        except (nats.errors.Error, TimeoutError) as exc:
            raise BusUnavailable(f"upstream publish not acknowledged: {exc}") from exc
        if not ack.duplicate:
            return UpstreamAck(ack.seq, message.received_at_ms)
        timestamp = await self._original_timestamp(ack.seq, message.received_at_ms)
        return UpstreamAck(ack.seq, timestamp, duplicate=True)

    async def _original_timestamp(self, seq: int, fallback: int) -> int:
        """A duplicate's ack repeats the first one: read the stored original's time."""
        assert self._js is not None
        try:
            original = await self._js.get_msg(self._settings.stream, seq)
        except nats.js.errors.NotFoundError:
            return fallback  # removed since (max_age shorter than the window, or purged)
        except (nats.errors.Error, TimeoutError) as exc:
            raise BusUnavailable(f"could not read the original of a duplicate: {exc}") from exc
        value = (original.headers or {}).get(HEADER_RECEIVED_AT, "")
        return int(value) if value.isdigit() else fallback

    async def sync(self, user_id: int, since_seq: int, limit: int) -> SyncResult:
        nc = self._require_connection()
        request = json.dumps({"user_id": user_id, "since_seq": since_seq, "limit": limit})
        try:
            reply = await nc.request(
                SYNC_SUBJECT, request.encode(), timeout=self._settings.request_timeout
            )
        except (nats.errors.Error, TimeoutError) as exc:
            raise BusUnavailable(f"sync request failed: {exc}") from exc
        try:
            response = decode_table(MsgType.SYNC_ACK, reply.data)
        except ProtocolError as exc:
            raise BusUnavailable(f"malformed sync reply: {exc}") from exc
        if not isinstance(response, SyncResponse) or response.code != Code.OK:
            raise BusUnavailable(f"Logic could not sync: {response!r}")
        return SyncResult(response.messages, response.max_seq, response.has_more)

    async def publish_user_event(self, event: UserEvent) -> None:
        """Best effort: while NATS is reconnecting the event is buffered and sent after,
        so a failure is logged rather than failing the login that caused it."""
        nc = self._require_connection()
        try:
            await nc.publish(user_event_subject(event.user_id), encode_user_event(event))
        except nats.errors.Error as exc:
            log.warning("user event for %d not published: %s", event.user_id, exc)
            return
        await flush_quietly(nc, self._settings.request_timeout, "user event")

    def healthy(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        await close_quietly(nc)

    # --------------------------------------------------------------------- handlers

    async def _on_downstream(self, msg: Msg) -> None:
        try:
            pushes = decode_pushes(msg.data)
        except ValueError as exc:
            log.warning("dropping malformed downstream payload: %s", exc)
            return
        if self._sink is not None and pushes:
            with _sink_errors_logged("deliver"):
                self._sink.deliver(pushes)

    async def _on_broadcast(self, msg: Msg) -> None:
        try:
            message = decode_table(MsgType.MESSAGE, msg.data)
        except ProtocolError as exc:
            log.warning("dropping malformed broadcast: %s", exc)
            return
        if self._sink is not None and isinstance(message, ChatMessage):
            with _sink_errors_logged("broadcast"):
                self._sink.broadcast(message)

    async def _on_user_event(self, msg: Msg) -> None:
        try:
            event = decode_user_event(msg.data)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("dropping malformed user event on %s: %s", msg.subject, exc)
            return
        if event is not None and self._sink is not None:
            with _sink_errors_logged("user_event"):
                self._sink.user_event(event)

    def _require_connection(self) -> NATS:
        if self._nc is None:
            raise BusUnavailable("NATS bus not started")
        return self._nc


@contextlib.contextmanager
def _sink_errors_logged(what: str) -> Iterator[None]:
    """A bug in the node must show its traceback, not reach nats-py's error callback
    (which logs connection trouble, tersely)."""
    try:
        yield
    except Exception:
        log.exception("access node failed to handle a %s from the bus", what)


# ----------------------------------------------------------------------------- Logic side


class NatsLogicBus:
    """:class:`~imaccess.bus.Downstream` for Logic: pushes to the nodes over core NATS.

    Connects on first use, so it can be handed to a LogicService before the loop runs."""

    def __init__(self, settings: NatsSettings) -> None:
        self._settings = settings
        self._nc: NATS | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self._connection()

    async def push(self, node_id: str, pushes: Sequence[Push]) -> None:
        if not SUBJECT_TOKEN.fullmatch(node_id):
            log.error("not pushing to node %r: not a valid subject token", node_id)
            return
        nc = await self._connection()
        subject = downstream_subject(node_id)
        for payload in encode_pushes(pushes, nc.max_payload - 1024):
            await nc.publish(subject, payload)

    async def broadcast(self, message: ChatMessage) -> None:
        nc = await self._connection()
        await nc.publish(BROADCAST_SUBJECT, encode_table(message))

    async def close(self) -> None:
        nc, self._nc = self._nc, None
        await close_quietly(nc)

    async def _connection(self) -> NATS:
        if self._nc is None:
            async with self._lock:
                if self._nc is None:
                    self._nc = await connect(self._settings, "imaccess-logic-downstream")
        return self._nc


async def request_broadcast(settings: NatsSettings, content: str, *, content_type: int = 0) -> str:
    """Ask a Logic worker to broadcast ``content`` to every connected user; its msg_id."""
    nc = await connect(settings, "imaccess-broadcast")
    try:
        request = json.dumps({"content": content, "content_type": content_type}).encode()
        reply = await nc.request(
            BROADCAST_REQUEST_SUBJECT, request, timeout=settings.request_timeout
        )
    except (nats.errors.Error, TimeoutError) as exc:
        raise BusUnavailable(f"broadcast request failed: {exc}") from exc
    finally:
        await close_quietly(nc)
    body: Any = json.loads(reply.data)
    if not isinstance(body, dict) or "msg_id" not in body:
        raise BusUnavailable(f"Logic refused the broadcast: {body!r}")
    return str(body["msg_id"])


def __getattr__(name: str) -> Any:
    """``LogicWorker`` and ``LogicHandler`` without an import cycle at load time."""
    if name in ("LogicWorker", "LogicHandler"):
        from .logic import worker

        return getattr(worker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
