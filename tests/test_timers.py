"""TimerWheel: keys in buckets at their deadline rounded up to the resolution."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from imaccess.timers import TimerWheel


def test_empty_wheel() -> None:
    wheel: TimerWheel[str] = TimerWheel(1.0)
    assert len(wheel) == 0
    assert wheel.next_due() is None
    assert wheel.pop_due(1e9) == []


def test_key_is_due_at_its_bucket_not_before() -> None:
    wheel: TimerWheel[str] = TimerWheel(1.0)
    wheel.schedule("a", 2.3)  # bucket 3.0
    assert wheel.next_due() == 3.0
    assert wheel.pop_due(2.3) == []
    assert wheel.pop_due(2.999) == []
    assert len(wheel) == 1
    assert wheel.pop_due(3.0) == ["a"]
    assert len(wheel) == 0
    assert wheel.next_due() is None


def test_deadline_on_a_bucket_boundary_stays_in_that_bucket() -> None:
    wheel: TimerWheel[str] = TimerWheel(0.5)
    wheel.schedule("a", 2.0)
    assert wheel.next_due() == 2.0
    assert wheel.pop_due(1.99) == []
    assert wheel.pop_due(2.0) == ["a"]


def test_keys_are_due_only_once() -> None:
    wheel: TimerWheel[str] = TimerWheel(1.0)
    wheel.schedule("a", 1.0)
    wheel.schedule("b", 2.0)
    assert sorted(wheel.pop_due(5.0)) == ["a", "b"]
    assert wheel.pop_due(5.0) == []
    assert wheel.pop_due(100.0) == []


def test_pop_due_returns_earlier_buckets_first() -> None:
    wheel: TimerWheel[str] = TimerWheel(1.0)
    wheel.schedule("late", 3.0)
    wheel.schedule("early", 1.0)
    wheel.schedule("mid", 2.0)
    assert wheel.pop_due(10.0) == ["early", "mid", "late"]


def test_pop_due_leaves_later_buckets() -> None:
    wheel: TimerWheel[str] = TimerWheel(1.0)
    wheel.schedule("a", 1.0)
    wheel.schedule("b", 5.0)
    assert wheel.pop_due(3.0) == ["a"]
    assert len(wheel) == 1
    assert wheel.next_due() == 5.0
    assert wheel.pop_due(5.0) == ["b"]


def test_cancel_removes_the_key() -> None:
    wheel: TimerWheel[str] = TimerWheel(1.0)
    wheel.schedule("a", 1.0)
    wheel.schedule("b", 1.0)
    wheel.cancel("a")
    assert len(wheel) == 1
    assert wheel.pop_due(2.0) == ["b"]


def test_cancel_of_last_key_empties_the_bucket() -> None:
    wheel: TimerWheel[str] = TimerWheel(1.0)
    wheel.schedule("a", 1.0)
    wheel.schedule("b", 4.0)
    wheel.cancel("a")
    assert wheel.next_due() == 4.0  # bucket 1.0 is gone, not left empty


def test_cancel_unknown_key_is_a_no_op() -> None:
    wheel: TimerWheel[str] = TimerWheel(1.0)
    wheel.cancel("nobody")
    wheel.schedule("a", 1.0)
    wheel.cancel("a")
    wheel.cancel("a")
    assert len(wheel) == 0
    assert wheel.next_due() is None


def test_reschedule_moves_the_key_later() -> None:
    wheel: TimerWheel[str] = TimerWheel(1.0)
    wheel.schedule("a", 1.0)
    wheel.schedule("a", 10.0)
    assert len(wheel) == 1
    assert wheel.next_due() == 10.0
    assert wheel.pop_due(5.0) == []
    assert wheel.pop_due(10.0) == ["a"]


def test_reschedule_moves_the_key_earlier() -> None:
    wheel: TimerWheel[str] = TimerWheel(1.0)
    wheel.schedule("a", 10.0)
    wheel.schedule("a", 2.0)
    assert wheel.next_due() == 2.0
    assert wheel.pop_due(2.0) == ["a"]
    assert wheel.pop_due(10.0) == []


def test_reschedule_within_the_same_bucket_keeps_one_entry() -> None:
    wheel: TimerWheel[str] = TimerWheel(1.0)
    wheel.schedule("a", 2.1)
    wheel.schedule("a", 2.9)
    assert len(wheel) == 1
    assert wheel.pop_due(3.0) == ["a"]


def test_a_popped_key_can_be_scheduled_again() -> None:
    wheel: TimerWheel[str] = TimerWheel(1.0)
    wheel.schedule("a", 1.0)
    assert wheel.pop_due(1.0) == ["a"]
    wheel.schedule("a", 3.0)
    assert wheel.pop_due(2.0) == []
    assert wheel.pop_due(3.0) == ["a"]


def test_past_deadline_is_due_at_once() -> None:
    wheel: TimerWheel[str] = TimerWheel(1.0)
    wheel.schedule("a", -5.0)
    assert wheel.pop_due(0.0) == ["a"]


def test_next_due_is_the_earliest_bucket() -> None:
    wheel: TimerWheel[int] = TimerWheel(0.25)
    wheel.schedule(1, 7.1)  # bucket 7.25
    wheel.schedule(2, 3.01)  # bucket 3.25
    wheel.schedule(3, 5.0)
    assert wheel.next_due() == 3.25
    wheel.cancel(2)
    assert wheel.next_due() == 5.0


def test_a_bucket_is_due_at_the_time_next_due_reports() -> None:
    wheel: TimerWheel[str] = TimerWheel(0.1)
    wheel.schedule("a", 4.3)
    due_at = wheel.next_due()
    assert due_at is not None
    assert due_at <= 4.3 + 0.1
    assert wheel.pop_due(due_at) == ["a"]


# -------------------------------------------------------------------- property

_ops = st.lists(
    st.tuples(
        st.integers(0, 9),  # key
        # a deadline, or None to cancel
        st.one_of(st.none(), st.floats(-1000, 1000, allow_nan=False, allow_infinity=False)),
    ),
    max_size=40,
)


@settings(max_examples=100, deadline=None)
@given(
    resolution=st.sampled_from([0.125, 0.25, 0.5, 1.0, 2.0, 8.0]),
    ops=_ops,
    now=st.floats(-1000, 1000, allow_nan=False, allow_infinity=False),
)
def test_property_pop_due_returns_exactly_the_keys_whose_bucket_has_come(
    resolution: float, ops: list[tuple[int, float | None]], now: float
) -> None:
    # binary-fraction resolutions keep the arithmetic exact, so the model is plain math
    wheel: TimerWheel[int] = TimerWheel(resolution)
    deadlines: dict[int, float] = {}
    for key, deadline in ops:
        if deadline is None:
            wheel.cancel(key)
            deadlines.pop(key, None)
        else:
            wheel.schedule(key, deadline)
            deadlines[key] = deadline
    assert len(wheel) == len(deadlines)

    def bucket(key: int) -> float:
        return math.ceil(deadlines[key] / resolution) * resolution

    if deadlines:
        assert wheel.next_due() == min(bucket(k) for k in deadlines)
    else:
        assert wheel.next_due() is None

    due = wheel.pop_due(now)
    expected = {k for k in deadlines if bucket(k) <= now}
    assert len(due) == len(set(due))
    assert set(due) == expected
    assert [bucket(k) for k in due] == sorted(bucket(k) for k in due)
    assert len(wheel) == len(deadlines) - len(expected)
    # popped keys are gone: popping again at the same time yields nothing
    assert wheel.pop_due(now) == []
    # and the rest come out at the end, each once
    rest = wheel.pop_due(1e9)
    assert sorted(rest) == sorted(set(deadlines) - expected)
    assert len(wheel) == 0
    assert wheel.next_due() is None
