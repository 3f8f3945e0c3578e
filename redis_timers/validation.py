"""Checks on user input, run before anything is written to Redis."""

from __future__ import annotations

import datetime

from redis_timers.errors import (
    ActivationError,
    HandlerRegistrationError,
    InvalidTimerIdError,
    NaiveDatetimeError,
    TimersError,
)

MAX_TIMER_ID_BYTES = 1024
MAX_TOPIC_BYTES = 256
MAX_ACTIVATION_MS = 100 * 365 * 24 * 3600 * 1000
"""A hundred years: anything further is almost certainly a unit mistake."""


def check_timer_id(timer_id: object) -> str:
    if not isinstance(timer_id, str):
        raise InvalidTimerIdError(f"timer_id must be a str, got {type(timer_id).__name__}")
    if not timer_id:
        raise InvalidTimerIdError("timer_id must not be empty")
    try:
        size = len(timer_id.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidTimerIdError("timer_id must be encodable as UTF-8 (it contains a lone surrogate)") from None
    if size > MAX_TIMER_ID_BYTES:
        raise InvalidTimerIdError(f"timer_id is {size} bytes long; the limit is {MAX_TIMER_ID_BYTES}")
    return timer_id


def check_topic(topic: object, separator: str, error: type[TimersError] = HandlerRegistrationError) -> str:
    """Topics name keys and channels, so they are printable, bounded and free of the seed's separator."""
    if not isinstance(topic, str) or not topic:
        raise error(f"topic must be a non-empty str, got {topic!r}")
    if not topic.isprintable() or any(char.isspace() for char in topic):
        raise error(f"topic {topic!r} must be printable and contain no whitespace")
    if len(topic.encode("utf-8", errors="replace")) > MAX_TOPIC_BYTES:
        raise error(f"topic {topic[:40]!r}... is longer than {MAX_TOPIC_BYTES} bytes")
    try:
        topic.encode("utf-8")
    except UnicodeEncodeError:
        raise error(f"topic {topic!r} must be encodable as UTF-8") from None
    # Seed-era keys are `topic<separator>id`, split at the first separator: a topic containing it, or ending
    # with the start of it (`orders-` with `--`), would be split in the wrong place.
    if separator in topic or any(topic.endswith(separator[:size]) for size in range(1, len(separator))):
        raise error(f"topic {topic!r} must not contain the separator {separator!r} nor end with part of it")
    return topic


def check_aware(moment: object, name: str) -> datetime.datetime:
    if not isinstance(moment, datetime.datetime):
        raise ActivationError(f"{name} must be a datetime.datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.tzinfo.utcoffset(moment) is None:
        raise NaiveDatetimeError(f"{name} must be timezone-aware (for example datetime.now(timezone.utc))")
    return moment
