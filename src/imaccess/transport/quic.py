"""Raw QUIC transport (ALPN ``im-access``) on aioquic's sans-I/O ``QuicConnection``.

We do not use aioquic's ``serve()``: its server forgets a closed connection by scanning
every connection ID of every connection (O(all connections) per close, which froze the
loop for tens of seconds in a wave of timeouts at 30K connections). Here each peer
keeps the set of its own connection IDs, so a close costs O(its own IDs).

Stream contract (PROTOCOL.md): client bidirectional streams carry frames and are handed
to the connection's session; client unidirectional streams are file uploads, and the
server opens unidirectional streams for downloads ("Files"). Data received before the
handshake completes is 0-RTT early data and is flagged as such, so the session can
refuse an AuthRequest in it.

The same port serves browsers: a connection that negotiates ALPN ``h3`` is handed to
:mod:`imaccess.transport.webtransport` (HTTP/3 + WebTransport) instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Protocol, cast

from aioquic._buffer import Buffer
from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE, QuicConfiguration
from aioquic.quic.connection import NetworkAddress
from aioquic.quic.events import (
    ConnectionIdIssued,
    ConnectionIdRetired,
    ConnectionTerminated,
    HandshakeCompleted,
    ProtocolNegotiated,
    QuicEvent,
    StopSendingReceived,
    StreamDataReceived,
    StreamReset,
)
from aioquic.quic.packet import (
    QuicHeader,
    QuicPacketType,
    QuicProtocolVersion,
    encode_quic_retry,
    encode_quic_version_negotiation,
    pull_quic_header,
)
from aioquic.quic.retry import QuicRetryTokenHandler
from aioquic.tls import SessionTicket

from ..connection import Connection, FileStreams, Transport
from ..protocol.codes import Code
from ..settings import QuicSettings
from ..timers import TimerWheel
from .aioquic_internals import (
    CompactQuicConnection,
    ack_now,
    ack_pending,
    break_cycles,
    defer_ack,
    forget_ack_only_packets,
    handshake_complete,
)
from .reuseport import steered_connection
from .streams import QuicFileStreams, send_or_drop, unacked_bytes
from .tickets import Ticket, TicketStore
from .udp import size_socket_buffers
from .webtransport import WEBTRANSPORT_ALPN, WebTransportHandler

__all__ = ["ALPN", "ConnectionAcceptor", "QuicServer", "make_server_configuration", "serve_quic"]

ALPN = "im-access"
CLOSE_LINGER = 1.0
"""Longest wait for a closing connection's last frame to be acknowledged."""
REPLY_ACK_WAIT = 0.020
"""How long the ACK of a packet carrying a request may wait for the answer to carry it:
under the 25 ms max_ack_delay aioquic advertises, which clients add to their loss
timers, so no client retransmits for it."""
NEAR_DEADLINE = 1.0
"""QUIC deadlines further away than this (seconds) wait in the shared timer wheel."""
WHEEL_RESOLUTION = 0.5
"""How late a far deadline (an idle timeout) may fire."""
log = logging.getLogger(__name__)


class ConnectionAcceptor(Protocol):
    """The node, as a transport sees it."""

    def open_connection(self, transport: Transport) -> Connection | None: ...


def make_server_configuration(
    settings: QuicSettings, cert_file: str, key_file: str
) -> QuicConfiguration:
    configuration = QuicConfiguration(
        is_client=False,
        alpn_protocols=[ALPN, WEBTRANSPORT_ALPN],
        # QUIC v1 only (what browsers and our SDKs speak): aioquic derives initial keys
        # for every supported version on each new connection, a tenth of a handshake.
        supported_versions=[QuicProtocolVersion.VERSION_1],
        idle_timeout=settings.idle_timeout,
        max_datagram_frame_size=settings.max_datagram_frame_size,
    )
    configuration.load_cert_chain(cert_file, key_file)
    return configuration


class QuicPeer:
    """One QUIC connection: drives the state machine and is the Connection's transport."""

    kind = "quic"

    def __init__(
        self,
        server: QuicServer,
        make_quic: Callable[[QuicPeer], CompactQuicConnection],
        addr: NetworkAddress,
    ) -> None:
        self._server = server
        self._addr = addr
        self._issued: list[Ticket] = []
        self._identity = (0, 0.0)
        self.resumed_user = 0
        """The user a resumed session's ticket was bound to, while the token lasts: the
        identity under which 0-RTT early data may carry messages (PROTOCOL.md "0-RTT")."""
        self._quic = make_quic(self)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.cids: set[bytes] = set()
        self.connection: Connection | None = None
        self._refused = False
        self._closing = False
        self._h3: WebTransportHandler | None = None
        """Set when the connection negotiated ``h3``: it then owns the stream events."""
        self._replying = False
        self._transmit_due = False
        self.file_stream_ids: set[int] = set()
        self._ack_waiters: list[asyncio.Future[None]] = []
        self._file_streams: QuicFileStreams | None = None

    @property
    def quic(self) -> CompactQuicConnection:
        return self._quic

    @property
    def handshake_done(self) -> bool:
        return handshake_complete(self._quic)

    def now(self) -> float:
        return self._server.loop.time()

    def open(self, transport: Transport) -> Connection | None:
        """Hand a connection (this peer, or a session on it) to the node, once."""
        if self.connection is None and not self._refused:
            self.connection = self._server.acceptor.open_connection(transport)
            self._refused = self.connection is None
        return self.connection

    # ------------------------------------------------------------ session tickets

    def ticket_issued(self, ticket: SessionTicket) -> None:
        entry = self._server.tickets.add(ticket)
        entry.user_id, entry.expires_at = self._identity
        self._issued.append(entry)

    def resume_ticket(self, label: bytes) -> SessionTicket | None:
        entry = self._server.tickets.pop(label)
        if entry is None:
            return None
        if entry.user_id and entry.expires_at > time.time():
            self.resumed_user = entry.user_id
        return entry.ticket

    # ------------------------------------------------------------ Transport

    def bind_identity(self, user_id: int, expires_at: float) -> None:
        """The connection authenticated: tickets it was (or will be) issued resume as
        this user until ``expires_at``."""
        self._identity = (user_id, expires_at)
        for entry in self._issued:
            entry.user_id, entry.expires_at = self._identity

    @property
    def remote_address(self) -> tuple[str, int]:
        """The client's current address: it changes when the client migrates."""
        paths = self._quic._network_paths
        addr = paths[0].addr if paths else self._addr
        return (str(addr[0]), int(addr[1]))

    def send(self, stream_id: int, data: bytes) -> None:
        send_or_drop(self._quic, stream_id, data)
        self._replying = True

    def transmit(self) -> None:
        server = self._server
        now = server.loop.time()
        if self._replying:
            # Carry the pending ACK in this reply instead of in an ACK-only packet after
            # aioquic's 1 ms ack delay: a request and its answer then cost one packet each
            # way (a heartbeat is the commonest case). aioquic has no knob for it.
            self._replying = False
            ack_now(self._quic, now)
        for data, addr in self._quic.datagrams_to_send(now=now):
            server.sendto(data, addr)
        forget_ack_only_packets(self._quic)
        self._arm_timer(now)

    def _arm_timer(self, now: float) -> None:
        """Wake at aioquic's next deadline: with a loop timer when it is near (ACK delay,
        loss detection, pacing), in the server's shared wheel when it is far (the idle
        timeout). Every packet pushes the idle timeout back, and re-arming a loop timer for
        it per packet was much of an idle connection's CPU; moving a wheel entry is a
        couple of dict operations, and none at all within the same second."""
        timer_at = self._quic.get_timer()
        if timer_at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = timer_at
        wheel = self._server.timer_wheel
        if timer_at is not None and timer_at - now > NEAR_DEADLINE:
            wheel.schedule(self, timer_at)
            return
        wheel.cancel(self)
        if timer_at is not None:
            self._timer = self._server.loop.call_at(timer_at, self._handle_timer)

    def wheel_due(self, now: float) -> None:
        """The wheel's bucket for this peer came due: its deadline may have moved since."""
        self._timer_at = None
        timer_at = self._quic.get_timer()
        if timer_at is not None and timer_at <= now:
            self._handle_timer()
        else:
            self._arm_timer(now)

    @property
    def file_streams(self) -> FileStreams:
        if self._file_streams is None:
            quic = self._quic
            self._file_streams = QuicFileStreams(
                self, lambda: quic.get_next_available_stream_id(is_unidirectional=True)
            )
        return self._file_streams

    def next_ack(self) -> asyncio.Future[None]:
        waiter = self._server.loop.create_future()
        self._ack_waiters.append(waiter)
        return waiter

    def buffered_bytes(self) -> int:
        """Unacknowledged bytes of the chat streams (downloads pace themselves)."""
        streams = self._quic._streams
        downloads = self.file_stream_ids
        if downloads:
            downloads.intersection_update(streams)  # forget finished downloads
        return sum(unacked_bytes(self._quic, i) for i in streams if i not in downloads)

    def close(self, code: int, reason: str) -> None:
        """Close once what was written (the in-band frame that says why) has been
        acknowledged, or after :data:`CLOSE_LINGER` seconds: aioquic sends no stream data
        after ``close()``, so closing at once would lose that frame to one dropped packet
        (and a browser drops unread data under a closing connection)."""
        self._closing = True
        self._close_when_delivered(code, reason, self._server.loop.time() + CLOSE_LINGER)

    def _close_when_delivered(self, code: int, reason: str, deadline: float) -> None:
        # a method, not a closure that re-schedules itself: that would be a reference
        # cycle holding the peer (see _release)
        loop = self._server.loop
        if self.buffered_bytes() == 0 or loop.time() >= deadline:
            self._quic.close(error_code=code, reason_phrase=reason)
            self.transmit()
        else:
            loop.call_later(0.02, self._close_when_delivered, code, reason, deadline)

    # ------------------------------------------------------------ QUIC events

    def datagram_received(self, data: bytes, addr: NetworkAddress) -> None:
        now = self._server.loop.time()
        owed_before = ack_pending(self._quic)
        self._quic.receive_datagram(data, addr, now=now)
        if self._process_events():
            if owed_before:
                # a second packet with data before the first was acknowledged:
                # acknowledge both now (RFC 9000 section 13.2.2), so a bulk sender is
                # never held back
                self._replying = True
            else:
                # A request: its answer (a message's ack comes once Logic stored it,
                # often milliseconds away across NATS) carries the ACK, instead of an
                # ACK-only packet after aioquic's 1 ms ack delay: a datagram fewer each
                # way per message. An ACK from the client meanwhile does not end the wait.
                defer_ack(self._quic, now + REPLY_ACK_WAIT)
        elif not owed_before:
            # Nothing for the application: a QUIC PING keepalive (or an ACK, which needs
            # no answer). Acknowledge now instead of arming aioquic's ack-delay timer:
            # the same one packet, without the timer churn.
            self._replying = True
        if self.connection is not None:
            self.connection.keepalive(now)
        if not self._transmit_due:
            self._transmit_due = True
            self._server.loop.call_soon(self._transmit_after_reads)
        if self._ack_waiters:
            self._wake_ack_waiters()

    def _transmit_after_reads(self) -> None:
        """Answer the datagrams read in this loop turn at once, not one by one: a client's
        flight often arrives as several datagrams together (a handshake's Finished and its
        first request; a burst of messages), and its ACKs and our answers then share
        packets. The loop reads what is waiting before it runs these callbacks. When the
        connection's writer has frames queued, its flush (later in this turn) transmits."""
        self._transmit_due = False
        connection = self.connection
        if connection is None or not connection.writer.has_pending:
            self.transmit()

    def _wake_ack_waiters(self) -> None:
        waiters, self._ack_waiters = self._ack_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _handle_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._quic.handle_timer(now=self._server.loop.time())
        self._process_events()
        self.transmit()

    def _process_events(self) -> bool:
        """Handle what aioquic has for us; False when it had nothing."""
        event = self._quic.next_event()
        if event is None:
            return False
        while event is not None:
            self._handle_event(event)
            event = self._quic.next_event()
        return True

    def _handle_event(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionIdIssued):
            self._server.add_cid(event.connection_id, self)
        elif isinstance(event, ConnectionIdRetired):
            self._server.remove_cid(event.connection_id)
        elif isinstance(event, ProtocolNegotiated) and event.alpn_protocol == WEBTRANSPORT_ALPN:
            self._h3 = WebTransportHandler(self)
            # the session's auth deadline starts with the session: until then, this one
            self._server.loop.call_later(self._server.session_deadline, self._session_overdue)
        if self._h3 is not None:
            self._h3.handle_event(event)
        elif isinstance(event, StreamDataReceived):
            self._on_stream_data(event)
        elif isinstance(event, HandshakeCompleted):
            self._ensure_connection()
        if isinstance(event, HandshakeCompleted):
            self._quic.compact()
        elif isinstance(event, StreamReset | StopSendingReceived) and self.connection is not None:
            self.connection.stream_aborted(event.stream_id)
        if isinstance(event, ConnectionTerminated):
            self._wake_ack_waiters()
            self._server.forget(self)
            self._server.timer_wheel.cancel(self)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self.connection is not None:
                self.connection.connection_lost()
            self._server.loop.call_soon(self._release)

    def _release(self) -> None:
        """Break the reference cycles of a terminated connection, so that reference
        counting frees it at once: aioquic's connection refers to itself, and so do we
        (peer, Connection, file streams, WebTransport handler). Left to the cyclic
        collector, every connection ever closed would wait for a sweep of the old
        generation, which stalls the loop for about a second per 1.5 million live objects
        (``imaccess.runtime``)."""
        break_cycles(self._quic)
        self._h3 = None
        self._file_streams = None
        self.connection = None

    def _session_overdue(self) -> None:
        if self.connection is None and not self._refused and not self._closing:
            self.close(int(Code.AUTH_TIMEOUT), "no WebTransport session within the deadline")

    def _on_stream_data(self, event: StreamDataReceived) -> None:
        if self._closing:  # the connection is closing: what the peer sends is moot
            return
        stream_id = event.stream_id
        if stream_id & 0x2:  # unidirectional: a file upload, once there is a connection
            if self.connection is None:
                self._quic.stop_stream(stream_id, int(Code.PROTOCOL_ERROR))
            else:
                self.connection.receive_upload(stream_id, event.data, event.end_stream)
            return
        connection = self._ensure_connection()
        if connection is not None and event.data:
            early = not handshake_complete(self._quic)
            connection.receive(stream_id, event.data, self._server.loop.time(), early_data=early)

    def _ensure_connection(self) -> Connection | None:
        return self.open(self)


class QuicServer(asyncio.DatagramProtocol):
    def __init__(
        self,
        configuration: QuicConfiguration,
        acceptor: ConnectionAcceptor,
        *,
        retry: bool = False,
        max_streams: tuple[int, int] = (100, 50),
        session_deadline: float = 10.0,
        new_cid: Callable[[int], bytes] | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self._steer = new_cid
        """Makes every connection ID this server issues, when set: a worker's, steered
        back to its socket (:mod:`.reuseport`). Unset: aioquic's random ones."""
        self._connection_type: type[CompactQuicConnection] = (
            steered_connection(new_cid) if new_cid else CompactQuicConnection
        )
        self.session_deadline = session_deadline
        """How long an HTTP/3 connection may go without opening a WebTransport session."""
        self._max_streams = max_streams
        self.acceptor = acceptor
        self._configuration = configuration
        self._peers: dict[bytes, QuicPeer] = {}
        self.tickets = TicketStore()
        self.timer_wheel: TimerWheel[QuicPeer] = TimerWheel(WHEEL_RESOLUTION)
        self._wheel_tick: asyncio.TimerHandle | None = None
        self._retry = QuicRetryTokenHandler() if retry else None
        self._transport: asyncio.DatagramTransport | None = None

    @property
    def peer_count(self) -> int:
        return len({id(p) for p in self._peers.values()})

    @property
    def socket(self) -> socket.socket:
        assert self._transport is not None
        return cast(socket.socket, self._transport.get_extra_info("socket"))

    @property
    def sockname(self) -> tuple[str, int]:
        assert self._transport is not None
        name = self._transport.get_extra_info("sockname")
        return (str(name[0]), int(name[1]))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)
        self._turn_wheel()

    def _turn_wheel(self) -> None:
        self._wheel_tick = self.loop.call_later(WHEEL_RESOLUTION, self._turn_wheel)
        now = self.loop.time()
        for peer in self.timer_wheel.pop_due(now):
            try:
                peer.wheel_due(now)
            except Exception:  # one broken connection must not stop everyone's timers
                log.exception("QUIC timer of %s failed", peer.remote_address)

    def sendto(self, data: bytes, addr: NetworkAddress) -> None:
        if self._transport is not None:
            self._transport.sendto(data, addr)

    def add_cid(self, cid: bytes, peer: QuicPeer) -> None:
        self._peers[cid] = peer
        peer.cids.add(cid)

    def remove_cid(self, cid: bytes) -> None:
        peer = self._peers.pop(cid, None)
        if peer is not None:
            peer.cids.discard(cid)

    def forget(self, peer: QuicPeer) -> None:
        for cid in peer.cids:
            if self._peers.get(cid) is peer:
                del self._peers[cid]
        peer.cids.clear()

    def close(self) -> None:
        if self._wheel_tick is not None:
            self._wheel_tick.cancel()
            self._wheel_tick = None
        if self._transport is not None:
            self._transport.close()

    def datagram_received(self, data: bytes, addr: NetworkAddress) -> None:
        try:
            header = pull_quic_header(
                Buffer(data=data), host_cid_length=self._configuration.connection_id_length
            )
        except ValueError:
            return
        supported = self._configuration.supported_versions
        if (
            header.packet_type != QuicPacketType.VERSION_NEGOTIATION
            and header.version is not None
            and header.version not in supported
        ):
            self.sendto(
                encode_quic_version_negotiation(
                    source_cid=header.destination_cid,
                    destination_cid=header.source_cid,
                    supported_versions=supported,
                ),
                addr,
            )
            return
        peer = self._peers.get(header.destination_cid)
        if peer is None:
            if (
                len(data) < SMALLEST_MAX_DATAGRAM_SIZE
                or header.packet_type != QuicPacketType.INITIAL
            ):
                return
            peer = self._accept(data, addr, header)
            if peer is None:
                return
        peer.datagram_received(data, addr)

    def _accept(self, data: bytes, addr: NetworkAddress, header: QuicHeader) -> QuicPeer | None:
        original_cid: bytes = header.destination_cid
        retry_cid: bytes | None = None
        if self._retry is not None:
            if not header.token:
                source_cid = self._steer(8) if self._steer else os.urandom(8)
                assert header.version is not None
                self.sendto(
                    encode_quic_retry(
                        version=header.version,
                        source_cid=source_cid,
                        destination_cid=header.source_cid,
                        original_destination_cid=header.destination_cid,
                        retry_token=self._retry.create_token(
                            address=addr,
                            original_destination_connection_id=header.destination_cid,
                            retry_source_connection_id=source_cid,
                            now=self.loop.time(),
                        ),
                    ),
                    addr,
                )
                return None
            try:
                original_cid = self._retry.validate_token(
                    address=addr,
                    destination_cid=header.destination_cid,
                    token=header.token,
                    now=self.loop.time(),
                )
            except ValueError:
                return None
            retry_cid = header.destination_cid

        def make_quic(peer: QuicPeer) -> CompactQuicConnection:
            quic = self._connection_type(
                configuration=self._configuration,
                original_destination_connection_id=original_cid,
                retry_source_connection_id=retry_cid,
                session_ticket_fetcher=peer.resume_ticket,
                session_ticket_handler=peer.ticket_issued,
            )
            # aioquic's configuration has no stream limits; its initial transport
            # parameters are read from these when the handshake starts.
            quic._local_max_streams_bidi.value = self._max_streams[0]
            quic._local_max_streams_uni.value = self._max_streams[1]
            return quic

        peer = QuicPeer(self, make_quic, addr)
        self.add_cid(header.destination_cid, peer)
        self.add_cid(peer.quic.host_cid, peer)
        return peer


async def serve_quic(
    host: str,
    port: int,
    configuration: QuicConfiguration,
    acceptor: ConnectionAcceptor,
    *,
    retry: bool = False,
    max_streams: tuple[int, int] = (100, 50),
    session_deadline: float = 10.0,
    socket_buffer: int = 0,
    sock: socket.socket | None = None,
    new_cid: Callable[[int], bytes] | None = None,
) -> QuicServer:
    """Serve on ``host:port``, or on ``sock`` (a bound socket: a worker's share of the
    node's port, with ``new_cid`` steering its connections back to it).
    ``socket_buffer``: kernel buffer sizes to ask for (0: the system's default)."""
    loop = asyncio.get_running_loop()
    _, server = await loop.create_datagram_endpoint(
        lambda: QuicServer(
            configuration,
            acceptor,
            retry=retry,
            max_streams=max_streams,
            session_deadline=session_deadline,
            new_cid=new_cid,
        ),
        **({"sock": sock} if sock is not None else {"local_addr": (host, port)}),
    )
    if socket_buffer:
        size_socket_buffers(server.socket, socket_buffer)
    return server
