"""What the public API returns about stored timers."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pydantic


@dataclasses.dataclass(frozen=True)
class TimerInfo:
    topic: str
    timer_id: str
    due_at: datetime.datetime
    """When the timer is due (UTC); while a handler runs it, when that run's lease ends."""
    payload: pydantic.BaseModel
    attempts: int
    """How many times a handler has been started for the current schedule."""
    running: bool
    """Whether a worker holds a lease on it right now."""
    last_error: str | None


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
