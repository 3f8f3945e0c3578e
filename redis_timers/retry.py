"""How long to wait after a failure: handler retries and worker cycles that could not reach Redis."""

from __future__ import annotations

import math
import random

from redis_timers.settings import TimersSettings

MAX_CYCLE_FAILURE_PAUSE_SECONDS = 5.0
MAX_DOUBLINGS = 60
"""Exponents stop growing here: every cap is reached long before, and 2.0 ** 1024 would overflow."""
RETRY_JITTER = 0.25
"""Retries wait up to this fraction longer than the exponential delay, never shorter (below the cap)."""


def retry_delay_ms(attempts: int, settings: TimersSettings, rng: random.Random) -> int:
    """Delay before the next attempt after `attempts` failed ones: exponential from the first retry's delay.

    The jitter is applied before the cap, so `retry_backoff_max_seconds` is the longest delay there is
    (in whole milliseconds, rounded down), and a delay below it is never shorter than the exponential one.
    """
    exponential = settings.retry_backoff_seconds * 2.0 ** min(max(0, attempts - 1), MAX_DOUBLINGS)
    # Rounded up: a retry due before its delay has passed would fire early.
    jittered_ms = math.ceil(float(exponential) * (1 + RETRY_JITTER * rng.random()) * 1000)
    return min(jittered_ms, math.floor(settings.retry_backoff_max_seconds * 1000))


def cycle_failure_pause(failures: int, settings: TimersSettings, rng: random.Random) -> float:
    """Pause after `failures` consecutive failed cycles: exponential with the seed's jitter range, then capped.

    Capping after the jitter keeps MAX_CYCLE_FAILURE_PAUSE_SECONDS the longest pause, whatever the jitter range.
    """
    exponential = settings.handling_sleep * 2.0 ** min(max(0, failures - 1), MAX_DOUBLINGS)
    jittered = exponential * rng.uniform(settings.handling_jitter_min_value, settings.handling_jitter_max_value)
    return min(jittered, MAX_CYCLE_FAILURE_PAUSE_SECONDS)
