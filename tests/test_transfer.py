"""The upload stream parser (bytes in, events out) and the local blob store."""

from __future__ import annotations

import hashlib
import itertools
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imaccess.blobs import FileMeta, LocalBlobStore, new_file_id
from imaccess.protocol import Code, FileOffer, Heartbeat, Packet, encode_packet
from imaccess.protocol.transfer import (
    ContentReceived,
    OfferReceived,
    UploadComplete,
    UploadFailed,
    UploadReceiver,
)

CONTENT = bytes(range(256)) * 40  # 10 KiB
OFFER = FileOffer(
    msg_id="m-1",
    to_user=2,
    name="notes.txt",
    size=len(CONTENT),
    mime_type="text/plain",
    sha256=hashlib.sha256(CONTENT).digest(),
)
STREAM = encode_packet(Packet(9, OFFER)) + CONTENT


def _content(events: list) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, ContentReceived))


@settings(max_examples=100, deadline=None)
@given(cuts=st.lists(st.integers(0, len(STREAM)), max_size=12))
def test_any_split_of_the_stream_gives_the_offer_the_content_and_completion(
    cuts: list[int],
) -> None:
    receiver = UploadReceiver(max_size=1 << 20)
    bounds = [0, *sorted(cuts), len(STREAM)]
    events: list = []
    for start, end in itertools.pairwise(bounds):
        events += receiver.feed(STREAM[start:end], end_stream=end == len(STREAM))
    assert events[0] == OfferReceived(9, OFFER)
    assert _content(events) == CONTENT
    assert events[-1] == UploadComplete()
    assert receiver.done and receiver.seq == 9


def _failure(events: list) -> UploadFailed:
    assert isinstance(events[-1], UploadFailed), events
    return events[-1]


@pytest.mark.parametrize(
    ("stream", "code", "stop"),
    [
        (encode_packet(Packet(9, OFFER)) + CONTENT[:-1], Code.FILE_SIZE_MISMATCH, False),
        (encode_packet(Packet(9, OFFER)) + CONTENT + b"!", Code.FILE_SIZE_MISMATCH, True),
        (encode_packet(Packet(9, OFFER)) + CONTENT[::-1], Code.FILE_HASH_MISMATCH, False),
        (encode_packet(Packet(9, Heartbeat())) + CONTENT, Code.INVALID_OFFER, True),
        (b"\x00\x10\x00\x00" + b"\x00" * 100, Code.INVALID_OFFER, True),  # 1 MiB "offer"
        (encode_packet(Packet(9, OFFER))[:20], Code.INVALID_OFFER, False),  # ends inside it
    ],
    ids=["short", "long", "hash", "not-an-offer", "huge-first-frame", "truncated-offer"],
)
def test_a_bad_stream_fails_with_its_code(stream: bytes, code: Code, stop: bool) -> None:
    failure = _failure(UploadReceiver(max_size=1 << 20).feed(stream, end_stream=True))
    assert (failure.code, failure.stop_sending) == (code, stop)


@pytest.mark.parametrize(
    "offer",
    [
        FileOffer("m", 2, "../../etc/passwd", 10, "", b"\0" * 32),
        FileOffer("m", 2, "", 10, "", b"\0" * 32),
        FileOffer("m", 0, "a.txt", 10, "", b"\0" * 32),
        FileOffer("", 2, "a.txt", 10, "", b"\0" * 32),
        FileOffer("m", 2, "a.txt", 10, "", b"\0" * 31),
    ],
    ids=["path", "no-name", "no-recipient", "no-msg-id", "short-hash"],
)
def test_malformed_offers_are_refused_before_any_content(offer: FileOffer) -> None:
    receiver = UploadReceiver(max_size=1 << 20)
    failure = _failure(receiver.feed(encode_packet(Packet(4, offer)), end_stream=False))
    assert failure.code == Code.INVALID_OFFER and failure.stop_sending
    assert (receiver.seq, receiver.offer) == (4, offer)  # the FileAck echoes both
    assert receiver.feed(b"more", end_stream=True) == []


def test_an_offer_over_the_limit_is_refused_without_reading_on() -> None:
    failure = _failure(UploadReceiver(max_size=len(CONTENT) - 1).feed(STREAM, end_stream=False))
    assert failure.code == Code.FILE_TOO_LARGE and failure.stop_sending


def _meta(file_id: str, size: int) -> FileMeta:
    return FileMeta(file_id, "a.bin", size, "", "00" * 32, 1, (2,), time.time())


def test_the_blob_store_shows_a_file_only_once_committed(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    store.start()
    file_id = new_file_id()
    writer = store.create(file_id)
    writer.write(b"hello ")
    writer.write(b"world")
    assert store.meta(file_id) is None and store.partial_count() == 1
    committed = _meta(file_id, 11)
    writer.commit(committed)
    meta = store.meta(file_id)
    assert meta == committed
    assert meta.may_fetch(1) and meta.may_fetch(2) and not meta.may_fetch(3)
    with store.open(file_id) as content:
        content.seek(6)
        assert content.read() == b"world"
    assert store.partial_count() == 0
    store.delete(file_id)
    assert store.meta(file_id) is None


def test_an_aborted_write_and_a_restart_leave_nothing_behind(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    store.start()
    aborted = store.create(new_file_id())
    aborted.write(b"half")
    aborted.abort()
    assert store.partial_count() == 0
    crashed = store.create(new_file_id())
    crashed.write(b"left by a crash")
    LocalBlobStore(tmp_path).start()  # the next start sweeps it away
    assert store.partial_count() == 0
    crashed.abort()  # (closes the file this test still holds)


@pytest.mark.parametrize("file_id", ["../x", "A" * 32, "0" * 31, ""])
def test_ids_that_are_not_ours_are_unknown(tmp_path: Path, file_id: str) -> None:
    store = LocalBlobStore(tmp_path)
    store.start()
    assert store.meta(file_id) is None
    with pytest.raises(FileNotFoundError):
        store.open(file_id)
