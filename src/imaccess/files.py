"""File transfers on a node: uploads into the blob store, downloads out of it.

PROTOCOL.md "Files". Each transfer has its own unidirectional stream, so a large file
shares the connection's congestion window with chat but never blocks a chat frame behind
it. The pure half of an upload (offer, size, hash) is
:class:`~imaccess.protocol.transfer.UploadReceiver`; this module does the I/O: blob
writes, the announcing chat message, the FileAck, stall timers, and download pumps that
keep at most ``files.send_window`` bytes unacknowledged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from .blobs import BlobStore, BlobWriter, FileMeta, new_file_id
from .bus import UpstreamAck
from .connection import Connection, FileStreams
from .metrics import NodeMetrics
from .protocol.codec import encode_packet
from .protocol.codes import Code
from .protocol.messages import CONTENT_TYPE_FILE, FileAck, FileHeader, FileRequest, Packet
from .protocol.transfer import (
    ContentReceived,
    OfferReceived,
    UploadComplete,
    UploadFailed,
    UploadReceiver,
)
from .settings import FilesSettings

__all__ = ["Announce", "FileTransfers", "Spawn", "file_content"]

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
"""Bytes read from the blob store per download write."""

Announce = Callable[[Connection, str, int, str, int], Awaitable[UpstreamAck]]
"""``(conn, msg_id, to_user, content, content_type)``: publish a chat message upstream as
the connection's user; raises when the bus refuses it."""
Spawn = Callable[[Connection, Coroutine[Any, Any, None]], "asyncio.Task[None]"]
"""Run work as a task of the connection, cancelled when it goes away."""


def file_content(meta: FileMeta) -> str:
    """The content of the chat message that announces a file."""
    return json.dumps(
        {
            "file_id": meta.file_id,
            "name": meta.name,
            "size": meta.size,
            "mime_type": meta.mime_type,
            "sha256": meta.sha256,
        },
        separators=(",", ":"),
    )


@dataclass(slots=True)
class _Upload:
    receiver: UploadReceiver
    last_activity: float
    file_id: str = ""
    writer: BlobWriter | None = None
    timer: asyncio.TimerHandle | None = None
    over_limit: bool = False


@dataclass(slots=True)
class _Transfers:
    """One connection's transfers; a stream id is in exactly one of the two maps."""

    uploads: dict[int, _Upload] = field(default_factory=dict)
    downloads: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    refused: set[int] = field(default_factory=set)
    """Upload streams told to stop: what still arrives on them is dropped unanswered."""

    def __len__(self) -> int:
        """Transfers running (an upload refused for being over the limit is not one)."""
        running = sum(1 for upload in self.uploads.values() if not upload.over_limit)
        return running + len(self.downloads)


class FileTransfers:
    def __init__(
        self,
        settings: FilesSettings,
        store: BlobStore,
        announce: Announce,
        spawn: Spawn,
        metrics: NodeMetrics,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._settings = settings
        self._store = store
        self._announce = announce
        self._spawn = spawn
        self._metrics = metrics
        self._loop = loop
        self._by_conn: dict[int, _Transfers] = {}

    # ------------------------------------------------------------------ uploads

    def upload_data(self, conn: Connection, stream_id: int, data: bytes, end_stream: bool) -> None:
        streams = conn.transport.file_streams
        if streams is None:
            return
        if conn.login is None or conn.closed:
            streams.stop(stream_id, int(Code.PROTOCOL_ERROR))
            return
        transfers = self._of(conn)
        if stream_id in transfers.refused:
            if end_stream:
                transfers.refused.discard(stream_id)
            return
        upload = transfers.uploads.get(stream_id)
        if upload is None:
            # one over the limit is refused once its offer is read, so the FileAck can
            # echo the offer's seq (the offer is small: QUIC stream limits bound these)
            over_limit = len(transfers) >= self._settings.max_transfers
            upload = _Upload(UploadReceiver(self._settings.max_size), self._loop.time())
            upload.over_limit = over_limit
            transfers.uploads[stream_id] = upload
            self._arm_stall_timer(conn, stream_id, upload)
        upload.last_activity = self._loop.time()
        for event in upload.receiver.feed(data, end_stream):
            match event:
                case OfferReceived() if upload.over_limit:
                    refusal = UploadFailed(Code.TOO_MANY_TRANSFERS, "too many transfers", True)
                    self._fail(conn, stream_id, refusal)
                    return
                case OfferReceived():
                    upload.file_id = new_file_id()
                    try:
                        upload.writer = self._store.create(upload.file_id)
                    except OSError:
                        log.exception("blob store unavailable", extra={"conn_id": conn.conn_id})
                        self._fail(conn, stream_id, UploadFailed(Code.UNAVAILABLE, "", True))
                        return
                case ContentReceived(chunk):
                    assert upload.writer is not None
                    try:
                        upload.writer.write(chunk)
                    except OSError:
                        log.exception("blob write failed", extra={"conn_id": conn.conn_id})
                        self._fail(conn, stream_id, UploadFailed(Code.UNAVAILABLE, "", True))
                        return
                case UploadComplete():
                    self._forget_upload(transfers, stream_id)
                    self._spawn(conn, self._complete(conn, upload))
                case UploadFailed():
                    self._fail(conn, stream_id, event)

    def stream_aborted(self, conn: Connection, stream_id: int) -> None:
        """The client reset an upload, or asked to stop a download."""
        transfers = self._by_conn.get(conn.conn_id)
        if transfers is None:
            return
        transfers.refused.discard(stream_id)
        upload = self._forget_upload(transfers, stream_id)
        if upload is not None:
            if upload.writer is not None:
                upload.writer.abort()
            self._metrics.file_transfer("upload", "aborted")
            return
        download = transfers.downloads.pop(stream_id, None)
        if download is not None:
            download.cancel()

    def connection_closed(self, conn: Connection) -> None:
        transfers = self._by_conn.pop(conn.conn_id, None)
        if transfers is None:
            return
        for upload in transfers.uploads.values():
            if upload.timer is not None:
                upload.timer.cancel()
            if upload.writer is not None:
                upload.writer.abort()
        for download in transfers.downloads.values():
            download.cancel()

    async def _complete(self, conn: Connection, upload: _Upload) -> None:
        offer = upload.receiver.offer
        assert offer is not None and upload.writer is not None
        meta = FileMeta(
            file_id=upload.file_id,
            name=offer.name,
            size=offer.size,
            mime_type=offer.mime_type,
            sha256=offer.sha256.hex(),
            owner=conn.user_id,
            recipients=(offer.to_user,),
            created_at=time.time(),
        )
        seq = upload.receiver.seq
        try:
            upload.writer.commit(meta)
            ack = await self._announce(
                conn, offer.msg_id, offer.to_user, file_content(meta), CONTENT_TYPE_FILE
            )
        except BaseException as exc:  # unannounced (or the connection went): keep nothing
            upload.writer.abort()
            self._store.delete(meta.file_id)
            self._metrics.file_transfer("upload", "failed")
            if not isinstance(exc, Exception):
                raise
            log.exception("file not announced", extra={"conn_id": conn.conn_id})
            self._reply(conn, seq, FileAck(int(Code.UNAVAILABLE), "try again", msg_id=offer.msg_id))
            return
        self._metrics.file_transfer("upload", "ok", meta.size)
        self._reply(
            conn,
            seq,
            FileAck(
                int(Code.OK),
                "ok",
                file_id=meta.file_id,
                msg_id=offer.msg_id,
                server_seq=ack.server_seq,
                timestamp=ack.timestamp,
            ),
        )

    def _fail(self, conn: Connection, stream_id: int, failure: UploadFailed) -> None:
        transfers = self._of(conn)
        upload = self._forget_upload(transfers, stream_id)
        if upload is None:
            return
        if upload.writer is not None:
            upload.writer.abort()
        streams = conn.transport.file_streams
        if failure.stop_sending and streams is not None:
            streams.stop(stream_id, int(failure.code))
            transfers.refused.add(stream_id)
        self._metrics.file_transfer("upload", "refused")
        offer = upload.receiver.offer
        self._reply(
            conn,
            upload.receiver.seq,
            FileAck(int(failure.code), failure.reason, msg_id=offer.msg_id if offer else ""),
        )

    def _arm_stall_timer(self, conn: Connection, stream_id: int, upload: _Upload) -> None:
        timeout = self._settings.stall_timeout

        def check() -> None:
            idle = self._loop.time() - upload.last_activity
            if idle >= timeout:
                upload.timer = None
                self._fail(
                    conn,
                    stream_id,
                    UploadFailed(Code.TRANSFER_STALLED, f"no bytes for {timeout:g} s", True),
                )
            else:
                upload.timer = self._loop.call_later(timeout - idle, check)

        upload.timer = self._loop.call_later(timeout, check)

    def _forget_upload(self, transfers: _Transfers, stream_id: int) -> _Upload | None:
        upload = transfers.uploads.pop(stream_id, None)
        if upload is not None and upload.timer is not None:
            upload.timer.cancel()
            upload.timer = None
        return upload

    # ---------------------------------------------------------------- downloads

    def request(self, conn: Connection, stream_id: int, seq: int, request: FileRequest) -> None:
        """A FileRequest arrived on ``stream_id``; refusals are answered there."""

        def refuse(code: Code, message: str) -> None:
            self._metrics.file_transfer("download", "refused")
            conn.reply(stream_id, seq, FileHeader(int(code), message, file_id=request.file_id))

        streams = conn.transport.file_streams
        if streams is None:
            refuse(Code.NOT_SUPPORTED_ON_TRANSPORT, "files need QUIC or WebTransport streams")
            return
        meta = self._store.meta(request.file_id)
        if meta is None or not meta.may_fetch(conn.user_id):
            refuse(Code.FILE_NOT_FOUND, "no such file")
            return
        if request.offset > meta.size:
            refuse(Code.INVALID_MESSAGE, f"offset past the end ({meta.size} bytes)")
            return
        transfers = self._of(conn)
        if len(transfers) >= self._settings.max_transfers:
            refuse(Code.TOO_MANY_TRANSFERS, "too many transfers")
            return
        stream = streams.open_stream()
        task = self._spawn(conn, self._send(streams, stream, seq, meta, request.offset))
        transfers.downloads[stream] = task
        task.add_done_callback(lambda _: transfers.downloads.pop(stream, None))

    async def _send(
        self, streams: FileStreams, stream: int, seq: int, meta: FileMeta, offset: int
    ) -> None:
        header = FileHeader(
            int(Code.OK),
            "ok",
            file_id=meta.file_id,
            name=meta.name,
            size=meta.size,
            mime_type=meta.mime_type,
            sha256=bytes.fromhex(meta.sha256),
            offset=offset,
        )
        window = self._settings.send_window
        try:
            with self._store.open(meta.file_id) as content:
                content.seek(offset)
                streams.write(stream, encode_packet(Packet(seq, header)))
                while chunk := content.read(CHUNK):
                    streams.write(stream, chunk)
                    streams.transmit()
                    while streams.backlog(stream) > window:
                        await streams.acked()
                streams.write(stream, b"", end_stream=True)
                streams.transmit()
        except asyncio.CancelledError:
            streams.reset(stream, int(Code.OK))
            self._metrics.file_transfer("download", "aborted")
            raise
        except OSError:
            log.exception("blob read failed", extra={"file_id": meta.file_id})
            streams.reset(stream, int(Code.UNAVAILABLE))
            self._metrics.file_transfer("download", "failed")
            return
        self._metrics.file_transfer("download", "ok", meta.size - offset)

    # ------------------------------------------------------------------ helpers

    def _of(self, conn: Connection) -> _Transfers:
        transfers = self._by_conn.get(conn.conn_id)
        if transfers is None:
            transfers = self._by_conn[conn.conn_id] = _Transfers()
        return transfers

    def _reply(self, conn: Connection, seq: int, ack: FileAck) -> None:
        control = conn.session.control_stream
        if control is not None:
            conn.reply(control, seq, ack)
