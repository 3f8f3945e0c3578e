"""The inspection flows (`Timers.list_timers`, `stats`, ...): every answer in bounded calls, across every shard.

Each call a flow yields does bounded work on the server (a page of a ZSET by rank, `ZCOUNT`, `HLEN`, a `SCAN` or
`HSCAN` of `COUNT` 1000), so no inspection blocks the server for O(N). See docs/operations.md "Inspection".
"""

from __future__ import annotations

import datetime

from redis_timers.keys import Namespace
from redis_timers.ops import Flow
from redis_timers.records import DeadLetter, DueHistogram, Page, ScheduledTimer, TimersStats
from redis_timers.registry import HandlerRegistry
from redis_timers.settings import TimersSettings


def topics(namespace: Namespace, registry: HandlerRegistry) -> Flow[list[str]]:
    raise NotImplementedError
    yield  # pragma: no cover


def count_timers(
    namespace: Namespace,
    registry: HandlerRegistry,
    settings: TimersSettings,
    topic: str | None,
    due_after: datetime.datetime | None,
    due_before: datetime.datetime | None,
) -> Flow[int]:
    raise NotImplementedError
    yield  # pragma: no cover


def list_timers(
    namespace: Namespace,
    registry: HandlerRegistry,
    settings: TimersSettings,
    topic: str | None,
    due_after: datetime.datetime | None,
    due_before: datetime.datetime | None,
    limit: int,
    cursor: str | None,
) -> Flow[Page[ScheduledTimer]]:
    raise NotImplementedError
    yield  # pragma: no cover


def running_timers(
    namespace: Namespace,
    registry: HandlerRegistry,
    settings: TimersSettings,
    topic: str | None,
    limit: int,
    cursor: str | None,
) -> Flow[Page[ScheduledTimer]]:
    raise NotImplementedError
    yield  # pragma: no cover


def stats(
    namespace: Namespace, registry: HandlerRegistry, settings: TimersSettings, overdue_after: datetime.timedelta
) -> Flow[TimersStats]:
    raise NotImplementedError
    yield  # pragma: no cover


def due_histogram(
    namespace: Namespace,
    registry: HandlerRegistry,
    settings: TimersSettings,
    window: datetime.timedelta,
    buckets: int,
    topic: str | None,
) -> Flow[DueHistogram]:
    raise NotImplementedError
    yield  # pragma: no cover


def dead_letter_page(
    namespace: Namespace, settings: TimersSettings, topic: str | None, limit: int, cursor: str | None
) -> Flow[Page[DeadLetter]]:
    raise NotImplementedError
    yield  # pragma: no cover


def count_dead_letters(namespace: Namespace, settings: TimersSettings, topic: str | None) -> Flow[int]:
    raise NotImplementedError
    yield  # pragma: no cover
