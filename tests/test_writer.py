"""coalesce() and the OutboundWriter, on a real event loop with a recording transport."""

from __future__ import annotations

import asyncio
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from imaccess.connection import OutboundWriter, coalesce


class FakeTransport:
    kind = "fake"

    def __init__(self, buffered: int = 0) -> None:
        self.sends: list[tuple[int, bytes]] = []
        self.transmits = 0
        self.buffered = buffered
        self.transmitted = asyncio.Event()
        self.closes: list[tuple[int, str]] = []
        self.calls: list[str] = []

    @property
    def remote_address(self) -> tuple[str, int]:
        return ("127.0.0.1", 1)

    def send(self, stream_id: int, data: bytes) -> None:
        self.calls.append("send")
        self.sends.append((stream_id, data))

    def transmit(self) -> None:
        self.calls.append("transmit")
        self.transmits += 1
        self.transmitted.set()

    def buffered_bytes(self) -> int:
        return self.buffered

    def close(self, code: int, reason: str) -> None:
        self.closes.append((code, reason))

    resumed_user = 0
    file_streams = None

    def bind_identity(self, user_id: int, expires_at: float) -> None:
        pass


async def next_turn() -> None:
    """Let callbacks scheduled with call_soon run (one loop turn is enough)."""
    await asyncio.sleep(0)


# -------------------------------------------------------------------- coalesce


def test_coalesce_joins_runs_per_stream() -> None:
    frames = [(0, b"a"), (0, b"b"), (4, b"c"), (4, b"d"), (4, b"e"), (0, b"f")]
    assert coalesce(frames) == [(0, b"ab"), (4, b"cde"), (0, b"f")]


def test_coalesce_keeps_cross_stream_order() -> None:
    frames = [(8, b"1"), (4, b"2"), (8, b"3"), (0, b"4")]
    assert coalesce(frames) == frames


def test_coalesce_edge_cases() -> None:
    assert coalesce([]) == []
    assert coalesce([(4, b"x")]) == [(4, b"x")]
    assert coalesce([(0, b""), (0, b"x"), (0, b"")]) == [(0, b"x")]


_frames = st.lists(st.tuples(st.sampled_from([0, 4, 8, 12]), st.binary(max_size=8)), max_size=30)


@settings(max_examples=100, deadline=None)
@given(_frames)
def test_property_coalesce_preserves_bytes_per_stream_and_order(
    frames: list[tuple[int, bytes]],
) -> None:
    out = coalesce(frames)
    # no two neighbours share a stream: every run was joined
    assert all(a[0] != b[0] for a, b in itertools.pairwise(out))
    # the stream order is the input's, with runs collapsed
    collapsed = [s for i, (s, _) in enumerate(frames) if i == 0 or frames[i - 1][0] != s]
    assert [s for s, _ in out] == collapsed
    # each stream's bytes are the concatenation of its frames, in order
    for stream in {s for s, _ in frames}:
        want = b"".join(d for s, d in frames if s == stream)
        assert b"".join(d for s, d in out if s == stream) == want
    assert sum(len(d) for _, d in out) == sum(len(d) for _, d in frames)


# --------------------------------------------------------------- OutboundWriter


def make_writer(
    transport: FakeTransport, max_bytes: int = 1 << 20
) -> tuple[OutboundWriter, list[int]]:
    overflows: list[int] = []
    writer: OutboundWriter

    def on_overflow() -> None:
        overflows.append(writer.queued_bytes)
        writer.discard()  # what Connection._overflow does first

    writer = OutboundWriter(transport, max_bytes, on_overflow, asyncio.get_running_loop())
    return writer, overflows


async def test_writes_in_one_turn_flush_once_per_stream_run() -> None:
    t = FakeTransport()
    writer, overflows = make_writer(t)
    writer.write([(0, b"a")])
    writer.write([(0, b"b"), (4, b"c")])
    writer.write([(4, b"d"), (0, b"e")])
    # nothing goes out synchronously
    assert t.sends == []
    assert t.transmits == 0
    assert writer.queued_bytes == 5
    await asyncio.wait_for(t.transmitted.wait(), 5)
    assert t.sends == [(0, b"ab"), (4, b"cd"), (0, b"e")]
    assert t.transmits == 1
    assert t.calls == ["send", "send", "send", "transmit"]
    assert writer.queued_bytes == 0
    assert overflows == []
    # no second flush follows
    await next_turn()
    await next_turn()
    assert t.transmits == 1


async def test_a_later_turn_flushes_again() -> None:
    t = FakeTransport()
    writer, _ = make_writer(t)
    writer.write([(0, b"one")])
    await next_turn()
    assert t.sends == [(0, b"one")]
    writer.write([(0, b"two")])
    writer.write([(0, b"three")])
    await next_turn()
    assert t.sends == [(0, b"one"), (0, b"twothree")]
    assert t.transmits == 2


async def test_empty_write_schedules_nothing() -> None:
    t = FakeTransport()
    writer, _ = make_writer(t)
    writer.write([])
    await next_turn()
    assert t.calls == []


async def test_flush_with_nothing_pending_does_not_transmit() -> None:
    t = FakeTransport()
    writer, _ = make_writer(t)
    writer.flush()
    assert t.calls == []


async def test_explicit_flush_sends_now_and_the_scheduled_flush_is_a_no_op() -> None:
    t = FakeTransport()
    writer, _ = make_writer(t)
    writer.write([(0, b"x"), (4, b"y")])
    writer.flush()
    assert t.sends == [(0, b"x"), (4, b"y")]
    assert t.transmits == 1
    await next_turn()
    assert t.transmits == 1


async def test_queued_bytes_counts_the_transport_buffer() -> None:
    t = FakeTransport(buffered=100)
    writer, _ = make_writer(t)
    assert writer.queued_bytes == 100
    writer.write([(0, b"12345")])
    assert writer.queued_bytes == 105
    await next_turn()
    assert writer.queued_bytes == 100


async def test_reaching_the_bound_exactly_is_not_an_overflow() -> None:
    t = FakeTransport(buffered=6)
    writer, overflows = make_writer(t, max_bytes=10)
    writer.write([(0, b"1234")])  # 4 + 6 == 10
    assert overflows == []
    await next_turn()
    assert t.sends == [(0, b"1234")]


async def test_overflow_counts_own_queue_and_transport_buffer() -> None:
    t = FakeTransport(buffered=6)
    writer, overflows = make_writer(t, max_bytes=10)
    writer.write([(0, b"1234")])  # 10: fine, a flush is scheduled
    writer.write([(4, b"5")])  # 11 > 10
    assert overflows == [11]
    assert writer.queued_bytes == 6  # own queue discarded; the transport's is its own
    await next_turn()
    await next_turn()
    assert t.sends == []
    assert t.transmits == 0


async def test_overflow_from_own_queue_alone() -> None:
    t = FakeTransport()
    writer, overflows = make_writer(t, max_bytes=10)
    writer.write([(0, b"x" * 11)])
    assert overflows == [11]
    await next_turn()
    assert t.calls == []


async def test_overflow_from_transport_buffer_alone() -> None:
    t = FakeTransport(buffered=10)
    writer, overflows = make_writer(t, max_bytes=10)
    writer.write([(0, b"x")])
    assert overflows == [11]
    await next_turn()
    assert t.calls == []


async def test_discard_drops_pending_frames() -> None:
    t = FakeTransport()
    writer, _ = make_writer(t)
    writer.write([(0, b"abc")])
    writer.discard()
    assert writer.queued_bytes == 0
    await next_turn()
    assert t.calls == []
