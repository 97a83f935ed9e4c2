"""Frame codec: ``length:u32 | msg_type:u16 | body``, big-endian, incremental decoding."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imaccess.protocol import (
    DEFAULT_MAX_FRAME_SIZE,
    Code,
    Frame,
    FrameDecoder,
    FrameTooLarge,
    MalformedFrame,
    encode_frame,
)
from imaccess.protocol.framing import HEADER_SIZE

FAST = settings(max_examples=200, deadline=None)

msg_types = st.integers(min_value=0, max_value=0xFFFF)
Case = tuple[list[tuple[int, bytes]], bytes, list[bytes]]
frame_lists = st.lists(st.tuples(msg_types, st.binary(max_size=300)), max_size=12)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points)]


@st.composite
def stream_and_chunks(draw: st.DrawFn) -> Case:
    frames = draw(frame_lists)
    stream = b"".join(encode_frame(t, body) for t, body in frames)
    cuts = draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=40))
    return frames, stream, _chunks(stream, cuts)


# ------------------------------------------------------------------ encoding


def test_header_is_big_endian_and_length_counts_bytes_after_itself() -> None:
    # length = 2 (msg_type) + 3 (body) = 5; msg_type 0x0102 big-endian.
    assert encode_frame(0x0102, b"abc") == b"\x00\x00\x00\x05\x01\x02abc"
    assert encode_frame(0, b"") == b"\x00\x00\x00\x02\x00\x00"
    assert encode_frame(0xFFFF, b"\x00" * 300) == b"\x00\x00\x01\x2e\xff\xff" + b"\x00" * 300


@FAST
@given(msg_type=msg_types, body=st.binary(max_size=500))
def test_length_field_is_two_plus_body(msg_type: int, body: bytes) -> None:
    frame = encode_frame(msg_type, body)
    length, header_type = struct.unpack(">IH", frame[:HEADER_SIZE])
    assert length == 2 + len(body) == len(frame) - 4
    assert header_type == msg_type
    assert frame[HEADER_SIZE:] == body


# ------------------------------------------------------------------ round trip


@FAST
@given(stream_and_chunks())
def test_round_trip_under_any_split(
    case: Case,
) -> None:
    frames, stream, chunks = case
    assert b"".join(chunks) == stream
    decoder = FrameDecoder()
    out: list[Frame] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    assert out == [Frame(t, body) for t, body in frames]
    assert all(isinstance(f.body, bytes) for f in out)
    assert decoder.buffered == 0


@FAST
@given(frame_lists)
def test_round_trip_one_byte_at_a_time(frames: list[tuple[int, bytes]]) -> None:
    stream = b"".join(encode_frame(t, body) for t, body in frames)
    decoder = FrameDecoder()
    out: list[Frame] = []
    for i in range(len(stream)):
        out.extend(decoder.feed(stream[i : i + 1]))
    assert out == [Frame(t, body) for t, body in frames]
    assert decoder.buffered == 0


@FAST
@given(frame_lists)
def test_round_trip_in_one_feed(frames: list[tuple[int, bytes]]) -> None:
    stream = b"".join(encode_frame(t, body) for t, body in frames)
    decoder = FrameDecoder()
    assert decoder.feed(stream) == [Frame(t, body) for t, body in frames]
    assert decoder.feed(b"") == []
    assert decoder.buffered == 0


@FAST
@given(stream_and_chunks())
def test_never_buffers_more_than_the_incomplete_next_frame(
    case: Case,
) -> None:
    frames, _stream, chunks = case
    sizes = [HEADER_SIZE + len(body) for _, body in frames]
    decoder = FrameDecoder()
    fed = consumed = returned = 0
    for chunk in chunks:
        got = decoder.feed(chunk)
        fed += len(chunk)
        consumed += sum(sizes[returned : returned + len(got)])
        returned += len(got)
        # Exactly the bytes of frames not yet returned are held ...
        assert decoder.buffered == fed - consumed
        # ... and they are strictly less than the next whole frame.
        if returned < len(frames):
            assert decoder.buffered < sizes[returned]
        else:
            assert decoder.buffered == 0


def test_partial_frame_is_held_until_complete() -> None:
    decoder = FrameDecoder()
    frame = encode_frame(7, b"hello")
    assert decoder.feed(frame[:3]) == []
    assert decoder.buffered == 3
    assert decoder.feed(frame[3:-1]) == []
    assert decoder.buffered == len(frame) - 1
    assert decoder.feed(frame[-1:] + encode_frame(8, b"x")[:5]) == [Frame(7, b"hello")]
    assert decoder.buffered == 5


# ------------------------------------------------------------------ limits


@pytest.mark.parametrize("max_size", [2, 3, 100, DEFAULT_MAX_FRAME_SIZE])
def test_frame_exactly_at_max_size_is_accepted(max_size: int) -> None:
    body = bytes(range(256)) * (max_size // 256 + 1)
    body = body[: max_size - 2]
    frame = encode_frame(42, body)
    assert struct.unpack(">I", frame[:4])[0] == max_size
    assert FrameDecoder(max_size).feed(frame) == [Frame(42, body)]
    decoder = FrameDecoder(max_size)
    out: list[Frame] = []
    for i in range(0, len(frame), 7):
        out.extend(decoder.feed(frame[i : i + 7]))
    assert out == [Frame(42, body)]


@pytest.mark.parametrize("max_size", [2, 100, DEFAULT_MAX_FRAME_SIZE])
def test_max_plus_one_rejected_on_the_fourth_length_byte(max_size: int) -> None:
    header = struct.pack(">I", max_size + 1)
    decoder = FrameDecoder(max_size)
    # Three length bytes are not enough to judge.
    assert decoder.feed(header[:3]) == []
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(header[3:])  # no msg_type, no body: rejected on the length alone
    assert info.value.code is Code.FRAME_TOO_LARGE


def test_default_max_rejects_huge_length_without_body() -> None:
    with pytest.raises(FrameTooLarge):
        FrameDecoder().feed(b"\xff\xff\xff\xff")
    with pytest.raises(FrameTooLarge):
        FrameDecoder().feed(struct.pack(">I", DEFAULT_MAX_FRAME_SIZE + 1))
    # One below is merely incomplete.
    decoder = FrameDecoder()
    assert decoder.feed(struct.pack(">I", DEFAULT_MAX_FRAME_SIZE)) == []
    assert decoder.buffered == 4


@FAST
@given(
    prefix=frame_lists,
    excess=st.integers(min_value=1, max_value=2**32 - 1 - 1000),
    trailing=st.binary(max_size=50),
    data=st.data(),
)
def test_oversized_header_rejected_as_soon_as_its_length_is_complete(
    prefix: list[tuple[int, bytes]], excess: int, trailing: bytes, data: st.DataObject
) -> None:
    max_size = 1000
    good = [(t, b[: max_size - 2]) for t, b in prefix]
    head = b"".join(encode_frame(t, b) for t, b in good)
    stream = head + struct.pack(">I", max_size + excess) + trailing
    last_length_byte = len(head) + 3
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
    decoder = FrameDecoder(max_size)
    position = 0
    out: list[Frame] = []
    for chunk in _chunks(stream, cuts):
        end = position + len(chunk)
        if position <= last_length_byte < end:
            with pytest.raises(FrameTooLarge):
                decoder.feed(chunk)
            break
        out.extend(decoder.feed(chunk))
        position = end
    else:
        pytest.fail("the oversized header was never rejected")
    # Every frame completed in an earlier feed came out intact.
    assert out == [Frame(t, b) for t, b in good[: len(out)]]


@pytest.mark.parametrize("length", [0, 1])
def test_length_below_two_is_malformed(length: int) -> None:
    decoder = FrameDecoder()
    header = struct.pack(">I", length)
    assert decoder.feed(header[:3]) == []
    with pytest.raises(MalformedFrame) as info:
        decoder.feed(header[3:])
    assert info.value.code is Code.MALFORMED_FRAME


@pytest.mark.parametrize("length", [0, 1])
def test_length_below_two_after_a_good_frame_is_malformed(length: int) -> None:
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(1, b"ok")) == [Frame(1, b"ok")]
    with pytest.raises(MalformedFrame):
        decoder.feed(struct.pack(">I", length) + b"\x00\x01")


def test_length_two_is_an_empty_body() -> None:
    assert FrameDecoder().feed(b"\x00\x00\x00\x02\x12\x34") == [Frame(0x1234, b"")]
