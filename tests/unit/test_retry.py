"""retry.py: handler retry delays and worker pauses after failed cycles."""

from __future__ import annotations

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
    assert retry_delay_ms(9, SETTINGS, FixedRandom(0.5)) == 67500


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
def test_retry_delay_is_never_shorter_than_the_capped_exponential(
    attempts: int, backoff: float, cap_factor: float, seed: int
) -> None:
    settings = TimersSettings(retry_backoff_seconds=backoff, retry_backoff_max_seconds=backoff * cap_factor)
    base_ms = min(backoff * 2.0 ** (attempts - 1), backoff * cap_factor) * 1000

    delay = retry_delay_ms(attempts, settings, random.Random(seed))

    assert isinstance(delay, int)
    assert base_ms - 0.5 <= delay <= base_ms * (1 + RETRY_JITTER) + 0.5


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
    base = min(sleep * 2.0 ** (failures - 1), MAX_CYCLE_FAILURE_PAUSE_SECONDS)

    pause = cycle_failure_pause(failures, settings, random.Random(seed))

    assert base * low * (1 - 1e-9) <= pause <= base * high * (1 + 1e-9)


def test_cycle_failure_pause_after_very_many_failures_is_the_cap() -> None:
    settings = TimersSettings(handling_jitter_min_value=1.0, handling_jitter_max_value=1.0)

    assert cycle_failure_pause(1026, settings, FixedRandom(0.0)) == MAX_CYCLE_FAILURE_PAUSE_SECONDS


def test_retry_delay_after_very_many_attempts_is_the_cap() -> None:
    assert retry_delay_ms(1026, SETTINGS, FixedRandom(0.0)) == 60_000
