"""What a time-travel step reports: the timers it fired, what their runs rescheduled, what went to dead letters."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any, Literal

from redis_timers.records import DeadLetter

Outcome = Literal["done", "retry", "dead"]


def shown(topic: str, timer_id: str) -> str:
    """`topic/id` for a listing of one line each: a part with a line break or control character is quoted."""
    return "/".join(part if part.isprintable() else repr(part) for part in (topic, timer_id))


@dataclasses.dataclass(frozen=True)
class FiredTimer:
    """One handler run, in the order the runs happened. Times are virtual (on the helper's clock)."""

    topic: str
    timer_id: str
    payload: Any
    """The payload the handler got (an instance of its topic's schema)."""
    due_at: datetime.datetime
    """When the timer was due."""
    fired_at: datetime.datetime
    """The helper's virtual now when the run started (its due time, or later when it was overdue)."""
    attempt: int
    """1 for the first run of this schedule, 2 for the first retry, ..."""
    error: str | None
    """What the handler raised (its type and message), or None when it returned."""
    outcome: Outcome
    """`done` (acked), `retry` (failed, scheduled again with backoff) or `dead` (failed its last attempt)."""

    @property
    def failed(self) -> bool:
        return self.error is not None

    def __str__(self) -> str:
        name = shown(self.topic, self.timer_id)
        text = f"{name} attempt {self.attempt} due {self.due_at.isoformat()}: {self.outcome}"
        return text if self.error is None else f"{text} ({self.error})"


@dataclasses.dataclass(frozen=True)
class Rescheduled:
    """A timer whose due time a step's runs set or moved: a retry, or a timer a handler set."""

    topic: str
    timer_id: str
    due_at: datetime.datetime
    """Its new due time, virtual."""
    retry: bool
    """True: the worker scheduled a failed run again; False: a handler set this timer."""

    def __str__(self) -> str:
        kind = "retry" if self.retry else "set"
        return f"{shown(self.topic, self.timer_id)} {kind} due {self.due_at.isoformat()}"


@dataclasses.dataclass(frozen=True)
class FireReport:
    """What `advance` / `fire_due` did, from `start` to `end` (virtual instants)."""

    start: datetime.datetime
    end: datetime.datetime
    ran: list[FiredTimer]
    """Every handler run, in the order they ran (which is due order)."""
    rescheduled: list[Rescheduled]
    """Every timer the runs set or moved, in the order it happened (one that fired later in the step too)."""
    dead_lettered: list[DeadLetter]
    """Every timer moved to dead letters during the step (`failed_at` virtual)."""

    @property
    def failed(self) -> list[FiredTimer]:
        """The runs whose handler raised."""
        return [run for run in self.ran if run.failed]

    def ran_ids(self, topic: str | None = None) -> list[str]:
        """The ids of the runs (of `topic`), in the order they ran; an id retried shows once per run."""
        return [run.timer_id for run in self.ran if topic is None or run.topic == topic]

    def __str__(self) -> str:
        lines = [f"from {self.start.isoformat()} to {self.end.isoformat()}:"]
        lines += [f"  ran {run}" for run in self.ran] or ["  nothing ran"]
        lines += [f"  rescheduled {item}" for item in self.rescheduled]
        lines += [f"  dead letter {shown(dead.topic, dead.timer_id)} ({dead.error})" for dead in self.dead_lettered]
        return "\n".join(lines)
