"""Where uploaded files live: a small interface and a local-directory store.

Uploads are written as they arrive under a temporary name and renamed into place only
after the size and hash checks pass, so a partial or corrupt upload is never visible and
a crash leaves nothing that :meth:`LocalBlobStore.start` does not sweep away. A
file is two entries: its content and a small JSON of metadata (who may fetch it), and it
exists once the metadata does.

Writes are plain blocking file calls on the event loop: chunks are at most a QUIC
packet's worth of stream data and land in the page cache, which costs microseconds. A
store on slow or remote storage would implement :class:`BlobStore` with a thread pool.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

__all__ = ["BlobStore", "BlobWriter", "FileMeta", "LocalBlobStore", "new_file_id"]

_FILE_ID = re.compile(r"[0-9a-f]{32}")


def new_file_id() -> str:
    """Unguessable, and safe as a file name."""
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class FileMeta:
    file_id: str
    name: str
    size: int
    mime_type: str
    sha256: str
    """Hex digest of the content."""
    owner: int
    recipients: tuple[int, ...]
    created_at: float

    def may_fetch(self, user_id: int) -> bool:
        return user_id == self.owner or user_id in self.recipients


class BlobWriter(Protocol):
    def write(self, data: bytes) -> None: ...

    def commit(self, meta: FileMeta) -> None:
        """Make the file visible under ``meta.file_id``."""
        ...

    def abort(self) -> None:
        """Forget what was written; safe to call more than once, or after commit."""
        ...


class BlobStore(Protocol):
    def start(self) -> None:
        """Called once as the node starts, before any other call."""
        ...

    def create(self, file_id: str) -> BlobWriter: ...

    def meta(self, file_id: str) -> FileMeta | None:
        """The metadata of a stored file; None for unknown or malformed ids."""
        ...

    def open(self, file_id: str) -> BinaryIO:
        """The content of a stored file, for reading from any offset."""
        ...

    def delete(self, file_id: str) -> None: ...


class _LocalWriter:
    __slots__ = ("_committed", "_file", "_final", "_meta_path", "_partial")

    def __init__(self, partial: Path, final: Path, meta_path: Path) -> None:
        self._partial = partial
        self._final = final
        self._meta_path = meta_path
        self._file: BinaryIO | None = open(partial, "wb")  # noqa: SIM115 - closed in commit/abort
        self._committed = False

    def write(self, data: bytes) -> None:
        assert self._file is not None, "write after commit or abort"
        self._file.write(data)

    def commit(self, meta: FileMeta) -> None:
        assert self._file is not None
        self._file.close()
        self._file = None
        self._final.parent.mkdir(exist_ok=True)
        os.replace(self._partial, self._final)
        staged = self._partial.with_suffix(".json")
        staged.write_text(json.dumps(asdict(meta)))
        os.replace(staged, self._meta_path)  # the file exists from here on
        self._committed = True

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if not self._committed:
            self._partial.unlink(missing_ok=True)


class LocalBlobStore:
    """Files under one directory: ``ab/<file_id>`` and ``ab/<file_id>.json``."""

    def __init__(self, directory: str | Path) -> None:
        self._root = Path(directory)
        self._partial = self._root / ".partial"

    def start(self) -> None:
        """Create the directories and sweep away uploads a crash left half-written."""
        shutil.rmtree(self._partial, ignore_errors=True)
        self._partial.mkdir(parents=True, exist_ok=True)

    def create(self, file_id: str) -> BlobWriter:
        final = self._content_path(file_id)
        return _LocalWriter(self._partial / file_id, final, final.with_name(f"{file_id}.json"))

    def meta(self, file_id: str) -> FileMeta | None:
        if not _FILE_ID.fullmatch(file_id):
            return None
        try:
            raw = json.loads(self._content_path(file_id).with_name(f"{file_id}.json").read_text())
        except FileNotFoundError:
            return None
        raw["recipients"] = tuple(raw["recipients"])
        return FileMeta(**raw)

    def open(self, file_id: str) -> BinaryIO:
        if not _FILE_ID.fullmatch(file_id):
            raise FileNotFoundError(file_id)
        return open(self._content_path(file_id), "rb")

    def delete(self, file_id: str) -> None:
        if _FILE_ID.fullmatch(file_id):
            content = self._content_path(file_id)
            content.with_name(f"{file_id}.json").unlink(missing_ok=True)  # invisible first
            content.unlink(missing_ok=True)

    def partial_count(self) -> int:
        """Uploads in progress (or left behind): what tests check is zero after a failure."""
        return sum(1 for _ in self._partial.iterdir())

    def _content_path(self, file_id: str) -> Path:
        return self._root / file_id[:2] / file_id
