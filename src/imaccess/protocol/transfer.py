"""An upload stream, free of I/O: the FileOffer frame, then the content up to FIN.

PROTOCOL.md "Files": a client unidirectional stream starts with one FileOffer frame; the
bytes after it, up to the end of the stream, are the file's content. The receiver checks
the offer, counts and hashes the content as it passes, and says at the end whether it is
exactly the offered file. The caller stores each chunk it is handed and keeps it only on
:class:`UploadComplete`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .codec import decode_frame
from .codes import Code
from .errors import MalformedFrame, ProtocolError
from .framing import HEADER_SIZE, Frame
from .messages import FileOffer, Packet

__all__ = [
    "ContentReceived",
    "OfferReceived",
    "StreamHead",
    "UploadComplete",
    "UploadEvent",
    "UploadFailed",
    "UploadReceiver",
    "check_offer",
]

MAX_OFFER_FRAME = 16 * 1024
"""An offer is a few names and a hash; a larger first frame is not an offer."""
MAX_NAME = 255


@dataclass(frozen=True, slots=True)
class OfferReceived:
    seq: int
    offer: FileOffer


@dataclass(frozen=True, slots=True)
class ContentReceived:
    data: bytes


@dataclass(frozen=True, slots=True)
class UploadComplete:
    """Exactly ``offer.size`` bytes arrived and their SHA-256 is the offered one."""


@dataclass(frozen=True, slots=True)
class UploadFailed:
    code: Code
    reason: str
    stop_sending: bool
    """True when the client may still be sending: tell it to stop."""


UploadEvent = OfferReceived | ContentReceived | UploadComplete | UploadFailed


def check_offer(offer: FileOffer, max_size: int) -> UploadFailed | None:
    """Why ``offer`` is refused, if it is."""
    name = offer.name
    if (
        not offer.msg_id
        or len(offer.msg_id) > 128
        or offer.to_user <= 0
        or len(offer.sha256) != 32
        or not name
        or len(name.encode()) > MAX_NAME
        or "/" in name
        or "\\" in name
        or "\0" in name
        or name in (".", "..")
        or len(offer.mime_type) > 255
    ):
        return UploadFailed(Code.INVALID_OFFER, "the offer is incomplete or malformed", True)
    if offer.size > max_size:
        return UploadFailed(Code.FILE_TOO_LARGE, f"files are at most {max_size} bytes", True)
    return None


class StreamHead:
    """The one frame that opens a file stream (FileOffer up, FileHeader down); the bytes
    after it are raw content."""

    __slots__ = ("_buffer", "_max_size", "packet")

    def __init__(self, max_size: int = MAX_OFFER_FRAME) -> None:
        self._buffer = bytearray()
        self._max_size = max_size
        self.packet: Packet | None = None

    def feed(self, data: bytes) -> bytes | None:
        """None until the frame is complete; then the bytes that followed it in ``data``.
        Raises a ProtocolError when the stream does not start with a decodable frame."""
        buffer = self._buffer
        buffer += data
        if len(buffer) < HEADER_SIZE:
            return None
        end = 4 + int.from_bytes(buffer[:4], "big")
        if end > 4 + self._max_size or end < HEADER_SIZE:
            raise MalformedFrame("a file stream starts with one small frame")
        if len(buffer) < end:
            return None
        self.packet = decode_frame(Frame(int.from_bytes(buffer[4:6], "big"), bytes(buffer[6:end])))
        rest = bytes(buffer[end:])
        self._buffer = bytearray()
        return rest


class UploadReceiver:
    __slots__ = ("_digest", "_done", "_head", "_max_size", "offer", "received", "seq")

    def __init__(self, max_size: int) -> None:
        self._max_size = max_size
        self._head: StreamHead | None = StreamHead()
        """Reads the offer frame; None once it has been read."""
        self._digest = hashlib.sha256()
        self._done = False
        self.offer: FileOffer | None = None
        self.seq = 0
        self.received = 0

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, data: bytes, end_stream: bool) -> list[UploadEvent]:
        """Bytes that arrived on the stream, and whether the stream ended with them."""
        if self._done:
            return []
        events: list[UploadEvent] = []
        if self._head is not None:
            data = self._read_offer(data, events)
            if self._done:
                return events
            if self._head is not None:  # the offer frame is not complete yet
                if end_stream:
                    events.append(self._fail(Code.INVALID_OFFER, "stream ended before the offer"))
                return events
        if data:
            self.received += len(data)
            assert self.offer is not None
            if self.received > self.offer.size:
                events.append(
                    self._fail(Code.FILE_SIZE_MISMATCH, "more bytes than offered", stop=True)
                )
                return events
            self._digest.update(data)
            events.append(ContentReceived(data))
        if end_stream:
            events.append(self._finish())
        return events

    def _read_offer(self, data: bytes, events: list[UploadEvent]) -> bytes:
        assert self._head is not None
        try:
            rest = self._head.feed(data)
        except ProtocolError as exc:
            events.append(self._fail(Code.INVALID_OFFER, f"not an offer: {exc.message}", True))
            return b""
        packet = self._head.packet
        if rest is None or packet is None:
            return b""
        self._head = None
        if not isinstance(packet.body, FileOffer):
            events.append(
                self._fail(Code.INVALID_OFFER, "an upload stream starts with a FileOffer", True)
            )
            return b""
        self.seq, self.offer = packet.seq, packet.body  # a refusal echoes them too
        refusal = check_offer(packet.body, self._max_size)
        if refusal is not None:
            self._done = True
            events.append(refusal)
            return b""
        events.append(OfferReceived(packet.seq, packet.body))
        return rest

    def _finish(self) -> UploadEvent:
        assert self.offer is not None
        if self.received != self.offer.size:
            return self._fail(
                Code.FILE_SIZE_MISMATCH,
                f"the stream ended after {self.received} of {self.offer.size} bytes",
            )
        if self._digest.digest() != self.offer.sha256:
            return self._fail(
                Code.FILE_HASH_MISMATCH, "the content's SHA-256 is not the offered one"
            )
        self._done = True
        return UploadComplete()

    def _fail(self, code: Code, reason: str, stop: bool = False) -> UploadFailed:
        self._done = True
        return UploadFailed(code, reason, stop)
