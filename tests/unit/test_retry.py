"""retry.py: handler retry delays and worker pauses after failed cycles."""

from __future__ import annotations

import math
import random

import hypothesis
import pytest
from hypothesis import strategies as st

from redis_timers.retry import MAX_CYCLE_FAILURE_PAUSE_SECONDS, RETRY_JITTER, cycle_failure_pause, retry_delay_ms
from redis_timers.settings import TimersSettings
from tests.unit.support import FixedRandom

SETTINGS = TimersSettings(retry_backoff_seconds=1.0, retry_backoff_max_seconds=60.0)


@pytest.mark.parametrize(
    ("attempts", "expected_ms"),
    [(0, 1000), (1, 1000), (2, 2000), (3, 4000), (6, 32000), (7, 60000), (50, 60000)],
)
def test_retry_delay_doubles_each_attempt_up_to_the_cap(attempts: int, expected_ms: int) -> None:
    assert retry_delay_ms(attempts, SETTINGS, FixedRandom(0.0)) == expected_ms


def test_retry_jitter_only_adds_up_to_a_quarter() -> None:
    assert RETRY_JITTER == 0.25
    assert retry_delay_ms(1, SETTINGS, FixedRandom(0.5)) == 1125
    assert retry_delay_ms(1, SETTINGS, FixedRandom(0.999999)) == 1250


def test_retry_jitter_stays_inside_the_cap() -> None:
    # 2 ** 8 s is past the 60 s cap: the cap is the delay, jitter or not.
    assert retry_delay_ms(9, SETTINGS, FixedRandom(0.5)) == 60_000
    assert retry_delay_ms(9, SETTINGS, FixedRandom(0.999999)) == 60_000
    # 32 s is under the cap, 32 s + 25% is over it: the jitter is cut at the cap.
    assert retry_delay_ms(6, SETTINGS, FixedRandom(0.999999)) == 40_000
    assert retry_delay_ms(6, TimersSettings(retry_backoff_max_seconds=35.0), FixedRandom(0.999999)) == 35_000


def test_a_fraction_of_a_millisecond_rounds_up_never_down() -> None:
    settings = TimersSettings(retry_backoff_seconds=0.0004, retry_backoff_max_seconds=1)

    assert retry_delay_ms(1, settings, FixedRandom(0.0)) == 1
    assert retry_delay_ms(2, settings, FixedRandom(0.0)) == 1  # 0.8 ms
    assert retry_delay_ms(3, settings, FixedRandom(0.0)) == 2  # 1.6 ms


def test_a_zero_backoff_retries_at_once() -> None:
    settings = TimersSettings(retry_backoff_seconds=0, retry_backoff_max_seconds=0)

    assert retry_delay_ms(3, settings, FixedRandom(0.9)) == 0


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(
    attempts=st.integers(min_value=1, max_value=200),
    backoff=st.floats(min_value=0, max_value=100),
    cap_factor=st.floats(min_value=1, max_value=1000),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_retry_delay_is_within_the_exponential_and_the_cap(
    attempts: int, backoff: float, cap_factor: float, seed: int
) -> None:
    cap = backoff * cap_factor
    settings = TimersSettings(retry_backoff_seconds=backoff, retry_backoff_max_seconds=cap)
    exponential_ms = backoff * 2.0 ** (attempts - 1) * 1000

    delay = retry_delay_ms(attempts, settings, random.Random(seed))

    assert isinstance(delay, int)
    # TIMERS_RETRY_BACKOFF_MAX_SECONDS is a true maximum (in whole milliseconds, rounded down)...
    assert delay <= math.floor(cap * 1000)
    # ... and below it a retry never comes sooner than the exponential delay, nor more than 25% later.
    if delay < math.floor(cap * 1000):
        assert exponential_ms <= delay <= exponential_ms * (1 + RETRY_JITTER) + 1
    else:
        assert exponential_ms * (1 + RETRY_JITTER) + 1 >= math.floor(cap * 1000)


@pytest.mark.parametrize(
    ("failures", "expected"),
    [(0, 0.05), (1, 0.05), (2, 0.1), (3, 0.2), (7, 3.2), (8, 5.0), (100, 5.0)],
)
def test_cycle_failure_pause_doubles_up_to_a_cap(failures: int, expected: float) -> None:
    # FixedRandom(0.5) makes uniform(0.5, 1.5) exactly 1.0.
    settings = TimersSettings(handling_jitter_min_value=0.5, handling_jitter_max_value=1.5)

    assert cycle_failure_pause(failures, settings, FixedRandom(0.5)) == pytest.approx(expected)
    assert MAX_CYCLE_FAILURE_PAUSE_SECONDS == 5.0


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(
    failures=st.integers(min_value=1, max_value=200),
    sleep=st.floats(min_value=0.001, max_value=10),
    jitter=st.tuples(st.floats(min_value=0.01, max_value=5), st.floats(min_value=0.01, max_value=5)).map(sorted),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_cycle_failure_pause_stays_within_the_seeds_jitter_range(
    failures: int, sleep: float, jitter: list[float], seed: int
) -> None:
    low, high = jitter
    settings = TimersSettings(handling_sleep=sleep, handling_jitter_min_value=low, handling_jitter_max_value=high)
    exponential = sleep * 2.0 ** (failures - 1)

    pause = cycle_failure_pause(failures, settings, random.Random(seed))

    # The 5 s cap is a true maximum, jitter included; under it the pause is the jittered exponential.
    assert pause <= MAX_CYCLE_FAILURE_PAUSE_SECONDS
    if pause < MAX_CYCLE_FAILURE_PAUSE_SECONDS:
        assert exponential * low * (1 - 1e-9) <= pause <= exponential * high * (1 + 1e-9)
    else:
        assert exponential * high * (1 + 1e-9) >= MAX_CYCLE_FAILURE_PAUSE_SECONDS


def test_cycle_failure_pause_jitter_stays_inside_the_cap() -> None:
    # The default jitter range reaches 2.0: 5 s times 2.0 would be a 10 s pause.
    settings = TimersSettings()

    assert cycle_failure_pause(100, settings, FixedRandom(0.999999)) == MAX_CYCLE_FAILURE_PAUSE_SECONDS
    # 3.2 s after 7 failures: 6.4 s at the top of the range is cut to 5 s, the bottom of it is 1.6 s.
    assert cycle_failure_pause(7, settings, FixedRandom(1.0)) == MAX_CYCLE_FAILURE_PAUSE_SECONDS
    assert cycle_failure_pause(7, settings, FixedRandom(0.0)) == pytest.approx(1.6)


def test_cycle_failure_pause_after_very_many_failures_is_the_cap() -> None:
    settings = TimersSettings(handling_jitter_min_value=1.0, handling_jitter_max_value=1.0)

    assert cycle_failure_pause(1026, settings, FixedRandom(0.0)) == MAX_CYCLE_FAILURE_PAUSE_SECONDS


def test_retry_delay_after_very_many_attempts_is_the_cap() -> None:
    assert retry_delay_ms(1026, SETTINGS, FixedRandom(0.0)) == 60_000
