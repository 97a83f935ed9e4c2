"""Writing to a QUIC stream that the peer may have stopped, for both QUIC transports."""

from __future__ import annotations

import logging

from aioquic.quic.connection import QuicConnection

__all__ = ["send_or_drop"]

log = logging.getLogger(__name__)


def send_or_drop(quic: QuicConnection, stream_id: int, data: bytes) -> None:
    """Write to a stream, unless the peer stopped or reset it (STOP_SENDING /
    RESET_STREAM): then the data is undeliverable by the peer's choice, and dropped."""
    try:
        quic.send_stream_data(stream_id, data)
    except (AssertionError, RuntimeError, ValueError) as exc:
        log.debug("dropped %d bytes for stream %d: %s", len(data), stream_id, exc)
