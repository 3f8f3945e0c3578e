"""How long to wait after a failure: handler retries and worker cycles that could not reach Redis."""

from __future__ import annotations

import random

from redis_timers.settings import TimersSettings

MAX_CYCLE_FAILURE_PAUSE_SECONDS = 5.0
MAX_DOUBLINGS = 60
"""Exponents stop growing here: every cap is reached long before, and 2.0 ** 1024 would overflow."""
RETRY_JITTER = 0.25
"""Retries wait up to this fraction longer than the exponential delay, never shorter."""


def retry_delay_ms(attempts: int, settings: TimersSettings, rng: random.Random) -> int:
    """Delay before the next attempt after `attempts` failed ones: exponential from the first retry's delay."""
    exponential = settings.retry_backoff_seconds * 2.0 ** min(max(0, attempts - 1), MAX_DOUBLINGS)
    capped = min(exponential, settings.retry_backoff_max_seconds)
    return round(float(capped) * (1 + RETRY_JITTER * rng.random()) * 1000)


def cycle_failure_pause(failures: int, settings: TimersSettings, rng: random.Random) -> float:
    """Pause after `failures` consecutive failed cycles: capped exponential with the seed's jitter range."""
    base = min(
        settings.handling_sleep * 2.0 ** min(max(0, failures - 1), MAX_DOUBLINGS), MAX_CYCLE_FAILURE_PAUSE_SECONDS
    )
    return base * rng.uniform(settings.handling_jitter_min_value, settings.handling_jitter_max_value)
