"""redis-timers: durable one-shot timers on Redis.

`from redis_timers import Timers, Router` gives the asyncio front end, as in the seed;
`from redis_timers.sync import Timers` gives the blocking one.
"""

from redis_timers.aio.timers import Timers
from redis_timers.bulk import SetResult, TimerRef, TimerSpec
from redis_timers.errors import (
    ActivationError,
    HandlerNotFoundError,
    HandlerRegistrationError,
    InspectionArgumentError,
    InvalidCursorError,
    InvalidTimerError,
    InvalidTimerIdError,
    InvalidTopicError,
    NaiveDatetimeError,
    PayloadTypeError,
    ReplacedFeatureError,
    SetModeError,
    SettingsError,
    ShardLayoutError,
    StoredPayloadError,
    TimersAuthenticationError,
    TimersConnectionError,
    TimersDurabilityError,
    TimersError,
    TimersOutOfMemoryError,
    TimersPermissionError,
    TimersServerError,
    TimersUnavailableError,
    UnstorablePayloadError,
    UnsupportedClientError,
)
from redis_timers.lock import consume_lock, timer_lock
from redis_timers.records import DeadLetter, DueHistogram, Page, ScheduledTimer, TimerInfo, TimersStats, TopicStats
from redis_timers.router import Handler, Router
from redis_timers.settings import TimersSettings

__all__ = [
    "ActivationError",
    "DeadLetter",
    "DueHistogram",
    "Handler",
    "HandlerNotFoundError",
    "HandlerRegistrationError",
    "InspectionArgumentError",
    "InvalidCursorError",
    "InvalidTimerError",
    "InvalidTimerIdError",
    "InvalidTopicError",
    "NaiveDatetimeError",
    "Page",
    "PayloadTypeError",
    "ReplacedFeatureError",
    "Router",
    "ScheduledTimer",
    "SetModeError",
    "SetResult",
    "SettingsError",
    "ShardLayoutError",
    "StoredPayloadError",
    "TimerInfo",
    "TimerRef",
    "TimerSpec",
    "Timers",
    "TimersAuthenticationError",
    "TimersConnectionError",
    "TimersDurabilityError",
    "TimersError",
    "TimersOutOfMemoryError",
    "TimersPermissionError",
    "TimersServerError",
    "TimersSettings",
    "TimersStats",
    "TimersUnavailableError",
    "TopicStats",
    "UnstorablePayloadError",
    "UnsupportedClientError",
    "consume_lock",
    "timer_lock",
]
