"""Time travel on a real server: `advance` / `fire_due` fire what is due, in due order, handlers inline."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pydantic
import pytest

from redis_timers import TimersSettings
from redis_timers.testing import TimeMachineError
from tests.harness import Front, Recorder, spec
from tests.testing.conftest import BlockingClock

MINUTE = datetime.timedelta(minutes=1)


class Order(pydantic.BaseModel):
    order_id: int


class Reminder(pydantic.BaseModel):
    user: str
    number: int


ClockFor = Callable[..., BlockingClock]


def test_a_timer_due_in_30_minutes_fires_on_advance_not_before(front: Front, clock_for: ClockFor) -> None:
    cancelled: Recorder[int] = Recorder()
    clock = clock_for(spec("cancel", Order, lambda payload, _: cancelled.record(payload.order_id)))
    start = clock.now()
    clock.harness.set_timer("cancel", "7", Order(order_id=7), 30 * MINUTE)

    early = clock.advance(29 * MINUTE)
    assert early.ran == []
    assert cancelled.items == []
    clock.assert_scheduled("cancel", "7", payload={"order_id": 7})

    report = clock.advance(MINUTE)
    assert [(run.topic, run.timer_id, run.attempt, run.outcome) for run in report.ran] == [("cancel", "7", 1, "done")]
    assert report.ran[0].payload == Order(order_id=7)
    assert report.ran[0].due_at - start >= 30 * MINUTE
    assert report.ran[0].due_at - start < 30 * MINUTE + datetime.timedelta(seconds=5)
    assert cancelled.items == [7]
    clock.assert_not_scheduled("cancel", "7")
    assert clock.now() - start >= 30 * MINUTE
