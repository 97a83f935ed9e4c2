"""Client side of the protocol, free of I/O: request numbering, per-stream decoding,
and the delivery cursor that turns pushes and Sync pages into an exactly-once,
in-order stream of messages per device.

The load generator drives many of these at once, so it keeps no asyncio state.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..protocol.codec import decode_frame, encode_packet
from ..protocol.framing import FrameDecoder
from ..protocol.messages import Body, ChatMessage, Packet

__all__ = ["ClientCore", "DeliveryCursor", "backoff_delay"]


class ClientCore:
    """Frames out with increasing ``seq``; frames in, decoded, per stream."""

    __slots__ = ("_decoders", "_max_frame_size", "_next_seq")

    def __init__(self, max_frame_size: int = 16 * 1024 * 1024) -> None:
        self._next_seq = 0
        self._decoders: dict[int, FrameDecoder] = {}
        self._max_frame_size = max_frame_size

    def request(self, body: Body, timestamp: int = 0) -> tuple[int, bytes]:
        """``(seq, frame)`` for a request; the reply will echo ``seq``."""
        self._next_seq += 1
        return self._next_seq, encode_packet(Packet(self._next_seq, body, timestamp))

    def receive(self, stream_id: int, data: bytes) -> list[Packet]:
        decoder = self._decoders.get(stream_id)
        if decoder is None:
            decoder = self._decoders[stream_id] = FrameDecoder(self._max_frame_size)
        return [decode_frame(frame) for frame in decoder.feed(data)]

    def reset_streams(self) -> None:
        self._decoders.clear()


@dataclass(slots=True)
class DeliveryCursor:
    """The highest inbox seq this device has handed to the application.

    A push with the next seq is delivered; an older one is a duplicate; a newer one
    means something was missed, so the caller runs a Sync from ``last_seq``.
    """

    last_seq: int = 0

    def offer(self, message: ChatMessage) -> str:
        """``"deliver"``, ``"duplicate"`` or ``"gap"`` for a pushed message."""
        if message.seq <= self.last_seq:
            return "duplicate"
        if message.seq == self.last_seq + 1:
            self.last_seq = message.seq
            return "deliver"
        return "gap"

    def take_page(self, messages: tuple[ChatMessage, ...]) -> list[ChatMessage]:
        """The messages of a Sync page that are new to this device, in order."""
        fresh = [m for m in messages if m.seq > self.last_seq]
        fresh.sort(key=lambda m: m.seq)
        if fresh:
            self.last_seq = fresh[-1].seq
        return fresh


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    ceiling = min(cap, base * (2 ** min(attempt, 30)))
    return (rng or random).uniform(0, ceiling)
