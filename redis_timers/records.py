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
