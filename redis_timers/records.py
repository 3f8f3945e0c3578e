"""What the public API returns about stored timers."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any, Generic, TypeVar

import pydantic


@dataclasses.dataclass(frozen=True)
class TimerInfo:
    topic: str
    timer_id: str
    due_at: datetime.datetime
    """When the timer is due (UTC), also while a handler runs it or after that run's lease ran out."""
    payload: pydantic.BaseModel
    attempts: int
    """How many times a handler has been started for the current schedule."""
    running: bool
    """Whether a worker holds a live lease on it right now (not one that ran out with its worker)."""
    last_error: str | None
    lease_expires_at: datetime.datetime | None = None
    """While `running`, when that run's lease ends unless the worker renews it; else None."""


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    topic: str
    timer_id: str
    payload: str
    """The stored JSON, kept as text: it may no longer match the schema."""
    attempts: int
    error: str
    failed_at: datetime.datetime

    def payload_as(self, schema: type[pydantic.BaseModel]) -> Any:
        return schema.model_validate_json(self.payload)


ItemT = TypeVar("ItemT")


@dataclasses.dataclass(frozen=True)
class Page(Generic[ItemT]):
    """One page of an inspection listing (`Timers.list_timers`, `running_timers`, `dead_letter_page`)."""

    items: list[ItemT]
    cursor: str | None
    """None on the last page; else pass it back as `cursor=` (to the same call) for the next one. Opaque,
    printable text, safe to pass on a command line."""


@dataclasses.dataclass(frozen=True)
class ScheduledTimer:
    """A stored timer as the inspection listings read it: needs no schema, so any topic can be listed."""

    topic: str
    timer_id: str
    due_at: datetime.datetime
    """When the timer is due (UTC); while a handler runs it, the due time of that run."""
    payload: str
    """The stored JSON, without the run prefix."""
    attempts: int
    running: bool
    """Whether a worker holds a live lease on it right now."""
    lease_expires_at: datetime.datetime | None
    """While `running`, when that run's lease ends unless the worker renews it; else None."""
    last_error: str | None


@dataclasses.dataclass(frozen=True)
class TopicStats:
    pending: int
    """On the timeline and not running."""
    due_now: int
    """Pending and due (including a run whose lease ran out: it is due again)."""
    overdue: int
    """Pending and due longer ago than `overdue_after`."""
    running: int
    dead: int
    next_due_at: datetime.datetime | None
    """The earliest due time of the pending timers."""
    oldest_overdue_at: datetime.datetime | None
    """The earliest due time among the due ones (None when none is due)."""


@dataclasses.dataclass(frozen=True)
class TimersStats:
    server_time: datetime.datetime
    topics: dict[str, TopicStats]

    @property
    def pending(self) -> int:
        return sum(stats.pending for stats in self.topics.values())

    @property
    def due_now(self) -> int:
        return sum(stats.due_now for stats in self.topics.values())

    @property
    def overdue(self) -> int:
        return sum(stats.overdue for stats in self.topics.values())

    @property
    def running(self) -> int:
        return sum(stats.running for stats in self.topics.values())

    @property
    def dead(self) -> int:
        return sum(stats.dead for stats in self.topics.values())

    @property
    def next_due_at(self) -> datetime.datetime | None:
        return min((stats.next_due_at for stats in self.topics.values() if stats.next_due_at), default=None)

    @property
    def oldest_overdue_at(self) -> datetime.datetime | None:
        return min((stats.oldest_overdue_at for stats in self.topics.values() if stats.oldest_overdue_at), default=None)


@dataclasses.dataclass(frozen=True)
class DueHistogram:
    start: datetime.datetime
    """The server's time when it was counted."""
    bucket: datetime.timedelta
    counts: list[int]
    """Pending timers due in each bucket after `start`: [start, start + bucket), [start + bucket, ...), ..."""
    overdue: int
    """Pending timers due before `start`."""
