"""Frame codec: ``length:u32 | msg_type:u16 | body``, big-endian.

``length`` counts the bytes after the length field (2 + len(body)), so a reader takes
four bytes, then exactly ``length`` more. The decoder is incremental and pure: feed it
whatever a stream delivered, take whole frames out. It never buffers more than one
frame's worth of bytes: a header announcing more than ``max_frame_size`` raises
:class:`FrameTooLarge` before any body byte is kept, so a peer cannot make us allocate.
A length below 2 cannot hold the type and raises :class:`MalformedFrame`.

After either error the stream is out of step (we no longer know where the next frame
starts); the caller answers with an Error frame and closes the connection.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from .errors import FrameTooLarge, MalformedFrame, ProtocolError

__all__ = ["DEFAULT_MAX_FRAME_SIZE", "HEADER_SIZE", "Frame", "FrameDecoder", "encode_frame"]

HEADER_SIZE = 6
#: Largest ``length`` value accepted by default (bytes after the length field).
DEFAULT_MAX_FRAME_SIZE = 64 * 1024
_HEADER = struct.Struct(">IH")
_LENGTH = struct.Struct(">I")
_TYPE = struct.Struct(">H")
_MAX_U32 = 0xFFFFFFFF


class Frame(NamedTuple):
    msg_type: int
    body: bytes


def encode_frame(msg_type: int, body: bytes) -> bytes:
    """One frame, ready for a stream."""
    length = 2 + len(body)
    if length > _MAX_U32:
        raise ValueError("frame body too large for a u32 length")
    return _HEADER.pack(length, msg_type) + body


class FrameDecoder:
    """Turns a byte stream into frames. One decoder per stream."""

    __slots__ = ("_buffer", "_max_frame_size")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self._buffer = bytearray()
        self._max_frame_size = max_frame_size

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes; return every frame they complete, in order.

        Raises FrameTooLarge or MalformedFrame on a bad header. The frames completed
        before the bad header in the same call ride on the exception as
        ``frames_before``, so the outcome does not depend on how the bytes were split
        into reads: those frames are handled, then the violation closes the connection.
        """
        buffer = self._buffer
        buffer += data
        frames: list[Frame] = []
        offset = 0
        available = len(buffer)
        while available - offset >= 4:
            (length,) = _LENGTH.unpack_from(buffer, offset)
            error: ProtocolError | None = None
            if length > self._max_frame_size:
                error = FrameTooLarge(
                    f"frame length {length} exceeds the maximum of {self._max_frame_size}"
                )
            elif length < 2:
                error = MalformedFrame(f"frame length {length} is below the minimum of 2")
            if error is not None:
                error.frames_before = frames
                raise error
            end = offset + 4 + length
            if end > available:
                break
            (msg_type,) = _TYPE.unpack_from(buffer, offset + 4)
            frames.append(Frame(msg_type, bytes(buffer[offset + HEADER_SIZE : end])))
            offset = end
        if offset:
            del buffer[:offset]
        return frames
