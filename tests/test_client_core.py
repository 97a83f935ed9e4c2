"""ClientCore (request numbering, per-stream decoding), DeliveryCursor and backoff_delay."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imaccess.client.core import ClientCore, DeliveryCursor, backoff_delay
from imaccess.protocol import (
    Body,
    ChatMessage,
    Delivery,
    FrameDecoder,
    FrameTooLarge,
    Heartbeat,
    MessageAck,
    Packet,
    SyncRequest,
    SyncResponse,
    decode_frame,
    encode_packet,
)


def decode_all(data: bytes) -> list[Packet]:
    return [decode_frame(f) for f in FrameDecoder(1 << 20).feed(data)]


def chat(seq: int, msg_id: str | None = None, **kw: object) -> ChatMessage:
    return ChatMessage(msg_id=msg_id or f"m{seq}", seq=seq, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------ ClientCore


def test_request_seq_starts_at_one_and_increments() -> None:
    core = ClientCore()
    seqs = [core.request(Heartbeat())[0] for _ in range(5)]
    assert seqs == [1, 2, 3, 4, 5]


def test_separate_cores_number_independently() -> None:
    a, b = ClientCore(), ClientCore()
    a.request(Heartbeat())
    a.request(Heartbeat())
    assert b.request(Heartbeat())[0] == 1
    assert a.request(Heartbeat())[0] == 3


@pytest.mark.parametrize(
    "body",
    [
        Heartbeat(),
        SyncRequest(since_seq=42, limit=10),
        ChatMessage(msg_id="abc", to_user=7, content="héllo", content_type=3),
        MessageAck(msg_id="abc", code=0, server_seq=9, timestamp=1234, duplicate=True),
    ],
)
def test_request_frame_decodes_back(body: Body) -> None:
    core = ClientCore()
    core.request(Heartbeat())
    seq, frame = core.request(body, timestamp=1_700_000_000_000)
    assert seq == 2
    assert decode_all(frame) == [Packet(2, body, 1_700_000_000_000)]


def test_receive_whole_frames() -> None:
    core = ClientCore()
    p1 = Packet(1, chat(1, content="a"), 10)
    p2 = Packet(2, SyncResponse(messages=(chat(2),), max_seq=2), 11)
    assert core.receive(0, encode_packet(p1) + encode_packet(p2)) == [p1, p2]


def test_receive_byte_by_byte() -> None:
    core = ClientCore()
    packet = Packet(5, chat(3, content="x" * 50, from_user=1, to_user=2), 99)
    data = encode_packet(packet)
    out: list[Packet] = []
    for i in range(len(data)):
        got = core.receive(4, data[i : i + 1])
        if i < len(data) - 1:
            assert got == []
        out += got
    assert out == [packet]


def test_receive_keeps_a_decoder_per_stream() -> None:
    core = ClientCore()
    a = encode_packet(Packet(1, chat(1, content="on stream 0"), 0))
    b = encode_packet(Packet(2, chat(2, content="on stream 4"), 0))
    half_a, half_b = len(a) // 2, len(b) // 2
    assert core.receive(0, a[:half_a]) == []
    assert core.receive(4, b[:half_b]) == []
    assert core.receive(4, b[half_b:]) == [decode_all(b)[0]]
    assert core.receive(0, a[half_a:]) == [decode_all(a)[0]]


def test_reset_streams_drops_partial_frames() -> None:
    core = ClientCore()
    a = encode_packet(Packet(1, chat(1), 0))
    core.receive(0, a[:5])
    core.reset_streams()
    assert core.receive(0, a) == [decode_all(a)[0]]


def test_receive_enforces_the_frame_size_limit() -> None:
    core = ClientCore(max_frame_size=64)
    big = encode_packet(Packet(1, chat(1, content="y" * 200), 0))
    with pytest.raises(FrameTooLarge):
        core.receive(0, big)


_text = st.text(max_size=20)
_chats = st.builds(
    ChatMessage,
    msg_id=st.text(min_size=1, max_size=16),
    from_user=st.integers(0, 2**40),
    to_user=st.integers(0, 2**40),
    content=_text,
    content_type=st.integers(0, 100),
    timestamp=st.integers(0, 2**50),
    seq=st.integers(0, 2**40),
    delivery=st.sampled_from(list(Delivery)),
)


@settings(max_examples=100, deadline=None)
@given(
    items=st.lists(st.tuples(st.sampled_from([0, 4, 8]), _chats), max_size=12),
    data=st.data(),
)
def test_property_interleaved_split_streams_decode_in_order(
    items: list[tuple[int, ChatMessage]], data: st.DataObject
) -> None:
    sender = ClientCore()
    per_stream: dict[int, bytearray] = {}
    expected: dict[int, list[Packet]] = {}
    for stream, body in items:
        seq, frame = sender.request(body, timestamp=seq_ts(stream))
        per_stream.setdefault(stream, bytearray()).extend(frame)
        expected.setdefault(stream, []).append(Packet(seq, body, seq_ts(stream)))
    # cut every stream into chunks, then interleave the chunks across streams
    chunks: dict[int, list[bytes]] = {}
    for stream, buf in per_stream.items():
        cuts = sorted(
            data.draw(st.lists(st.integers(0, len(buf)), max_size=6), label=f"cuts {stream}")
        )
        bounds = [0, *cuts, len(buf)]
        chunks[stream] = [bytes(buf[a:b]) for a, b in itertools.pairwise(bounds)]
    receiver = ClientCore()
    got: dict[int, list[Packet]] = {s: [] for s in chunks}
    while any(chunks.values()):
        stream = data.draw(st.sampled_from(sorted(s for s, c in chunks.items() if c)))
        got[stream] += receiver.receive(stream, chunks[stream].pop(0))
    assert got == expected


def seq_ts(stream: int) -> int:
    return 1_000 + stream


# --------------------------------------------------------------- DeliveryCursor


def test_offer_delivers_the_next_seq() -> None:
    cursor = DeliveryCursor()
    assert cursor.offer(chat(1)) == "deliver"
    assert cursor.last_seq == 1
    assert cursor.offer(chat(2)) == "deliver"
    assert cursor.last_seq == 2


def test_offer_older_or_same_is_a_duplicate() -> None:
    cursor = DeliveryCursor(last_seq=5)
    assert cursor.offer(chat(5)) == "duplicate"
    assert cursor.offer(chat(1)) == "duplicate"
    assert cursor.last_seq == 5


def test_offer_beyond_the_next_is_a_gap_and_does_not_advance() -> None:
    cursor = DeliveryCursor(last_seq=5)
    assert cursor.offer(chat(7)) == "gap"
    assert cursor.last_seq == 5
    assert cursor.offer(chat(6)) == "deliver"
    assert cursor.offer(chat(7)) == "deliver"
    assert cursor.last_seq == 7


def test_take_page_sorts_and_filters_what_is_new() -> None:
    cursor = DeliveryCursor(last_seq=3)
    page = (chat(6), chat(2), chat(4), chat(3), chat(5))
    assert [m.seq for m in cursor.take_page(page)] == [4, 5, 6]
    assert cursor.last_seq == 6


def test_take_page_with_nothing_new_keeps_the_cursor() -> None:
    cursor = DeliveryCursor(last_seq=10)
    assert cursor.take_page((chat(9), chat(10))) == []
    assert cursor.take_page(()) == []
    assert cursor.last_seq == 10


def test_take_page_then_offer_continues_from_the_page() -> None:
    cursor = DeliveryCursor()
    cursor.take_page((chat(1), chat(2), chat(3)))
    assert cursor.offer(chat(3)) == "duplicate"
    assert cursor.offer(chat(4)) == "deliver"


def test_take_page_accepts_a_page_that_starts_past_the_cursor() -> None:
    # an inbox that dropped its oldest messages answers from what it still has
    cursor = DeliveryCursor(last_seq=2)
    assert [m.seq for m in cursor.take_page((chat(8), chat(9)))] == [8, 9]
    assert cursor.last_seq == 9


@settings(max_examples=100, deadline=None)
@given(start=st.integers(0, 50), seqs=st.lists(st.integers(0, 100), max_size=30))
def test_property_offer_delivers_each_seq_once_in_order(start: int, seqs: list[int]) -> None:
    cursor = DeliveryCursor(last_seq=start)
    delivered = []
    for s in seqs:
        before = cursor.last_seq
        verdict = cursor.offer(chat(s))
        assert verdict == ("duplicate" if s <= before else "deliver" if s == before + 1 else "gap")
        if verdict == "deliver":
            delivered.append(s)
    assert delivered == list(range(start + 1, start + 1 + len(delivered)))


# ---------------------------------------------------------------- backoff_delay


class UpperBound(random.Random):
    """A Random whose uniform() returns the top of its range: exposes the ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


def ceiling(attempt: int, base: float, cap: float) -> float:
    return backoff_delay(attempt, base, cap, UpperBound())


@pytest.mark.parametrize("attempt", range(12))
def test_backoff_within_full_jitter_range(attempt: int) -> None:
    base, cap = 0.5, 30.0
    rng = random.Random(1234 + attempt)
    bound = min(cap, base * 2**attempt)
    delays = [backoff_delay(attempt, base, cap, rng) for _ in range(200)]
    assert all(0 <= d <= bound for d in delays)
    # full jitter: the draws spread over the range rather than clustering at one end
    assert min(delays) < bound * 0.25
    assert max(delays) > bound * 0.75


def test_backoff_is_reproducible_with_a_seeded_rng() -> None:
    a = [backoff_delay(i, 0.1, 10.0, random.Random(7)) for i in range(8)]
    b = [backoff_delay(i, 0.1, 10.0, random.Random(7)) for i in range(8)]
    assert a == b


def test_backoff_ceiling_doubles_until_the_cap() -> None:
    base, cap = 0.25, 10.0
    ceilings = [ceiling(a, base, cap) for a in range(10)]
    assert ceilings == [min(cap, base * 2**a) for a in range(10)]
    assert ceilings[:6] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
    assert all(c == cap for c in ceilings[6:])
    assert all(x <= y for x, y in itertools.pairwise(ceilings))


def test_backoff_handles_huge_attempts_without_overflow() -> None:
    assert ceiling(10_000, 0.5, 60.0) == 60.0
    assert 0 <= backoff_delay(10_000, 0.5, 60.0, random.Random(1)) <= 60.0


@settings(max_examples=100, deadline=None)
@given(
    attempt=st.integers(0, 40),
    base=st.floats(0.001, 5.0),
    cap=st.floats(0.001, 120.0),
    seed=st.integers(0, 2**32),
)
def test_property_backoff_bounds(attempt: int, base: float, cap: float, seed: int) -> None:
    delay = backoff_delay(attempt, base, cap, random.Random(seed))
    assert 0 <= delay <= min(cap, base * 2**attempt)
    assert ceiling(attempt, base, cap) <= ceiling(attempt + 1, base, cap)
