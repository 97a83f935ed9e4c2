"""Stream helpers shared by the two QUIC transports (raw QUIC and WebTransport)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from aioquic.quic.connection import QuicConnection

__all__ = ["AckSignal", "QuicFileStreams", "send_or_drop", "unacked_bytes"]

log = logging.getLogger(__name__)


def send_or_drop(
    quic: QuicConnection, stream_id: int, data: bytes, end_stream: bool = False
) -> None:
    """Write to a stream, unless the peer stopped or reset it (STOP_SENDING /
    RESET_STREAM): then the data is undeliverable by the peer's choice, and dropped."""
    try:
        quic.send_stream_data(stream_id, data, end_stream)
    except (AssertionError, RuntimeError, ValueError) as exc:
        log.debug("dropped %d bytes for stream %d: %s", len(data), stream_id, exc)


def unacked_bytes(quic: QuicConnection, stream_id: int) -> int:
    """Bytes written on a stream that the peer has not acknowledged yet.

    aioquic keeps them in the stream's sender buffer and has no public accessor; this
    and the QUIC peer's total are the places that read it.
    """
    stream = quic._streams.get(stream_id)
    if stream is None or stream.sender._reset_error_code is not None:
        return 0
    return stream.sender._buffer_stop - stream.sender._buffer_start


class AckSignal(Protocol):
    """The QUIC peer, as a file stream sees it."""

    @property
    def quic(self) -> QuicConnection: ...

    def transmit(self) -> None: ...

    def next_ack(self) -> asyncio.Future[None]:
        """Resolves after the next datagram from the client (which is how acks come)."""
        ...

    file_stream_ids: set[int]
    """Download streams: their backlog is paced by the download, not by the writer's
    bound, so the peer leaves them out of its outbound total."""


class QuicFileStreams:
    """``FileStreams`` over one aioquic connection; ``open_uni`` opens the stream (raw QUIC
    and WebTransport open it differently)."""

    def __init__(self, peer: AckSignal, open_uni: Callable[[], int]) -> None:
        self._peer = peer
        self._open_uni = open_uni

    def open_stream(self) -> int:
        stream_id = self._open_uni()
        self._peer.file_stream_ids.add(stream_id)
        return stream_id

    def write(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        send_or_drop(self._peer.quic, stream_id, data, end_stream)

    def backlog(self, stream_id: int) -> int:
        return unacked_bytes(self._peer.quic, stream_id)

    async def acked(self) -> None:
        await self._peer.next_ack()

    def reset(self, stream_id: int, code: int) -> None:
        self._peer.file_stream_ids.discard(stream_id)
        try:
            self._peer.quic.reset_stream(stream_id, code)
        except (AssertionError, RuntimeError, ValueError) as exc:
            log.debug("stream %d not reset: %s", stream_id, exc)
        self._peer.transmit()

    def stop(self, stream_id: int, code: int) -> None:
        try:
            self._peer.quic.stop_stream(stream_id, code)
        except (AssertionError, RuntimeError, ValueError) as exc:
            log.debug("stream %d not stopped: %s", stream_id, exc)
        self._peer.transmit()

    def transmit(self) -> None:
        self._peer.transmit()
