"""Test your handlers: fixtures over a real embedded server, time travel, and assertion helpers.

`pytest -p redis_timers.testing` (or `pytest_plugins = ["redis_timers.testing"]`) enables the fixtures of
`redis_timers.testing.plugin`; `TimeMachine` / `AsyncTimeMachine` work with or without them. See docs/testing.md.
"""

from redis_timers.testing.plugin import (
    make_async_timers,
    make_timers,
    timers_async_redis,
    timers_redis,
    timers_redis_url,
    timers_server,
)
from redis_timers.testing.reports import FiredTimer, FireReport, Rescheduled
from redis_timers.testing.time_machine import AsyncTimeMachine, TimeMachine, TimeMachineError

__all__ = [
    "AsyncTimeMachine",
    "FireReport",
    "FiredTimer",
    "Rescheduled",
    "TimeMachine",
    "TimeMachineError",
    "make_async_timers",
    "make_timers",
    "timers_async_redis",
    "timers_redis",
    "timers_redis_url",
    "timers_server",
]
