"""Time travel at its edges: the window's last millisecond, due order across topics, requests out of range."""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable

import pydantic
import pytest

from redis_timers import TimersSettings
from redis_timers.testing import TimeMachineError
from tests.harness import Front, Recorder, spec
from tests.testing.conftest import BlockingClock

MS = datetime.timedelta(milliseconds=1)
MINUTE = datetime.timedelta(minutes=1)

ClockFor = Callable[..., BlockingClock]


class Order(pydantic.BaseModel):
    order_id: int


def test_a_timer_due_at_the_target_fires_and_one_due_a_millisecond_later_does_not(clock_for: ClockFor) -> None:
    clock = clock_for(spec("cancel", Order, lambda payload, _: None))
    target = clock.now() + 30 * MINUTE
    for number in range(5):
        clock.harness.set_timer("cancel", f"at-{number}", Order(order_id=number), activate_at=clock.activate_at(target))
        clock.harness.set_timer(
            "cancel", f"after-{number}", Order(order_id=number), activate_at=clock.activate_at(target + MS)
        )

    report = clock.fire_due(until=target)
    assert sorted(report.ran_ids()) == [f"at-{number}" for number in range(5)], str(report)
    assert [info.timer_id for info in clock.scheduled("cancel")] == [f"after-{number}" for number in range(5)]

    assert sorted(clock.advance(MS).ran_ids()) == [f"after-{number}" for number in range(5)]


def test_timers_of_two_topics_one_millisecond_apart_run_in_due_order(clock_for: ClockFor) -> None:
    """Topic order is not due order: `b` is handled first in a worker pass, yet its timer is due later."""
    clock = clock_for(spec("b", Order, lambda payload, _: None), spec("a", Order, lambda payload, _: None))
    due = clock.now() + MINUTE
    for number in range(5):
        moment = due + 2 * number * MS
        clock.harness.set_timer("b", f"b{number}", Order(order_id=number), activate_at=clock.activate_at(moment + MS))
        clock.harness.set_timer("a", f"a{number}", Order(order_id=number), activate_at=clock.activate_at(moment))

    report = clock.advance(2 * MINUTE)
    assert report.ran_ids() == [name for number in range(5) for name in (f"a{number}", f"b{number}")], str(report)
    assert [run.due_at for run in report.ran] == sorted(run.due_at for run in report.ran)


def test_a_step_past_the_last_representable_instant_is_a_typed_error(clock_for: ClockFor) -> None:
    clock = clock_for(spec("any", Order, lambda payload, _: None))
    before = clock.now()
    with pytest.raises(TimeMachineError, match=r"cannot advance by \d+ ms at once"):
        clock.advance(datetime.timedelta.max)
    assert clock.now() - before < MINUTE
    with pytest.raises(TimeMachineError, match=r"cannot advance by \d+ ms at once"):
        clock.fire_due(until=datetime.datetime(9999, 12, 31, tzinfo=datetime.timezone.utc))


def test_timers_due_at_one_instant_on_several_shards_run_in_the_same_order_every_time(clock_for: ClockFor) -> None:
    orders = []
    for round_number in range(5):
        clock = clock_for(
            spec("a", Order, lambda payload, _: None),
            spec("b", Order, lambda payload, _: None),
            settings=TimersSettings(namespace=f"same-order-{round_number}", shards=4),
        )
        moment = clock.activate_at(clock.now() + MINUTE)
        for number in range(20):
            for topic in ("a", "b"):
                clock.harness.set_timer(topic, f"{topic}{number}", Order(order_id=number), activate_at=moment)
        report = clock.advance(2 * MINUTE)
        orders.append([(run.topic, run.timer_id) for run in report.ran])
    assert len(orders[0]) == 40
    assert all(order == orders[0] for order in orders), orders


def test_timers_the_original_library_wrote_fire_when_due(front: Front, clock_for: ClockFor) -> None:
    """Its timers (`topic--id` -> whole-second due time, payloads beside) are imported as the worker would."""
    fired: Recorder[int] = Recorder()
    clock = clock_for(spec("cancel", Order, lambda payload, _: fired.record(payload.order_id)))
    now_second = int(time.time())
    for order_id, due_second in ((1, now_second - 5), (2, now_second + 30 * 60)):
        front.raw.zadd("timers_timeline", {f"cancel--{order_id}": due_second})
        front.raw.hset("timers_payloads", f"cancel--{order_id}", Order(order_id=order_id).model_dump_json())

    assert clock.fire_due().ran_ids() == ["1"]
    assert clock.advance(29 * MINUTE).ran_ids() == []
    assert clock.advance(2 * MINUTE).ran_ids() == ["2"]
    assert fired.items == [1, 2]


def test_ids_with_control_characters_keep_one_line_per_timer_in_reports_and_messages(clock_for: ClockFor) -> None:
    clock = clock_for(spec("odd", Order, lambda payload, _: None), settings=TimersSettings(max_attempts=1))
    odd = "line\nbreak\x00\x1b[2J"
    clock.harness.set_timer("odd", odd, Order(order_id=1), MINUTE)
    with pytest.raises(AssertionError) as missing:
        clock.assert_scheduled("odd", "other")
    listing = str(missing.value).splitlines()
    assert len(listing) == 2, listing
    assert repr(odd) in listing[1]

    report = clock.advance(2 * MINUTE)
    assert report.ran_ids() == [odd]
    assert len(str(report).splitlines()) == 2, str(report)
    assert repr(odd) in str(report)


def test_advance_without_a_timedelta_is_a_typed_error(clock_for: ClockFor) -> None:
    clock = clock_for(spec("any", Order, lambda payload, _: None))
    for step in (None, 60, "1m"):
        with pytest.raises(TimeMachineError, match="timedelta of zero or more"):
            clock.advance(step)
