"""The asyncio client SDK over raw QUIC.

One :class:`Client` is one device of one user. It keeps a connection up for as long as
it is open: it connects, authenticates, opens the message stream, syncs what it missed,
and sends heartbeats; when the connection drops it reconnects with exponential backoff
and full jitter, or stops, as the close code says (PROTOCOL.md "Codes"). Messages reach
the application exactly once and in inbox order through :meth:`Client.messages`, whether
they were pushed or synced. :meth:`Client.send` resolves on the server's MessageAck and
resends with the same ``msg_id`` when an ack does not come, which the server
de-duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import mimetypes
import ssl
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StreamDataReceived, StreamReset
from aioquic.tls import SessionTicket

from ..protocol.codes import Code, Reconnect, reconnect_for
from ..protocol.errors import ProtocolError
from ..protocol.messages import (
    AuthRequest,
    AuthResponse,
    Body,
    ChatMessage,
    Delivery,
    Error,
    FileAck,
    FileHeader,
    FileOffer,
    FileRequest,
    Heartbeat,
    Kick,
    MessageAck,
    Notice,
    NoticeKind,
    SyncRequest,
    SyncResponse,
)
from ..transport.quic import ALPN
from .core import ClientCore, DeliveryCursor, backoff_delay
from .files import DownloadStream, DownloadTarget, Progress, check_download, hash_file
from .link import Link, LinkLost, LinkProtocol

__all__ = ["AuthFailed", "Client", "ClientError", "Disconnected", "SendFailed"]

log = logging.getLogger(__name__)

TokenSource = str | Callable[[], str | Awaitable[str]]


_SENT_MEMORY = 10_000  # msg_ids this device sent, to skip their copies in its own inbox


class ClientError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code


class AuthFailed(ClientError):
    """The server refused the token."""


class SendFailed(ClientError):
    """The server refused the message, or no ack came after every attempt."""


class Disconnected(ClientError):
    """The client stopped for good: closed, or a close code that says not to reconnect."""


class Client:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8443,
        *,
        token: TokenSource,
        device_id: str | None = None,
        platform: str = "python",
        ca_file: str | None = None,
        insecure: bool = False,
        server_name: str | None = None,
        last_seq: int = 0,
        ack_timeout: float = 5.0,
        send_attempts: int = 5,
        connect_timeout: float = 10.0,
        reconnect: bool = True,
        backoff_base: float = 0.2,
        backoff_cap: float = 30.0,
        heartbeat_interval: float | None = None,
        servers: list[tuple[str, int]] | None = None,
    ) -> None:
        # Several access nodes: each (re)connect tries the next one, so clients of a node
        # that died or drains spread over the others.
        self.servers = list(servers) if servers else [(host, port)]
        self._link_attempts = 0
        self.host, self.port = self.servers[0]
        self.device_id = device_id or uuid.uuid4().hex
        self.platform = platform
        self.user_id = 0
        self.conn_id = 0
        self.node_id = ""
        self.connects = 0
        self._token = token
        self._ca_file, self._insecure = ca_file, insecure
        self._server_name = server_name
        self._ack_timeout = ack_timeout
        self._send_attempts = send_attempts
        self._connect_timeout = connect_timeout
        self._reconnect = reconnect
        self._backoff = (backoff_base, backoff_cap)
        self._heartbeat_override = heartbeat_interval
        self._heartbeat_interval = heartbeat_interval or 30.0
        self._core = ClientCore()
        self._cursor = DeliveryCursor(last_seq)
        self._incoming: asyncio.Queue[ChatMessage | None] = asyncio.Queue()
        self._pending: dict[int, asyncio.Future[Body]] = {}
        self._link: Link | None = None
        self._ready = asyncio.Event()
        self._first: asyncio.Future[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._resync = False
        self._closing = False
        self._ticket: SessionTicket | None = None
        self.stopped: ClientError | None = None
        self._sent_ids: OrderedDict[str, None] = OrderedDict()
        self._stopped_event = asyncio.Event()
        self._downloads: dict[int, DownloadTarget] = {}
        """Requested downloads by request seq, until their stream ends."""

    # ------------------------------------------------------------------ API

    @property
    def last_seq(self) -> int:
        return self._cursor.last_seq

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    async def connect(self) -> Client:
        """Connect and authenticate; later drops reconnect in the background."""
        if self._supervisor is None:
            self._first = asyncio.get_running_loop().create_future()
            self._supervisor = asyncio.create_task(self._supervise())
        assert self._first is not None
        await asyncio.shield(self._first)
        return self

    async def send(
        self, to_user: int, content: str, *, content_type: int = 0, msg_id: str | None = None
    ) -> MessageAck:
        message = ChatMessage(
            msg_id=msg_id or uuid.uuid4().hex,
            to_user=to_user,
            content=content,
            content_type=content_type,
        )
        self._remember_sent(message.msg_id)
        last_code = int(Code.UNAVAILABLE)
        for attempt in range(self._send_attempts):
            try:
                reply = await self._request(message, timeout=self._ack_timeout)
            except (TimeoutError, LinkLost):
                continue
            if isinstance(reply, MessageAck):
                if reply.code == Code.OK:
                    return reply
                last_code = reply.code
                if reply.code in (Code.UNAVAILABLE, Code.RATE_LIMITED):
                    await asyncio.sleep(backoff_delay(attempt, *self._backoff))
                    continue
            elif isinstance(reply, Error):
                last_code = reply.code
            raise SendFailed(last_code, f"message {message.msg_id} refused")
        raise SendFailed(last_code, f"no ack for message {message.msg_id}")

    async def send_file(
        self,
        to_user: int,
        path: str | Path,
        *,
        name: str | None = None,
        mime_type: str | None = None,
        msg_id: str | None = None,
        on_progress: Progress | None = None,
        ack_timeout: float = 30.0,
    ) -> FileAck:
        """Upload a file to ``to_user`` on its own stream (PROTOCOL.md "Files"); resolves
        once it is stored and announced. Cancelling the call aborts the upload. A failed
        upload is not retried: call again (the same ``msg_id`` keeps the announcement
        from being delivered twice)."""
        path = Path(path)
        size, digest = await hash_file(path)
        offer = FileOffer(
            msg_id=msg_id or uuid.uuid4().hex,
            to_user=to_user,
            name=name or path.name,
            size=size,
            mime_type=mime_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream",
            sha256=digest,
        )
        self._remember_sent(offer.msg_id)
        link = await self._ready_link()
        seq, frame = self._core.request(offer, int(time.time() * 1000))
        reply: asyncio.Future[Body] = asyncio.get_running_loop().create_future()
        self._pending[seq] = reply
        try:
            with open(path, "rb") as source:  # noqa: ASYNC230 - 64 KiB local reads
                await link.write_file(frame, source, size, reply, on_progress)
            answer = await asyncio.wait_for(reply, ack_timeout)
        except (LinkLost, TimeoutError) as exc:
            raise SendFailed(
                int(Code.UNAVAILABLE), f"upload of {path.name} lost: {exc!r}"
            ) from None
        finally:
            self._pending.pop(seq, None)
        if not isinstance(answer, FileAck) or answer.code != Code.OK:
            code = getattr(answer, "code", int(Code.UNAVAILABLE))
            raise SendFailed(
                code, f"upload of {path.name} refused: {getattr(answer, 'message', '')}"
            )
        return answer

    async def fetch_file(
        self,
        file_id: str,
        dest: str | Path,
        *,
        resume: bool = False,
        on_progress: Progress | None = None,
        timeout: float = 30.0,
    ) -> FileHeader:
        """Download a file into ``dest``, checking its size and SHA-256. With ``resume``,
        keep what ``dest`` already holds and fetch only the rest. ``timeout`` bounds the
        wait for the server's answer, not the transfer."""
        dest = Path(dest)
        offset = dest.stat().st_size if resume and dest.exists() else 0
        link = await self._ready_link()
        loop = asyncio.get_running_loop()
        seq, frame = self._core.request(FileRequest(file_id, offset), int(time.time() * 1000))
        answer: asyncio.Future[Body] = loop.create_future()
        finished: asyncio.Future[FileHeader] = loop.create_future()
        self._pending[seq] = answer
        with open(dest, "ab" if offset else "wb") as sink:  # noqa: ASYNC230 - local writes
            self._downloads[seq] = DownloadTarget(sink, on_progress, finished)
            try:
                link.write(frame)
                header = await asyncio.wait_for(answer, timeout)
                if not isinstance(header, FileHeader) or header.code != Code.OK:
                    code = getattr(header, "code", int(Code.UNAVAILABLE))
                    raise ClientError(code, f"file {file_id} refused")
                header = await finished
            except LinkLost:
                raise ClientError(
                    int(Code.UNAVAILABLE), "connection lost during download"
                ) from None
            finally:
                self._pending.pop(seq, None)
                self._downloads.pop(seq, None)
        verdict = await asyncio.to_thread(check_download, dest, header)
        if verdict != Code.OK:
            raise ClientError(int(verdict), f"file {file_id} arrived damaged")
        return header

    async def messages(self) -> AsyncIterator[ChatMessage]:
        """Every incoming message once, in inbox order; ends when the client closes."""
        while True:
            message = await self._incoming.get()
            if message is None:
                return
            yield message

    async def next_message(self, timeout: float | None = None) -> ChatMessage:
        """The next incoming message; raises the reason if the client stopped instead."""
        message = await asyncio.wait_for(self._incoming.get(), timeout)
        if message is None:
            self._incoming.put_nowait(None)  # stay stopped for the next caller
            raise self.stopped or Disconnected(int(Code.OK), "client closed")
        return message

    async def wait_stopped(self) -> ClientError | None:
        """Wait until the client stops for good; returns why (None after close())."""
        await self._stopped_event.wait()
        return self.stopped

    async def sync(self) -> None:
        """Fetch what this device missed; new messages go to :meth:`messages`."""
        while True:
            self._resync = False
            since = self._cursor.last_seq
            reply = await self._request(SyncRequest(since), timeout=self._ack_timeout)
            if not isinstance(reply, SyncResponse) or reply.code != Code.OK:
                raise ClientError(getattr(reply, "code", int(Code.UNAVAILABLE)), "sync failed")
            if reply.max_seq < since:
                # the inbox is behind what this device had seen (a development server
                # restarted with empty memory): start over rather than drop its messages
                log.warning("inbox max_seq %d < cursor %d: resetting", reply.max_seq, since)
                self._cursor.last_seq = 0
                continue
            for message in self._cursor.take_page(reply.messages):
                self._deliver(message)
            if not reply.has_more and not self._resync:
                return

    async def close(self) -> None:
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        self._drop_link()
        self._incoming.put_nowait(None)
        self._stopped_event.set()

    async def __aenter__(self) -> Client:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ internals

    async def _supervise(self) -> None:
        attempt = 0
        while not self._closing:
            link: Link | None = None
            try:
                link = await self._open_link()
            except Disconnected as exc:
                self._stop(exc)
                return
            except AuthFailed as exc:
                if reconnect_for(exc.code) is Reconnect.STAYS_OPEN or (
                    callable(self._token) and self.connects > 0 and attempt < 3
                ):
                    attempt += 1
                    await asyncio.sleep(backoff_delay(attempt, *self._backoff))
                    continue
                self._stop(exc)
                return
            except (OSError, TimeoutError, ConnectionError, LinkLost, ClientError) as exc:
                log.debug("connect failed: %s", exc)
                if self.connects == 0 and not self._reconnect:
                    self._stop(Disconnected(int(Code.UNAVAILABLE), f"connect failed: {exc}"))
                    return
                attempt += 1
                await asyncio.sleep(backoff_delay(attempt, *self._backoff))
                continue
            attempt = 0
            self.connects += 1
            self._ready.set()
            if self._first is not None and not self._first.done():
                self._first.set_result(None)
            self._schedule_sync()
            heartbeat = asyncio.create_task(self._heartbeat(link))
            try:
                code = await link.lost
            finally:
                heartbeat.cancel()
                self._ready.clear()
                self._drop_link()
            decision = reconnect_for(code)
            log.info("connection lost (code %s): %s", code, decision.value)
            if decision is Reconnect.NEVER or not self._reconnect:
                self._stop(Disconnected(code, link.close_reason or "disconnected"))
                return
            delay = link.reconnect_after or backoff_delay(attempt, *self._backoff)
            await asyncio.sleep(delay)

    def _stop(self, error: ClientError) -> None:
        self.stopped = error
        self._stopped_event.set()
        if self._first is not None and not self._first.done():
            self._first.set_exception(error)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(LinkLost())
        self._incoming.put_nowait(None)

    async def _open_link(self) -> Link:
        loop = asyncio.get_running_loop()
        self.host, self.port = self.servers[self._link_attempts % len(self.servers)]
        self._link_attempts += 1
        configuration = QuicConfiguration(
            is_client=True,
            alpn_protocols=[ALPN],
            server_name=self._server_name or self.host,
            idle_timeout=90.0,
        )
        if self._insecure:
            configuration.verify_mode = ssl.CERT_NONE
        elif self._ca_file:
            configuration.load_verify_locations(self._ca_file)
        configuration.session_ticket = self._ticket
        infos = await loop.getaddrinfo(self.host, self.port, type=2)  # SOCK_DGRAM
        address = infos[0][4]
        local = _local_address_for(str(address[0]))
        quic = QuicConnection(configuration=configuration, session_ticket_handler=self._keep_ticket)
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: LinkProtocol(quic), local_addr=(local, 0)
        )
        link = Link(protocol, transport)
        protocol.on_event = lambda event: self._on_event(link, event)
        self._link = link
        try:
            protocol.connect((address[0], address[1]))
            await asyncio.wait_for(protocol.wait_connected(), self._connect_timeout)
            token = self._token if isinstance(self._token, str) else self._token()
            if not isinstance(token, str):
                token = await token
            reply = await self._request(
                AuthRequest(token, self.device_id, self.platform),
                timeout=self._connect_timeout,
                link=link,
                stream_id=link.control_stream,
            )
            if not isinstance(reply, AuthResponse):
                raise ClientError(int(Code.PROTOCOL_ERROR), f"unexpected reply {reply!r}")
            if reply.code != Code.OK:
                raise AuthFailed(reply.code, reply.message or "authentication refused")
            self.user_id, self.conn_id, self.node_id = reply.user_id, reply.conn_id, reply.node_id
            if self._heartbeat_override is None and reply.heartbeat_interval_ms:
                self._heartbeat_interval = reply.heartbeat_interval_ms / 1000
            link.message_stream = quic.get_next_available_stream_id()
            _, frame = self._core.request(Heartbeat())
            link.write(frame, link.message_stream)
            return link
        except BaseException:
            tls_alert = _tls_failure(link)
            self._drop_link()
            if tls_alert is not None:  # retrying cannot fix an untrusted certificate
                raise Disconnected(
                    tls_alert, f"TLS handshake failed (QUIC error {tls_alert:#x})"
                ) from None
            raise

    def _keep_ticket(self, ticket: SessionTicket) -> None:
        self._ticket = ticket

    def _drop_link(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            link.mark_lost(int(Code.OK))
            link.close()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(LinkLost())
        self._pending.clear()
        self._core.reset_streams()

    async def _ready_link(self, timeout: float | None = None) -> Link:
        await asyncio.wait_for(self._ready.wait(), timeout or self._connect_timeout)
        if self._link is None:
            raise LinkLost()
        return self._link

    async def _request(
        self, body: Body, *, timeout: float, link: Link | None = None, stream_id: int | None = None
    ) -> Body:
        if link is None:
            link = await self._ready_link(timeout)
        seq, frame = self._core.request(body, int(time.time() * 1000))
        future: asyncio.Future[Body] = asyncio.get_running_loop().create_future()
        self._pending[seq] = future
        try:
            link.write(frame, stream_id)
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(seq, None)

    async def _heartbeat(self, link: Link) -> None:
        while not link.lost.done():
            await asyncio.sleep(self._heartbeat_interval)
            if time.monotonic() - link.last_received > 3 * self._heartbeat_interval:
                link.mark_lost(int(Code.HEARTBEAT_TIMEOUT))
                return
            with contextlib.suppress(LinkLost):
                link.keepalive()

    def _schedule_sync(self) -> None:
        if self._sync_task is not None and not self._sync_task.done():
            self._resync = True
            return
        self._sync_task = asyncio.create_task(self._sync_quietly())

    async def _sync_quietly(self) -> None:
        try:
            await self.sync()
        except (ClientError, TimeoutError, LinkLost) as exc:
            log.debug("sync failed, retried on the next connect: %s", exc)

    def _leave(self, link: Link) -> None:
        """Drop a draining node's link; the supervisor reconnects at once (elsewhere)."""
        if not link.lost.done():
            link.mark_lost(int(Code.DRAINING))

    def _remember_sent(self, msg_id: str) -> None:
        self._sent_ids[msg_id] = None
        if len(self._sent_ids) > _SENT_MEMORY:
            self._sent_ids.popitem(last=False)

    def _deliver(self, message: ChatMessage) -> None:
        """Hand a message to the application, unless this device sent it (it has the ack;
        the copy in the user's inbox is for the user's other devices)."""
        if message.from_user == self.user_id and message.msg_id in self._sent_ids:
            return
        self._incoming.put_nowait(message)

    def _claim_download(self, seq: int, header: FileHeader) -> DownloadTarget | None:
        target = self._downloads.get(seq)
        answer = self._pending.get(seq)
        if target is None or answer is None or answer.done():
            return None
        answer.set_result(header)
        return target

    def _on_download(self, link: Link, event: StreamDataReceived) -> None:
        stream_id = event.stream_id
        download = link.downloads.get(stream_id)
        if download is None:
            download = link.downloads[stream_id] = DownloadStream(self._claim_download)
        try:
            wanted = download.feed(event.data, event.end_stream)
        except (ProtocolError, ValueError, OSError) as exc:
            log.warning("bad download stream %d: %s", stream_id, exc)
            wanted = False
            download.abandon(ClientError(int(Code.MALFORMED_FRAME), str(exc)))
        if not wanted:
            with contextlib.suppress(Exception):
                link.quic.stop_stream(stream_id, int(Code.OK))
                link.protocol.transmit()
        if event.end_stream or not wanted:
            link.downloads.pop(stream_id, None)

    def _on_event(self, link: Link, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived) and event.stream_id & 0x3 == 0x3:
            self._on_download(link, event)
        elif isinstance(event, StreamReset):
            download = link.downloads.pop(event.stream_id, None)
            if download is not None:
                download.abandon(ClientError(event.error_code, "download reset by the server"))
        elif isinstance(event, StreamDataReceived):
            try:
                packets = self._core.receive(event.stream_id, event.data)
            except ProtocolError as exc:
                log.warning("bad frame from server: %s", exc)
                link.close_code = int(exc.code)
                link.protocol.close(error_code=int(exc.code), reason_phrase=exc.message)
                return
            for packet in packets:
                self._on_packet(link, packet.seq, packet.body)
        elif isinstance(event, ConnectionTerminated):
            link.close_reason = link.close_reason or event.reason_phrase
            link.mark_lost(event.error_code)

    def _on_packet(self, link: Link, seq: int, body: Body) -> None:
        future = self._pending.get(seq) if seq else None
        if (
            future is not None
            and not future.done()
            and not isinstance(body, ChatMessage | Kick | Notice)
        ):
            future.set_result(body)
            return
        match body:
            case ChatMessage() if body.delivery == Delivery.BROADCAST:
                self._incoming.put_nowait(body)  # not stored in any inbox: seq 0, no cursor
            case ChatMessage():
                verdict = self._cursor.offer(body)
                if verdict == "deliver":
                    self._deliver(body)
                elif verdict == "gap":
                    self._schedule_sync()
            case Kick(code, reason):
                link.close_code, link.close_reason = code, reason
            case Error(code, message) if (
                code > Code.OK and reconnect_for(code) is not Reconnect.STAYS_OPEN
            ):
                link.close_code, link.close_reason = code, message
            case Notice(kind, code, message, after_ms) if kind == NoticeKind.DRAIN:
                # finish what is in flight for the given delay, then move to another node
                link.close_code, link.close_reason = code or int(Code.DRAINING), message
                asyncio.get_running_loop().call_later(after_ms / 1000, self._leave, link)


def _tls_failure(link: Link) -> int | None:
    """The QUIC CRYPTO_ERROR (0x100 + TLS alert) that ended a handshake, if one did."""
    if link.lost.done() and not link.lost.cancelled():
        code = link.lost.result()
        if 0x100 <= code <= 0x1FF:
            return code
    return None


def _local_address_for(host: str) -> str:
    """Bind the client socket to loopback for a loopback server, else to the wildcard."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "0.0.0.0"
    if address.is_loopback:
        return str(address) if address.version == 4 else "::1"
    return "0.0.0.0" if address.version == 4 else "::"
