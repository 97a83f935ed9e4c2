"""The places the gateway reaches into aioquic 1.7.2's private state, kept together so
that an aioquic upgrade has one module to check (and ``streams.unacked_bytes``).

Each is a measured lever (BENCHMARKS.md) for which aioquic has no public knob. Most are
about memory: aioquic builds a connection for the handshake and keeps all of it for the
connection's life, while an idle gateway connection needs only its 1-RTT state.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from aioquic.quic import connection as aioquic_connection
from aioquic.quic import recovery as aioquic_recovery
from aioquic.quic.connection import QuicConnection
from aioquic.quic.crypto import CryptoPair, NoCallback
from aioquic.quic.recovery import QuicPacketSpace
from aioquic.quic.stream import QuicStream
from aioquic.tls import AlertUnexpectedMessage, Epoch

__all__ = [
    "CompactQuicConnection",
    "PacketNumberWindow",
    "ack_now",
    "ack_pending",
    "break_cycles",
    "defer_ack",
    "forget_ack_only_packets",
    "handshake_complete",
]

CONNECTION_IDS = 3
"""Connection IDs each side keeps for the other: the one in use and two spare for a
migration. aioquic asks for and issues 8, each held in objects and in the server's map;
RFC 9000 allows any limit from 2."""

# aioquic gives every connection a frame-handler table holding 33 freshly built frozensets
# of epochs (~7 KB per connection); they are immutable, so all connections can share them.
aioquic_connection.EPOCHS = functools.cache(aioquic_connection.EPOCHS)


class PacketNumberWindow:
    """aioquic's duplicate-packet window as a bit mask. aioquic keeps a set of up to 256
    received packet numbers per packet space, which a long-lived connection fills (one
    keepalive every 30 s does in about two hours): ~16 KB per connection, against a few
    dozen bytes here. Same contract: numbers below the window count as received."""

    __slots__ = ("_bits", "_lower")

    SIZE = 2 * aioquic_recovery.MAX_ACK_RANGES

    def __init__(self) -> None:
        self._lower = 0
        self._bits = 0
        """Bit ``i`` set: packet number ``_lower + i`` was received."""

    def add(self, packet_number: int) -> None:
        offset = packet_number - self._lower
        if offset < 0:
            return
        if offset >= self.SIZE:  # slide so that packet_number is the upper bound
            shift = offset - self.SIZE + 1
            self._bits >>= shift
            self._lower += shift
            offset -= shift
        self._bits |= 1 << offset

    def __contains__(self, packet_number: int) -> bool:
        offset = packet_number - self._lower
        return offset < 0 or bool(self._bits >> offset & 1)


aioquic_recovery.QuicPacketNumberWindow = PacketNumberWindow  # type: ignore[misc, assignment]


class _FrameHandlers:
    """A connection's view of one frame-handler table shared by all connections: aioquic
    builds 33 bound methods and tuples per connection (~4 KB) that differ only in
    ``self``. The method is looked up per frame, so subclasses' overrides still apply."""

    __slots__ = ("_names", "_quic")

    def __init__(self, quic: QuicConnection, names: dict[int, tuple[str, Any]]) -> None:
        self._quic = quic
        self._names = names

    def __getitem__(self, frame_type: int) -> tuple[Callable[..., None], Any]:
        name, epochs = self._names[frame_type]
        return getattr(self._quic, name), epochs


_handler_names: dict[int, tuple[str, Any]] = {}
"""Frame type → (handler method's name, epochs), read off the first connection's table."""


def _share_frame_handlers(quic: QuicConnection) -> None:
    table = quic._QuicConnection__frame_handlers  # type: ignore[attr-defined]
    if not _handler_names:
        for frame_type, (handler, epochs) in table.items():
            _handler_names[frame_type] = (handler.__name__, epochs)
    quic._QuicConnection__frame_handlers = _FrameHandlers(quic, _handler_names)  # type: ignore[attr-defined]


class SmallQueue(list[Any]):
    """The part of ``deque`` aioquic uses, on a list: an empty deque takes 760 bytes (it
    allocates a 64-slot block up front), an empty list 56, and these queues (pending
    events, datagrams and path challenges) hold nothing most of their life."""

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)


class _LocalChallenges(SmallQueue):
    """``deque(maxlen=MAX_LOCAL_CHALLENGES)``: the oldest challenge goes first."""

    __slots__ = ()

    def append(self, challenge: Any) -> None:
        super().append(challenge)
        if len(self) > aioquic_connection.MAX_LOCAL_CHALLENGES:
            del self[0]


class _SpentTls:
    """What is left of the TLS context once the handshake is over: QUIC carries no TLS
    message after it (the session ticket is already out), so any CRYPTO data the client
    sends then is the protocol violation the real context would call it too."""

    __slots__ = ("alpn_negotiated", "early_data_accepted", "session_resumed", "state")

    def __init__(self, tls: Any) -> None:
        self.alpn_negotiated = tls.alpn_negotiated
        self.early_data_accepted = tls.early_data_accepted
        self.session_resumed = tls.session_resumed
        self.state = tls.state

    def handle_message(self, data: bytes, buffers: object) -> None:
        raise AlertUnexpectedMessage("no TLS message is expected after the handshake")


def _spent_crypto_pair() -> CryptoPair:
    pair = CryptoPair()
    pair.teardown()
    return pair


def _spent_space() -> QuicPacketSpace:
    space = QuicPacketSpace()
    space.discarded = True
    return space


_SPENT_CRYPTO = _spent_crypto_pair()
_SPENT_SPACE = _spent_space()
_SPENT_STREAM = QuicStream()
"""Shared stand-ins for a discarded epoch's keys, packet space and CRYPTO stream: aioquic
looks them up for a late packet of that epoch (which then fails to decrypt) and never
writes to them again, as the epoch's keys are gone."""


class CompactQuicConnection(QuicConnection):
    """aioquic's server connection, holding only what an established connection uses."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._local_active_connection_id_limit = CONNECTION_IDS
        self._events = SmallQueue(self._events)  # type: ignore[assignment]
        self._datagrams_pending = SmallQueue(self._datagrams_pending)  # type: ignore[assignment]
        _share_frame_handlers(self)

    def _replenish_connection_ids(self) -> None:
        limit = self._remote_active_connection_id_limit
        self._remote_active_connection_id_limit = min(limit, CONNECTION_IDS)
        try:
            super()._replenish_connection_ids()
        finally:
            self._remote_active_connection_id_limit = limit

    def _handle_padding_frame(self, context: Any, frame_type: int, buf: Any) -> None:
        """aioquic skips padding one byte at a time in Python: ~1,000 iterations for each
        padded client Initial, 3.6 % of a connect storm's CPU. ``lstrip`` does it in C."""
        start = buf.tell()
        rest = buf.data_slice(start, buf.capacity)
        buf.seek(start + len(rest) - len(rest.lstrip(b"\x00")))
        if self._quic_logger is not None:
            context.quic_logger_frames.append(self._quic_logger.encode_padding_frame())

    def compact(self) -> None:
        """Drop the handshake's state, once the handshake is complete: the TLS context,
        the Initial and Handshake epochs' keys, packet spaces and CRYPTO streams, the TLS
        output buffers, and the key-logging callbacks of every epoch; the path's challenge
        queues become small ones. Half of what an idle connection held."""
        if not self._handshake_complete:
            return
        self.tls = _SpentTls(self.tls)  # type: ignore[assignment]
        self._crypto_buffers = {}
        spent = [epoch for epoch, space in self._spaces.items() if space.discarded]
        for epoch in spent:
            self._spaces[epoch] = _SPENT_SPACE
            self._cryptos[epoch] = _SPENT_CRYPTO
            self._crypto_streams[epoch] = _SPENT_STREAM
        if Epoch.INITIAL in spent:
            self._cryptos_initial = dict.fromkeys(self._cryptos_initial, _SPENT_CRYPTO)
        self._loss.spaces = [space for space in self._loss.spaces if not space.discarded]
        for path in self._network_paths:
            path.local_challenges = _LocalChallenges(path.local_challenges)  # type: ignore[assignment]
            path.remote_challenges = SmallQueue(path.remote_challenges)  # type: ignore[assignment]
        for pair in self._cryptos.values():
            if pair is not _SPENT_CRYPTO:
                for context in (pair.recv, pair.send):
                    context._setup_cb = context._teardown_cb = NoCallback


def handshake_complete(quic: QuicConnection) -> bool:
    return bool(quic._handshake_complete)


def ack_pending(quic: QuicConnection) -> bool:
    """Whether a 1-RTT ACK is owed (an ack-eliciting packet not yet acknowledged)."""
    space = quic._spaces.get(Epoch.ONE_RTT)
    return space is not None and space.ack_at is not None


def defer_ack(quic: QuicConnection, until: float) -> None:
    """Let a pending 1-RTT ACK wait until ``until`` (within the max_ack_delay we
    advertise), for an answer to carry it."""
    space = quic._spaces.get(Epoch.ONE_RTT)
    if space is not None and space.ack_at is not None and space.ack_at < until:
        space.ack_at = until


def ack_now(quic: QuicConnection, now: float) -> None:
    """Make a pending 1-RTT ACK due now, so the next packet carries it (a reply, rather
    than an ACK-only packet after the ack delay)."""
    space = quic._spaces.get(Epoch.ONE_RTT)
    if space is not None and space.ack_at is not None:
        space.ack_at = now


ACK_ONLY_PACKETS_KEPT = 1
"""Up to this many sent-packet records, ACK-only ones are left alone (and the check is
one ``len``): an idle connection keeps at most the latest."""


def forget_ack_only_packets(quic: QuicConnection) -> None:
    """aioquic keeps a record of every packet it sends until the peer acknowledges it,
    ACK-only packets included; but a peer acknowledges only ack-eliciting packets, and
    an idle connection's server sends nothing else (the ACKs of the client's PINGs), so
    the records of a long-lived connection grew by one per keepalive, forever (~600
    bytes each: 1 MB per connection per day at 30 s keepalives). An ACK-only packet is
    neither retransmitted nor counted in flight; its record only lets aioquic stop
    re-acknowledging ranges once the peer has seen them, which the ACKs carried by
    ack-eliciting packets also do, and the ranges are bounded anyway. Cheap to call
    after every transmit: it looks further only when the newest record is ACK-only."""
    space = quic._spaces.get(Epoch.ONE_RTT)
    if space is None or len(space.sent_packets) <= ACK_ONLY_PACKETS_KEPT:
        return
    sent = space.sent_packets
    newest = sent[next(reversed(sent))]
    if newest.is_ack_eliciting or newest.in_flight:
        return
    for number in [n for n, p in sent.items() if not (p.is_ack_eliciting or p.in_flight)]:
        del sent[number]


def _no_probe() -> None:
    """The loss-recovery probe of a released connection: it has nothing to send."""


def break_cycles(quic: QuicConnection) -> None:
    """Drop what makes a terminated connection refer to itself (its frame-handler table,
    loss-recovery, TLS and session-ticket callbacks), so reference counting frees it. A
    terminated connection reads no more datagrams and sends none: none of these is used
    again."""
    quic._QuicConnection__frame_handlers = {}  # type: ignore[attr-defined]
    quic._loss._send_probe = _no_probe
    quic.tls = None  # type: ignore[assignment]
    quic._cryptos = {}
    quic._session_ticket_fetcher = quic._session_ticket_handler = None
