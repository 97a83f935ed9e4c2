"""The access node: the composition root that ties connections to auth, the hub,
the bus and the location store.

Transports call :meth:`AccessNode.open_connection`; connections report session events
here. Work that waits on the outside world (location writes, upstream publishes, sync
queries) runs as tasks owned by the connection, cancelled when it goes away.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Coroutine, Sequence
from typing import Any

from .auth import AuthError, TokenVerifier
from .blobs import BlobStore, LocalBlobStore
from .bus import Bus, KickEvent, Push, Upstream, UpstreamAck, UserEvent
from .connection import Connection, Transport
from .files import FileTransfers
from .hub import DeviceLogin, Hub
from .metrics import NodeMetrics
from .presence import Presence, end_tasks
from .protocol.codec import encode_packet
from .protocol.codes import Code
from .protocol.messages import (
    CONTENT_TYPE_FILE,
    AuthResponse,
    ChatMessage,
    Delivery,
    MessageAck,
    Packet,
    SyncResponse,
)
from .protocol.session import (
    AuthRequested,
    ChatReceived,
    CloseRequested,
    Event,
    FileRequested,
    ServerSession,
    SyncRequested,
)
from .ratelimit import TokenBucket
from .settings import Settings
from .storage import Location, LocationStore
from .timers import TimerWheel

__all__ = ["AccessNode"]

log = logging.getLogger(__name__)
_MAX_MSG_ID = 128


_BROADCAST_SLICE = 256
"""Connections a broadcast pushes to per event-loop turn."""
_MESSAGE_OVERHEAD = 128  # bytes a ChatMessage table adds around its strings, generously


def _fit_in_frame(
    messages: tuple[ChatMessage, ...], max_frame_size: int
) -> tuple[tuple[ChatMessage, ...], bool]:
    """The leading messages whose SyncResponse frame stays within ``max_frame_size``
    (frames to clients obey the same bound as frames from them), and whether any were cut.
    At least one message goes out, since content is capped well below the frame size."""
    budget = max_frame_size - 256
    for count, message in enumerate(messages):
        budget -= len(message.content.encode()) + len(message.msg_id) + _MESSAGE_OVERHEAD
        if budget < 0 and count > 0:
            return messages[:count], True
    return messages, False


class AccessNode:
    def __init__(
        self,
        settings: Settings,
        *,
        bus: Bus,
        locations: LocationStore,
        verifier: TokenVerifier,
        blobs: BlobStore | None = None,
    ) -> None:
        self.settings = settings
        self.node_id = settings.node_id
        self.hub: Hub[Connection] = Hub()
        self._bus = bus
        self._locations = locations
        self._verifier = verifier
        hb = settings.heartbeat
        self.instance = secrets.token_hex(8)
        self._location_ttl = settings.locations.ttl
        self._wheel: TimerWheel[Connection] = TimerWheel(
            min(1.0, hb.timeout / 10, settings.auth.deadline / 10)
        )
        # conn ids stay unique across nodes: a random prefix per node, then a counter
        self._conn_prefix = secrets.randbits(22) << 40
        self._conn_counter = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._accepting = False
        self._per_ip: dict[str, int] = {}
        self._message_buckets: dict[int, TokenBucket] = {}
        self._auth_failures: dict[str, TokenBucket] = {}
        self.metrics = NodeMetrics(self.node_id)
        self._presence = Presence(
            locations,
            self.node_id,
            self.instance,
            node_ttl=settings.locations.node_ttl,
            location_ttl=self._location_ttl,
            registered=lambda: [c for c in self.hub if c.login is not None],
            locate=self._location,
            spawn=self._spawn_background,
            metrics=self.metrics,
        )
        self.metrics.watch_outbound(lambda: sum(c.writer.queued_bytes for c in self.hub))
        self._blobs = blobs if blobs is not None else LocalBlobStore(settings.files.directory)
        self._files: FileTransfers | None = None

    @property
    def accepting(self) -> bool:
        return self._accepting

    # ------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._blobs.start()
        self._files = FileTransfers(
            self.settings.files, self._blobs, self._publish, self._spawn, self.metrics, self._loop
        )
        await self._bus.start(self.node_id, self)
        await self._presence.start()
        self._spawn_background(self._sweep_timers())
        self._accepting = True

    async def stop(self) -> None:
        """Graceful drain, in the seed's order: stop accepting (readiness goes false),
        deregister (Logic stops routing here; messages wait in inboxes), tell every client
        to reconnect elsewhere after a jittered delay (so they do not all return at once),
        let them leave and their in-flight requests finish, close whoever is left at the
        deadline, then stop the background work."""
        drain = self.settings.drain
        self._accepting = False
        log.info("draining", extra={"node_id": self.node_id})
        await self._presence.withdraw(drain.task_grace)
        for conn in self.hub:
            delay_ms = int(random.uniform(0, drain.reconnect_spread) * 1000)
            conn.announce_drain(delay_ms, "node shutting down; reconnect elsewhere")
        leaving = [asyncio.shield(c.gone) for c in self.hub]
        if leaving:
            await asyncio.wait(leaving, timeout=drain.deadline)
        for conn in self.hub:
            conn.kick(Code.DRAINING, "drain deadline reached")
        in_flight = [task for conn in self.hub for task in conn.tasks]
        if in_flight:
            await asyncio.wait(in_flight, timeout=drain.task_grace)
        await end_tasks(self._background, drain.task_grace)

    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    # ----------------------------------------------------- from the transports

    def open_connection(self, transport: Transport) -> Connection | None:
        refusal = self._admission(transport.remote_address[0])
        if refusal is not None:
            code, reason = refusal
            self.metrics.disconnected(int(code))
            transport.close(int(code), reason)
            return None
        assert self._loop is not None
        self._conn_counter += 1
        limits = self.settings.limits
        session = ServerSession(
            self.now(),
            auth_deadline=self.settings.auth.deadline,
            heartbeat_timeout=self.settings.heartbeat.timeout,
            max_frame_size=limits.max_frame_size,
            max_control_frame_size=limits.max_control_frame_size,
            resumed_user=transport.resumed_user,
        )
        conn = Connection(
            self._conn_prefix | self._conn_counter,
            transport,
            session,
            self,
            max_outbound_bytes=limits.max_outbound_bytes,
            loop=self._loop,
        )
        self.hub.add(conn)
        self._schedule(conn)
        ip = transport.remote_address[0]
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        conn.ip = ip
        self.metrics.connection_opened(transport.kind)
        return conn

    def _admission(self, ip: str) -> tuple[Code, str] | None:
        """Why a new connection from ``ip`` is refused, if it is. Refusals come before any
        per-connection state exists, so a flood of them costs almost nothing."""
        limits = self.settings.limits
        if not self._accepting or self._loop is None:
            return Code.DRAINING, "node is not accepting connections"
        if len(self.hub) >= limits.max_connections:
            return Code.NODE_FULL, "node at its connection limit"
        if self._per_ip.get(ip, 0) >= limits.max_connections_per_ip:
            return Code.TOO_MANY_CONNECTIONS, "too many connections from this address"
        failures = self._auth_failures.get(ip)
        if failures is not None and failures.available(self.now()) < 1:
            return Code.AUTH_BLOCKED, "too many failed authentications from this address"
        return None

    # ------------------------------------------------------ from connections

    def on_events(self, connection: Connection, events: list[Event]) -> None:
        for event in events:
            match event:
                case AuthRequested():
                    self._spawn(connection, self._authenticate(connection, event))
                case ChatReceived():
                    self._spawn(connection, self._chat(connection, event))
                case SyncRequested():
                    self._spawn(connection, self._sync(connection, event))
                case FileRequested() if self._files is not None:
                    self._files.request(connection, event.stream_id, event.seq, event.request)
                case CloseRequested():
                    connection.close(event)

    def on_upload(
        self, connection: Connection, stream_id: int, data: bytes, end_stream: bool
    ) -> None:
        if self._files is not None:
            self._files.upload_data(connection, stream_id, data, end_stream)

    def on_stream_aborted(self, connection: Connection, stream_id: int) -> None:
        if self._files is not None:
            self._files.stream_aborted(connection, stream_id)

    def on_closed(self, connection: Connection) -> None:
        self.hub.remove(connection)
        if self._files is not None:
            self._files.connection_closed(connection)
        ip = connection.ip
        if ip in self._per_ip:
            self._per_ip[ip] -= 1
            if self._per_ip[ip] <= 0:
                del self._per_ip[ip]
        self._wheel.cancel(connection)
        self.metrics.connection_closed(connection.transport.kind)
        if connection.session.close_code is not None:
            self.metrics.disconnected(int(connection.session.close_code))
        if connection.login is not None and self._loop is not None:
            self._presence.forget(self._location(connection))
            if not self.hub.of_user(connection.user_id):
                self._message_buckets.pop(connection.user_id, None)

    # --------------------------------------------------------------- handlers

    async def _authenticate(self, conn: Connection, event: AuthRequested) -> None:
        request = event.request
        try:
            identity = self._verifier.verify(request.token)
        except AuthError as exc:
            log.info("auth refused", extra={"conn_id": conn.conn_id, "code": int(exc.code)})
            self.metrics.auth_refused(int(exc.code))
            self._note_auth_failure(conn.ip)
            conn.close(conn.session.reject_auth(event.seq, exc.code, str(exc)))
            return
        login = DeviceLogin(
            conn_id=conn.conn_id,
            user_id=identity.user_id,
            device_id=request.device_id or f"conn-{conn.conn_id}",
            platform=request.platform or "unknown",
            login_time=time.time(),
        )
        conn.login = login
        user_id = login.user_id
        try:
            replaced = await self._locations.claim(
                self._location(conn), self.settings.multi_device_policy, self._location_ttl
            )
        except Exception:
            log.exception("location store unavailable", extra={"conn_id": conn.conn_id})
            self.metrics.backend_error("locations")
            conn.login = None
            conn.kick(Code.INTERNAL_ERROR, "location store unavailable")
            return
        if conn.closed:  # went away while the claim was in flight
            self._presence.forget(self._location(conn))
            return
        self.hub.bind(conn)
        conn.transport.bind_identity(login.user_id, identity.expires_at or 0.0)
        self.metrics.auth_success.inc()
        await self._kick_replaced(user_id, replaced)
        hb = self.settings.heartbeat
        conn.accept_auth(
            event.seq,
            AuthResponse(
                code=int(Code.OK),
                user_id=login.user_id,
                message="ok",
                conn_id=conn.conn_id,
                node_id=self.node_id,
                heartbeat_interval_ms=int(hb.interval * 1000),
                heartbeat_timeout_ms=int(hb.timeout * 1000),
            ),
        )
        self._schedule(conn)
        log.info(
            "authenticated",
            extra={
                "conn_id": conn.conn_id,
                "user_id": login.user_id,
                "node_id": self.node_id,
                "transport": conn.transport.kind,
            },
        )

    async def _chat(self, conn: Connection, event: ChatReceived) -> None:
        started = time.perf_counter()
        self.metrics.messages_received.inc()
        message = event.message
        problem = self._check_message(message)
        if problem:
            conn.reply(
                event.stream_id,
                event.seq,
                MessageAck(message.msg_id, int(Code.INVALID_MESSAGE)),
            )
            return
        if not self._message_bucket(conn.user_id).take(self.now()):
            self.metrics.rate_limited.inc()
            conn.reply(
                event.stream_id, event.seq, MessageAck(message.msg_id, int(Code.RATE_LIMITED))
            )
            return
        try:
            ack = await self._publish(
                conn, message.msg_id, message.to_user, message.content, message.content_type
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            conn.reply(
                event.stream_id, event.seq, MessageAck(message.msg_id, int(Code.UNAVAILABLE))
            )
            return
        conn.reply(
            event.stream_id,
            event.seq,
            MessageAck(message.msg_id, int(Code.OK), ack.server_seq, ack.timestamp, ack.duplicate),
        )
        self.metrics.message_latency.observe(time.perf_counter() - started)

    async def _publish(
        self, conn: Connection, msg_id: str, to_user: int, content: str, content_type: int
    ) -> UpstreamAck:
        """Send a direct message from the connection's user up to Logic; the ack says it
        is stored. Raises (and counts a bus error) when the bus does not take it."""
        upstream = Upstream(
            msg_id=msg_id,
            from_user=conn.user_id,
            to_user=to_user,
            content=content,
            content_type=content_type,
            delivery=Delivery.DIRECT,
            group_id=0,
            node_id=self.node_id,
            conn_id=conn.conn_id,
            received_at_ms=int(time.time() * 1000),
        )
        try:
            return await self._bus.publish_upstream(upstream)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("upstream publish failed", extra={"conn_id": conn.conn_id})
            self.metrics.backend_error("bus")
            raise

    def _check_message(self, message: ChatMessage) -> str:
        if not message.msg_id or len(message.msg_id) > _MAX_MSG_ID:
            return f"msg_id must be 1..{_MAX_MSG_ID} characters"
        if message.to_user <= 0:
            return "to_user must be a user id"
        if len(message.content.encode()) > self.settings.limits.max_content_bytes:
            return "content too large"
        if message.content_type == CONTENT_TYPE_FILE:  # only the node announces files
            return "content_type 1 is reserved for file announcements"
        return ""

    async def _sync(self, conn: Connection, event: SyncRequested) -> None:
        try:
            result = await self._bus.sync(
                conn.user_id, event.request.since_seq, event.request.limit
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sync failed", extra={"conn_id": conn.conn_id})
            conn.reply(event.stream_id, event.seq, SyncResponse(code=int(Code.UNAVAILABLE)))
            return
        messages, trimmed = _fit_in_frame(result.messages, self.settings.limits.max_frame_size)
        conn.reply(
            event.stream_id,
            event.seq,
            SyncResponse(int(Code.OK), messages, result.max_seq, result.has_more or trimmed),
        )

    async def _kick_replaced(self, user_id: int, replaced: list[Location]) -> None:
        remote: list[int] = []
        for old in replaced:
            local = self.hub.get(old.conn_id)
            if local is not None:
                local.kick(Code.KICKED_NEW_LOGIN, "replaced by a newer login")
            else:
                remote.append(old.conn_id)
        if remote:
            event = KickEvent(
                user_id, tuple(remote), int(Code.KICKED_NEW_LOGIN), "replaced by a newer login"
            )
            await self._bus.publish_user_event(event)

    # ------------------------------------------------------------ from the bus

    def deliver(self, pushes: Sequence[Push]) -> None:
        sent = self.metrics.messages_sent
        for push in pushes:
            connections = self.hub.of_user(push.user_id)
            if connections:
                frame = encode_packet(Packet(0, push.message))  # once for all devices
                for conn in connections:
                    conn.push_frame(frame)
                    sent.inc()

    def broadcast(self, message: ChatMessage) -> None:
        self._spawn_background(self._broadcast(encode_packet(Packet(0, message))))

    async def _broadcast(self, frame: bytes) -> None:
        """One frame to every authenticated connection, a slice per loop turn: each push
        costs a QUIC packet, and 50K of them at once would stall everyone for seconds."""
        sent = self.metrics.messages_sent
        everyone = [conn for conn in self.hub if conn.login is not None]
        for start in range(0, len(everyone), _BROADCAST_SLICE):
            for conn in everyone[start : start + _BROADCAST_SLICE]:
                if not conn.closed:
                    conn.push_frame(frame)
                    sent.inc()
            await asyncio.sleep(0)

    def user_event(self, event: UserEvent) -> None:
        try:
            code = Code(event.code)
        except ValueError:  # a code newer than this node: still a removal by an operator
            code = Code.KICKED_BY_ADMIN
        for conn_id in event.conn_ids:
            conn = self.hub.get(conn_id)
            if conn is not None and conn.user_id == event.user_id:
                conn.kick(code, event.reason)

    # ---------------------------------------------------------------- helpers

    def _message_bucket(self, user_id: int) -> TokenBucket:
        bucket = self._message_buckets.get(user_id)
        if bucket is None:
            limits = self.settings.limits
            bucket = TokenBucket(limits.message_rate, limits.message_burst, self.now())
            self._message_buckets[user_id] = bucket
        return bucket

    def _note_auth_failure(self, ip: str) -> None:
        bucket = self._auth_failures.get(ip)
        if bucket is None:
            per_minute = self.settings.limits.auth_failures_per_minute
            bucket = TokenBucket(per_minute / 60, per_minute, self.now())
            self._auth_failures[ip] = bucket
        bucket.take(self.now())
        if len(self._auth_failures) > 100_000:  # bound memory: forget recovered addresses
            now = self.now()
            for address in [a for a, b in self._auth_failures.items() if b.full(now)]:
                del self._auth_failures[address]

    def _location(self, conn: Connection) -> Location:
        login = conn.login
        assert login is not None
        return Location(
            login.user_id,
            self.node_id,
            conn.conn_id,
            login.device_id,
            login.platform,
            login.login_time,
            self.instance,
        )

    def _schedule(self, conn: Connection) -> None:
        deadline = conn.session.next_deadline()
        if deadline is not None and not conn.closed:
            self._wheel.schedule(conn, deadline)

    async def _sweep_timers(self) -> None:
        resolution = self._wheel.resolution
        while True:
            await asyncio.sleep(resolution)
            now = self.now()
            for conn in self._wheel.pop_due(now):
                try:
                    conn.check_timers(now)
                    self._schedule(conn)
                except Exception:  # one connection's failure must not stop every timeout
                    log.exception("timer of connection failed", extra={"conn_id": conn.conn_id})
                    conn.transport.close(int(Code.INTERNAL_ERROR), "internal error")

    def _spawn(self, conn: Connection, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        assert self._loop is not None
        task = self._loop.create_task(work)
        conn.tasks.add(task)
        task.add_done_callback(conn.tasks.discard)
        return task

    def _spawn_background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        assert self._loop is not None
        task = self._loop.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task
