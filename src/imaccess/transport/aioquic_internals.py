"""The places the gateway reaches into aioquic 1.7.2's private state, kept together so
that an aioquic upgrade has one module to check (and ``streams.unacked_bytes``).

Each is a measured lever (BENCHMARKS.md) for which aioquic has no public knob.
"""

from __future__ import annotations

import functools

from aioquic._buffer import Buffer
from aioquic.quic import connection as aioquic_connection
from aioquic.quic.connection import QuicConnection
from aioquic.tls import Epoch

__all__ = ["ack_now", "break_cycles", "handshake_complete", "shrink_crypto_buffers"]

SPENT_CRYPTO_BUFFER = 1024
"""Bytes of TLS output buffer left to a connection past its handshake."""

# aioquic gives every connection a frame-handler table holding 33 freshly built frozensets
# of epochs (~7 KB per connection); they are immutable, so all connections can share them.
aioquic_connection.EPOCHS = functools.cache(aioquic_connection.EPOCHS)


def handshake_complete(quic: QuicConnection) -> bool:
    return bool(quic._handshake_complete)


def ack_now(quic: QuicConnection, now: float) -> None:
    """Make a pending 1-RTT ACK due now, so the next packet carries it (a reply, rather
    than an ACK-only packet after the ack delay)."""
    space = quic._spaces.get(Epoch.ONE_RTT)
    if space is not None and space.ack_at is not None:
        space.ack_at = now


def shrink_crypto_buffers(quic: QuicConnection) -> None:
    """aioquic keeps three 16 KiB TLS output buffers per connection for its life; past
    the handshake (the session ticket is already out) TLS writes nothing more, so small
    ones do: this was half of an idle connection's memory."""
    buffers = quic._crypto_buffers
    for epoch, buffer in list(buffers.items()):
        if buffer.tell() == 0:  # _push_crypto_data has drained it
            buffers[epoch] = Buffer(capacity=SPENT_CRYPTO_BUFFER)


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
