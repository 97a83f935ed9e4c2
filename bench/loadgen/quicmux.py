"""Many client QUIC connections over one UDP socket.

A socket per connection would cost a file descriptor, a kernel socket buffer and an
event-loop reader each; at tens of thousands of connections per process that is the
load generator's bottleneck rather than the server's. Instead every connection of a
worker shares one socket and incoming datagrams are routed by their destination
connection ID, which is always one of the client's own (host) CIDs: the same scheme as
the server in ``imaccess.transport.quic``, run from the other end.

The CID is read straight from the header bytes (long header: length byte at offset 5;
short header: our fixed 8-byte CIDs at offset 1) rather than with aioquic's
``pull_quic_header``, which is the most expensive step of routing a datagram.

The QUIC library is the worker's :class:`~.stacks.ClientStack` (qh3 or aioquic): both
have the same sans-I/O ``QuicConnection`` API, only their classes differ.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any, cast

from imaccess.transport.udp import size_socket_buffers

from .recorder import Recorder
from .stacks import DEFAULT_STACK, ClientStack, load_stack

__all__ = ["QuicLink", "QuicMux"]

_CID_LENGTH = 8  # the default connection_id_length of both stacks, for short headers
_SOCKET_BUFFER = 8 * 1024 * 1024


NetworkAddress = Any  # (host, port), as both stacks type it
QuicEvent = Any  # an event of the worker's stack
SessionTicket = Any  # a session ticket of the worker's stack


class QuicLink:
    """One client connection: pumps the stack's state machine, hands events to ``on_event``."""

    __slots__ = ("_mux", "_timer", "_timer_at", "cids", "closed", "on_event", "quic")

    def __init__(self, mux: QuicMux, quic: Any) -> None:
        self._mux = mux
        self.quic = quic
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.cids: set[bytes] = set()
        self.closed = False
        self.on_event: Callable[[QuicEvent], None] = lambda event: None

    def transmit(self) -> None:
        mux = self._mux
        for data, addr in self.quic.datagrams_to_send(now=mux.loop.time()):
            mux.sendto(data, addr)
        timer_at = self.quic.get_timer()
        if timer_at != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if timer_at is not None:
                self._timer = mux.loop.call_at(timer_at, self._handle_timer)
            self._timer_at = timer_at

    def send(self, stream_id: int, data: bytes) -> None:
        """Queue and transmit at once: one call per request keeps latency honest."""
        if not self.closed:
            self.quic.send_stream_data(stream_id, data)
            self.transmit()

    def ping(self, uid: int) -> None:
        """A QUIC PING, transmitted at once; ``PingAcknowledged(uid)`` follows."""
        if not self.closed:
            self.quic.send_ping(uid)
            self.transmit()

    def close(self, code: int = 0) -> None:
        if not self.closed:
            self.quic.close(error_code=code)
            self.transmit()

    def datagram_received(self, data: bytes, addr: NetworkAddress) -> None:
        self.quic.receive_datagram(data, addr, now=self._mux.loop.time())
        self._pump()

    def _handle_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.quic.handle_timer(now=self._mux.loop.time())
        self._pump()

    def _pump(self) -> None:
        quic = self.quic
        stack = self._mux.stack
        event = quic.next_event()
        while event is not None:
            kind = type(event)
            if kind is stack.ConnectionIdIssued:
                self._mux.add_cid(event.connection_id, self)
            elif kind is stack.ConnectionIdRetired:
                self._mux.remove_cid(event.connection_id)
            elif kind is stack.ConnectionTerminated:
                self._terminated()
            self.on_event(event)
            event = quic.next_event()
        if not self.closed:
            self.transmit()

    def _terminated(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._mux.forget(self)


class QuicMux(asyncio.DatagramProtocol):
    """The worker's one UDP socket and the CID → connection map."""

    def __init__(self, stack: ClientStack | None = None, recorder: Recorder | None = None) -> None:
        self.stack = stack or load_stack(DEFAULT_STACK)
        self.recorder = recorder or Recorder()
        """Where datagrams in and out are counted."""
        self.loop = asyncio.get_running_loop()
        self._links: dict[bytes, QuicLink] = {}
        self._transport: asyncio.DatagramTransport | None = None
        self.unrouted = 0

    @classmethod
    async def open(
        cls,
        stack: ClientStack | None = None,
        recorder: Recorder | None = None,
        host: str = "127.0.0.1",
    ) -> QuicMux:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # thousands of connections answer at once during a ramp or a broadcast
        size_socket_buffers(sock, _SOCKET_BUFFER)
        sock.bind((host, 0))
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_datagram_endpoint(lambda: cls(stack, recorder), sock=sock)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def connect(
        self,
        configuration: Any,
        addr: NetworkAddress,
        session_ticket_handler: Callable[[SessionTicket], None] | None = None,
    ) -> QuicLink:
        """Start a handshake to ``addr``; the caller sets ``on_event`` before the loop turns."""
        quic = self.stack.QuicConnection(
            configuration=configuration, session_ticket_handler=session_ticket_handler
        )
        link = QuicLink(self, quic)
        self.add_cid(quic.host_cid, link)
        quic.connect(addr, now=self.loop.time())
        self.loop.call_soon(link.transmit)
        return link

    def sendto(self, data: bytes, addr: NetworkAddress) -> None:
        if self._transport is not None:
            self._transport.sendto(data, addr)
            self.recorder.datagrams_out += 1

    def add_cid(self, cid: bytes, link: QuicLink) -> None:
        self._links[cid] = link
        link.cids.add(cid)

    def remove_cid(self, cid: bytes) -> None:
        link = self._links.pop(cid, None)
        if link is not None:
            link.cids.discard(cid)

    def forget(self, link: QuicLink) -> None:
        for cid in link.cids:
            if self._links.get(cid) is link:
                del self._links[cid]
        link.cids.clear()

    def datagram_received(self, data: bytes, addr: NetworkAddress) -> None:
        if not data:
            return
        self.recorder.datagrams_in += 1
        if data[0] & 0x80:  # long header: version (4), DCID length (1), DCID
            if len(data) < 6:
                return
            cid = data[6 : 6 + data[5]]
        else:
            cid = data[1 : 1 + _CID_LENGTH]
        link = self._links.get(cid)
        if link is None:
            self.unrouted += 1  # late packets of a closed connection
            return
        link.datagram_received(data, addr)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
