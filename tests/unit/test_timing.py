"""timing.py: millisecond scores that are never early, and the server-clock mapping."""

from __future__ import annotations

import datetime
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

from redis_timers.errors import ActivationError, NaiveDatetimeError
from redis_timers.timing import FLOOR_CORRECTION_MS, ServerClock, delay_to_ms, instant_to_ms, ms_to_datetime
from redis_timers.validation import MAX_ACTIVATION_MS

UTC = datetime.timezone.utc
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = datetime.timedelta(milliseconds=1)
US = datetime.timedelta(microseconds=1)

offsets = st.timedeltas(
    min_value=-datetime.timedelta(hours=23, minutes=59, seconds=59),
    max_value=datetime.timedelta(hours=23, minutes=59, seconds=59),
).map(datetime.timezone)

HALF_MS = FLOOR_CORRECTION_MS / 1000
"""The clock reads the server's rounded-down `now` as half a millisecond later."""


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        (datetime.timedelta(0), 0),
        (US, 1),
        (999 * US, 1),
        (ONE_MS, 1),
        (ONE_MS + US, 2),
        (datetime.timedelta(seconds=1, microseconds=500), 1001),
        (datetime.timedelta(hours=1), 3_600_000),
    ],
)
def test_delay_rounds_up_to_whole_milliseconds(period: datetime.timedelta, expected: int) -> None:
    assert delay_to_ms(period) == expected


def test_delay_limit_is_a_hundred_years() -> None:
    assert delay_to_ms(datetime.timedelta(milliseconds=MAX_ACTIVATION_MS)) == MAX_ACTIVATION_MS
    with pytest.raises(ActivationError, match="100 years"):
        delay_to_ms(datetime.timedelta(milliseconds=MAX_ACTIVATION_MS) + US)


@pytest.mark.parametrize("period", [-US, datetime.timedelta(days=-3), 1, 1.5, "PT1S", None])
def test_delay_refuses_negative_or_non_timedelta(period: Any) -> None:
    with pytest.raises(ActivationError):
        delay_to_ms(period)


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(period=st.timedeltas(min_value=datetime.timedelta(0), max_value=datetime.timedelta(days=36500)))
def test_delay_is_never_early_and_less_than_a_millisecond_late(period: datetime.timedelta) -> None:
    milliseconds = delay_to_ms(period)

    assert isinstance(milliseconds, int)
    assert period <= milliseconds * ONE_MS < period + ONE_MS


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (EPOCH, 0),
        (EPOCH - US, 0),  # rounds up to the epoch itself
        (EPOCH + US, 1),
        (datetime.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC), 1_700_000_000_123),
        (datetime.datetime(2023, 11, 14, 22, 13, 20, 123001, tzinfo=UTC), 1_700_000_000_124),
        (datetime.datetime(2023, 11, 14, 22, 13, 20, 122999, tzinfo=UTC), 1_700_000_000_123),
    ],
)
def test_instant_rounds_up_to_whole_milliseconds(moment: datetime.datetime, expected: int) -> None:
    assert instant_to_ms(moment) == expected


@pytest.mark.parametrize(
    "offset",
    [
        datetime.timedelta(hours=5, minutes=30),
        datetime.timedelta(hours=-9, minutes=-30),
        datetime.timedelta(hours=14),
        datetime.timedelta(hours=-12),
        datetime.timedelta(minutes=1, seconds=7, microseconds=9),
    ],
)
def test_instant_with_a_non_utc_offset_means_the_same_moment(offset: datetime.timedelta) -> None:
    in_utc = datetime.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    local = in_utc.astimezone(datetime.timezone(offset))

    assert local.utcoffset() == offset
    assert instant_to_ms(local) == 1_700_000_000_123


def test_instant_refuses_naive_datetimes_and_other_types() -> None:
    with pytest.raises(NaiveDatetimeError):
        instant_to_ms(datetime.datetime(2030, 1, 1))
    with pytest.raises(ActivationError, match=r"datetime\.datetime"):
        instant_to_ms(datetime.date(2030, 1, 1))
    with pytest.raises(ActivationError, match=r"datetime\.datetime"):
        instant_to_ms(1_700_000_000)
    with pytest.raises(ActivationError, match="1970"):
        instant_to_ms(EPOCH - ONE_MS)


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(
    moment=st.datetimes(
        min_value=datetime.datetime(1970, 1, 2), max_value=datetime.datetime(9998, 12, 31), timezones=offsets
    )
)
def test_instant_is_never_early_and_less_than_a_millisecond_late(moment: datetime.datetime) -> None:
    due = ms_to_datetime(instant_to_ms(moment))

    assert moment <= due < moment + ONE_MS


def test_ms_to_datetime_is_aware_utc() -> None:
    moment = ms_to_datetime(1_700_000_000_123)

    assert moment == datetime.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    assert moment.utcoffset() == datetime.timedelta(0)
    assert ms_to_datetime(0) == EPOCH


def test_clock_before_any_observation() -> None:
    clock = ServerClock()

    assert clock.server_now_ms(5.0) is None
    assert clock.seconds_until(1_700_000_000_000, 5.0) == 0.0


def test_clock_maps_server_time_onto_the_round_trip_midpoint() -> None:
    clock = ServerClock()
    # Sent at monotonic 100.0, answered at 100.2: the server read its clock around 100.1.
    clock.observe(1_700_000_000_000, sent_at=100.0, received_at=100.2)

    assert clock.server_now_ms(100.1) == pytest.approx(1_700_000_000_000)
    assert clock.server_now_ms(101.1) == pytest.approx(1_700_000_001_000)
    assert clock.seconds_until(1_700_000_000_500, now=100.2) == pytest.approx(0.4 - HALF_MS)
    assert clock.seconds_until(1_700_000_000_500, now=100.6) == 0.0  # already past: never negative
    assert clock.seconds_until(1_699_999_000_000, now=100.2) == 0.0


def test_clock_follows_the_latest_observation() -> None:
    clock = ServerClock()
    clock.observe(1_000_000, sent_at=10.0, received_at=10.0)
    clock.observe(2_000_000, sent_at=20.0, received_at=20.0)  # the server jumped ahead 990 s

    assert clock.server_now_ms(20.0) == pytest.approx(2_000_000)
    assert clock.seconds_until(2_003_000, now=20.0) == pytest.approx(3.0 - HALF_MS)


def test_clock_keeps_the_quickest_reply_when_one_is_read_late() -> None:
    clock = ServerClock()
    # The server reads its clock 1,000,000 ms at monotonic 10.0 (an offset of 990,000 ms, to the half ms).
    clock.observe(1_000_000, sent_at=9.9995, received_at=10.0005)
    # The next reply came back at once, but its thread ran 60 ms later (a loaded machine): read at 10.561.
    clock.observe(1_000_500, sent_at=10.4995, received_at=10.561)

    # Still the quick reply's mapping: a wait for 1_001_000 ends at 11.0, not 30 ms later.
    assert clock.server_now_ms(11.0) == pytest.approx(1_001_000 + FLOOR_CORRECTION_MS)
    assert clock.seconds_until(1_001_000, now=10.561) == pytest.approx(0.439 - HALF_MS)


def test_clock_forgets_the_quickest_reply_once_a_later_one_rules_it_out() -> None:
    clock = ServerClock()
    clock.observe(1_000_000, sent_at=9.9995, received_at=10.0005)
    # A slower reply that cannot have been read with the old offset: the server's clock was stepped 50 ms.
    clock.observe(1_000_550, sent_at=10.49, received_at=10.51)

    assert clock.server_now_ms(10.5) == pytest.approx(1_000_550 + FLOOR_CORRECTION_MS)


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(
    replies=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=10**9),
            st.floats(min_value=0, max_value=10**4),
            st.floats(min_value=0, max_value=1),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_clock_offset_is_always_one_the_latest_reply_allows(replies: list[tuple[int, float, float]]) -> None:
    clock = ServerClock()
    for server_ms, sent_at, round_trip in replies:
        clock.observe(server_ms, sent_at, sent_at + round_trip)
        # The server read `server_ms` (rounded down) at some instant between sending and receiving.
        offset = clock.offset_ms
        assert offset is not None
        assert server_ms - (sent_at + round_trip) * 1000 - 1e-6 <= offset <= server_ms + 1 - sent_at * 1000 + 1e-6


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(
    server_ms=st.integers(min_value=0, max_value=10**13),
    sent_at=st.floats(min_value=0, max_value=10**6),
    latency=st.floats(min_value=0, max_value=5),
    target=st.integers(min_value=0, max_value=10**13),
    later=st.floats(min_value=0, max_value=100),
)
def test_clock_waits_are_never_negative_and_consistent_with_server_now(
    server_ms: int, sent_at: float, latency: float, target: int, later: float
) -> None:
    clock = ServerClock()
    clock.observe(server_ms, sent_at, sent_at + latency)
    now = sent_at + latency + later
    server_now = clock.server_now_ms(now)

    wait = clock.seconds_until(target, now)

    assert server_now is not None
    assert wait >= 0.0
    assert wait == pytest.approx(max(0.0, (target - server_now) / 1000), abs=1e-3)
