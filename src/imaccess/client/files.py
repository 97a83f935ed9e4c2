"""The client's half of file transfers (PROTOCOL.md "Files"), for the SDK.

Uploads stream a file from disk onto a unidirectional stream with at most
:data:`UPLOAD_WINDOW` bytes unacknowledged, so a 50 MB file costs the client a window of
memory and leaves room on the connection for chat. Downloads arrive on a stream the
server opens: a FileHeader frame, then raw content, written to disk as it comes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..protocol.codes import Code
from ..protocol.messages import CONTENT_TYPE_FILE, ChatMessage, FileHeader
from ..protocol.transfer import StreamHead

__all__ = [
    "DownloadStream",
    "DownloadTarget",
    "FileInfo",
    "Progress",
    "check_download",
    "file_info",
    "hash_file",
]

UPLOAD_WINDOW = 1024 * 1024
CHUNK = 64 * 1024

Progress = Callable[[int, int], None]
"""``(bytes done, bytes in all)``, called as a transfer moves."""


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What a file-announcing chat message says about the file."""

    file_id: str
    name: str
    size: int
    mime_type: str
    sha256: str


def file_info(message: ChatMessage) -> FileInfo | None:
    """The file a chat message announces, or None for any other message."""
    if message.content_type != CONTENT_TYPE_FILE:
        return None
    try:
        raw = json.loads(message.content)
        return FileInfo(
            str(raw["file_id"]),
            str(raw["name"]),
            int(raw["size"]),
            str(raw.get("mime_type", "")),
            str(raw.get("sha256", "")),
        )
    except (ValueError, KeyError, TypeError):
        return None


def _hash_file(path: Path) -> tuple[int, bytes]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as source:
        while chunk := source.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.digest()


async def hash_file(path: Path) -> tuple[int, bytes]:
    """``(size, sha256)`` of a file, computed off the event loop."""
    return await asyncio.to_thread(_hash_file, path)


@dataclass(slots=True)
class DownloadTarget:
    """Where a requested download goes, and who hears of its progress."""

    sink: BinaryIO
    progress: Progress | None
    done: asyncio.Future[FileHeader]
    """Resolves with the header when the stream has ended (the caller checks the file)."""


class DownloadStream:
    """One server-opened download stream. ``claim(seq, header)`` finds the request the
    header answers (None: nobody is waiting, so the stream is stopped)."""

    def __init__(self, claim: Callable[[int, FileHeader], DownloadTarget | None]) -> None:
        self._head: StreamHead | None = StreamHead()
        self._claim = claim
        self.target: DownloadTarget | None = None
        self.header: FileHeader | None = None
        self.received = 0

    def feed(self, data: bytes, end_stream: bool) -> bool:
        """Take what arrived; False when the stream is not wanted and should be stopped.
        Raises ProtocolError or ValueError on a stream that does not start with a header."""
        if self._head is not None:
            rest = self._head.feed(data)
            if rest is None:
                return True
            packet = self._head.packet
            assert packet is not None
            if not isinstance(packet.body, FileHeader):
                raise ValueError("a download stream starts with a FileHeader")
            self._head = None
            self.header = packet.body
            self.target = self._claim(packet.seq, packet.body)
            if self.target is None:
                return False
            data = rest
        target, header = self.target, self.header
        assert target is not None and header is not None
        if data:
            target.sink.write(data)
            self.received += len(data)
            if target.progress is not None:
                target.progress(header.offset + self.received, header.size)
        if end_stream and not target.done.done():
            target.done.set_result(header)
        return True

    def abandon(self, reason: BaseException) -> None:
        """The stream was reset or the connection lost before the end."""
        if self.target is not None and not self.target.done.done():
            self.target.done.set_exception(reason)


def check_download(path: Path, header: FileHeader) -> Code:
    """OK if the file on disk is the whole file the header described."""
    size, digest = _hash_file(path)
    if size != header.size:
        return Code.FILE_SIZE_MISMATCH
    if digest != header.sha256:
        return Code.FILE_HASH_MISMATCH
    return Code.OK
