"""The protocol's exception tree.

    ProtocolError            the peer broke the wire contract; carries the close code
    ├── FrameTooLarge        a frame header announced more than the maximum
    ├── MalformedFrame       bad length, undecodable body, or header/body type mismatch
    └── StreamViolation      a frame on the wrong stream or in the wrong state

Each class names its :class:`~imaccess.protocol.codes.Code`; the connection turns any
``ProtocolError`` into an Error frame with that code followed by a close, in one place.
"""

from __future__ import annotations

from typing import Any

from .codes import Code

__all__ = ["FrameTooLarge", "MalformedFrame", "ProtocolError", "StreamViolation"]


class ProtocolError(Exception):
    code: Code = Code.PROTOCOL_ERROR

    def __init__(self, message: str, code: Code | None = None) -> None:
        super().__init__(message)
        self.frames_before: list[Any] = []
        """Frames a decoder completed before the violation (see FrameDecoder.feed)."""
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0])


class FrameTooLarge(ProtocolError):
    code = Code.FRAME_TOO_LARGE


class MalformedFrame(ProtocolError):
    code = Code.MALFORMED_FRAME


class StreamViolation(ProtocolError):
    code = Code.PROTOCOL_ERROR
