"""Time travel on a real server: `advance` / `fire_due` fire what is due, in due order, handlers inline."""

from __future__ import annotations

import datetime
import functools
import threading
import time
from collections.abc import Callable
from typing import Any

import pydantic
import pytest

from redis_timers import TimersSettings
from redis_timers.engine import Cycle, Maintain, Wait
from redis_timers.testing import AsyncTimeMachine, TimeMachine, TimeMachineError
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


def test_a_chain_of_reminders_fires_within_one_advance_interleaved_in_due_order(clock_for: ClockFor) -> None:
    """Each reminder's handler sets the next, 10 minutes on (3 links per chain); two chains 5 minutes apart."""
    holder: list[BlockingClock] = []

    def remind(payload: Reminder, _: dict[str, Any]) -> None:
        if payload.number < 3:
            nxt = Reminder(user=payload.user, number=payload.number + 1)
            holder[0].harness.set_timer(f"remind-{payload.user}", payload.user, nxt, 10 * MINUTE)

    clock = clock_for(
        spec("remind-ann", Reminder, remind, blocking=True), spec("remind-bob", Reminder, remind, blocking=True)
    )
    holder.append(clock)
    start = clock.now()
    clock.harness.set_timer("remind-ann", "ann", Reminder(user="ann", number=1), 10 * MINUTE)
    clock.harness.set_timer("remind-bob", "bob", Reminder(user="bob", number=1), 15 * MINUTE)

    report = clock.advance(60 * MINUTE)

    assert [(run.timer_id, run.payload.number) for run in report.ran] == [
        ("ann", 1),
        ("bob", 1),
        ("ann", 2),
        ("bob", 2),
        ("ann", 3),
        ("bob", 3),
    ]
    offsets = [(run.due_at - start) // MINUTE for run in report.ran]
    assert offsets == [10, 15, 20, 25, 30, 35]  # each link due 10 virtual minutes after the one before
    assert [run.fired_at for run in report.ran] == sorted(run.fired_at for run in report.ran)
    assert [(item.timer_id, item.retry) for item in report.rescheduled] == [
        ("ann", False),
        ("bob", False),
        ("ann", False),
        ("bob", False),
    ]
    assert clock.scheduled() == []
    assert report.end - start >= 60 * MINUTE


def test_retries_with_backoff_then_dead_letter_within_one_advance(clock_for: ClockFor) -> None:
    def always_fails(payload: Order, _: dict[str, Any]) -> None:
        raise RuntimeError(f"payment service down for {payload.order_id}")

    settings = TimersSettings(retry_backoff_seconds=60.0, retry_backoff_max_seconds=3600.0)
    clock = clock_for(spec("charge", Order, always_fails, max_attempts=3), settings=settings)
    clock.harness.set_timer("charge", "1", Order(order_id=1), MINUTE)

    report = clock.advance(10 * MINUTE)

    assert [(run.attempt, run.outcome) for run in report.ran] == [(1, "retry"), (2, "retry"), (3, "dead")]
    assert all(run.error == "RuntimeError: payment service down for 1" for run in report.ran)
    assert report.failed == report.ran
    first, second, third = (run.due_at for run in report.ran)
    # Backoff: 60 s, then 120 s, each up to a quarter longer (jitter), never shorter.
    assert datetime.timedelta(seconds=60) <= second - first <= datetime.timedelta(seconds=75)
    assert datetime.timedelta(seconds=120) <= third - second <= datetime.timedelta(seconds=150)
    assert [(item.timer_id, item.retry, item.due_at) for item in report.rescheduled] == [
        ("1", True, second),
        ("1", True, third),
    ]
    assert [(dead.topic, dead.timer_id, dead.attempts) for dead in report.dead_lettered] == [("charge", "1", 3)]
    assert report.dead_lettered[0].failed_at >= third
    dead = clock.assert_dead_letter("charge", "1", error="payment service down", attempts=3)
    assert dead.failed_at == report.dead_lettered[0].failed_at  # virtual, read back through the helper
    clock.assert_not_scheduled("charge", "1")


def test_a_retry_that_succeeds_and_one_past_the_window_stays_scheduled(clock_for: ClockFor) -> None:
    calls: Recorder[int] = Recorder()

    def flaky(payload: Order, _: dict[str, Any]) -> None:
        if calls.record(payload.order_id) < 2:
            raise ValueError("try again")

    settings = TimersSettings(retry_backoff_seconds=300.0)
    clock = clock_for(spec("flaky", Order, flaky), settings=settings)
    clock.harness.set_timer("flaky", "a", Order(order_id=1), MINUTE)

    first = clock.advance(2 * MINUTE)
    assert [(run.attempt, run.outcome) for run in first.ran] == [(1, "retry")]
    retry = clock.assert_scheduled("flaky", "a")
    assert retry.attempts == 1
    assert retry.last_error == "ValueError: try again"
    assert retry.due_at == first.rescheduled[0].due_at

    second = clock.fire_due(until=retry.due_at)  # exactly its due time: due "up to that instant" includes it
    assert [(run.attempt, run.outcome, run.due_at) for run in second.ran] == [(2, "done", retry.due_at)]
    clock.assert_not_scheduled("flaky", "a")
    assert clock.dead_letters() == []


def test_activate_at_computed_from_the_helpers_now(clock_for: ClockFor) -> None:
    fired: Recorder[int] = Recorder()
    clock = clock_for(spec("at", Order, lambda payload, _: fired.record(payload.order_id)))
    clock.advance(datetime.timedelta(hours=5))
    due = clock.now() + 10 * MINUTE

    clock.harness.set_timer("at", "x", Order(order_id=3), activate_at=clock.activate_at(due))

    clock.assert_scheduled("at", "x", due_at=due)
    assert clock.advance(10 * MINUTE - datetime.timedelta(seconds=1)).ran == []
    report = clock.advance(datetime.timedelta(seconds=1))
    assert [(run.timer_id, run.due_at) for run in report.ran] == [("x", due)]
    assert fired.items == [3]


def test_a_handler_longer_than_its_lease_runs_once_while_virtual_time_stands_still(clock_for: ClockFor) -> None:
    """The worker renews the lease in real time, as in production; the helper moves nothing during a pass."""
    runs: Recorder[int] = Recorder()

    def slow(payload: Order, _: dict[str, Any]) -> None:
        runs.record(payload.order_id)
        threading.Event().wait(1.2)  # the work itself: longer than the lease

    clock = clock_for(spec("slow", Order, slow, blocking=True), settings=TimersSettings(lease_seconds=1))
    clock.harness.set_timer("slow", "s", Order(order_id=5), MINUTE)
    before = clock.now()

    report = clock.advance(2 * MINUTE)

    assert [(run.timer_id, run.attempt, run.outcome) for run in report.ran] == [("s", 1, "done")]
    assert runs.items == [5]
    assert report.dead_lettered == []
    clock.assert_not_scheduled("slow", "s")
    assert clock.now() - before < 2 * MINUTE + datetime.timedelta(seconds=30)


def test_several_shards_move_together(clock_for: ClockFor) -> None:
    fired: Recorder[str] = Recorder()
    clock = clock_for(
        spec("sharded", Order, lambda payload, _: fired.record(str(payload.order_id))),
        settings=TimersSettings(namespace="moved", shards=3),
    )
    for number in range(6):
        clock.harness.set_timer("sharded", str(number), Order(order_id=number), (number + 1) * MINUTE)

    report = clock.advance(10 * MINUTE)

    assert report.ran_ids() == ["0", "1", "2", "3", "4", "5"]
    assert fired.items == ["0", "1", "2", "3", "4", "5"]


def test_bad_requests_raise_typed_errors(clock_for: ClockFor) -> None:
    clock = clock_for(spec("any", Order, lambda payload, _: None))
    with pytest.raises(TimeMachineError, match="timedelta of zero or more"):
        clock.advance(-MINUTE)
    with pytest.raises(TimeMachineError, match="timezone-aware"):
        clock.fire_due(until=datetime.datetime(2030, 1, 1))
    with pytest.raises(TimeMachineError, match="cannot go back in time"):
        clock.fire_due(until=clock.now() - MINUTE)
    with pytest.raises(TimeMachineError, match="timezone-aware"):
        clock.activate_at(datetime.datetime(2030, 1, 1))


def test_assertion_failures_say_what_is_scheduled_instead(clock_for: ClockFor) -> None:
    clock = clock_for(spec("cancel", Order, lambda payload, _: None))
    due = clock.harness.set_timer("cancel", "1", Order(order_id=1), 30 * MINUTE)
    virtual_due = due + datetime.timedelta(milliseconds=clock.offset_ms)

    with pytest.raises(AssertionError) as missing:
        clock.assert_scheduled("cancel", "2")
    assert str(missing.value) == (
        "expected timer 'cancel'/'2' to be scheduled, but it is not. Scheduled for 'cancel':\n"
        f'  cancel/1 due {virtual_due.isoformat()}, attempts 0: {{"order_id":1}}'
    )
    with pytest.raises(AssertionError) as wrong_due:
        clock.assert_scheduled("cancel", "1", due_at=virtual_due - MINUTE)
    assert str(wrong_due.value) == (
        f"timer 'cancel'/'1' is due at {virtual_due.isoformat()}, expected {(virtual_due - MINUTE).isoformat()}"
        " (0:01:00 late)"
    )
    with pytest.raises(AssertionError) as wrong_payload:
        clock.assert_scheduled("cancel", "1", payload=Order(order_id=9))
    assert str(wrong_payload.value) == "timer 'cancel'/'1' has payload {\"order_id\":1}, expected {\"order_id\":9}"
    with pytest.raises(AssertionError) as present:
        clock.assert_not_scheduled("cancel", "1")
    assert str(present.value).startswith("expected no timer 'cancel'/'1', but one is scheduled: cancel/1 due ")
    with pytest.raises(AssertionError) as no_dead:
        clock.assert_dead_letter("cancel", "1")
    assert str(no_dead.value) == "expected a dead letter 'cancel'/'1'; the dead letters are:\n  (none)"
    clock.assert_scheduled("cancel", "1", due_at=virtual_due, payload='{"order_id": 1}')


def claim_and_abandon(clock: BlockingClock) -> int:
    """Claim what is due with the production engine and never settle it, as a worker that dies mid-handler."""
    timers = clock.harness.timers
    engine = timers._new_engine(single_pass=True)
    execute = timers._driver.execute
    drive = timers._driver.drive
    if clock.harness.front.is_async:
        portal = clock.harness.front.portal
        execute = functools.partial(portal.call, execute)
        drive = functools.partial(portal.call, drive)
    while True:
        step = engine.next_step(time.monotonic())
        if isinstance(step, Maintain):
            engine.maintenance_done(drive(step.flow))
        elif isinstance(step, Cycle):
            sent = time.monotonic()
            runs = engine.cycle_succeeded(execute(step.call), sent, time.monotonic())
            if runs:
                return len(runs)
        elif isinstance(step, Wait):
            time.sleep(step.seconds)  # as the front ends do: the engine asks to wait (for the next millisecond)
        else:
            raise AssertionError(f"nothing was claimed: {step!r}")


def test_a_lease_left_by_a_dead_worker_runs_out_in_virtual_time(clock_for: ClockFor) -> None:
    fired: Recorder[int] = Recorder()
    clock = clock_for(spec("leased", Order, lambda payload, _: fired.record(payload.order_id)))
    clock.harness.set_timer("leased", "l", Order(order_id=8), datetime.timedelta(0))
    assert claim_and_abandon(clock) == 1
    held = clock.assert_scheduled("leased", "l")
    assert held.running
    assert held.lease_expires_at is not None

    assert clock.fire_due().ran == []  # its lease (30 s) holds: nothing is due
    report = clock.advance(datetime.timedelta(seconds=31))

    assert [(run.timer_id, run.attempt, run.outcome) for run in report.ran] == [("l", 2, "done")]
    assert report.ran[0].fired_at >= held.lease_expires_at
    assert fired.items == [8]


def test_advancing_by_the_delay_right_after_set_timer_reaches_its_due_time(clock_for: ClockFor) -> None:
    """Within the millisecond of the call too: set_timer counts from the server's clock rounded up, as does now()."""
    clock = clock_for(spec("soon", Order, lambda payload, _: None))
    for number in range(20):
        clock.harness.set_timer("soon", str(number), Order(order_id=number), 30 * MINUTE)
        assert clock.advance(30 * MINUTE).ran_ids() == [str(number)]


def test_handlers_that_keep_setting_timers_due_at_once_end_with_a_typed_error(front: Front) -> None:
    holder: list[Any] = []

    def again(payload: Order, _: dict[str, Any]) -> None:
        holder[0].set_timer("loop", "x", payload, datetime.timedelta(0))

    harness = front.timers(spec("loop", Order, again, blocking=True))
    holder.append(harness)
    machine_type = AsyncTimeMachine if front.is_async else TimeMachine
    clock = BlockingClock(harness, machine_type(harness.timers, max_passes=5))
    harness.set_timer("loop", "x", Order(order_id=1), MINUTE)
    with pytest.raises(TimeMachineError, match="still firing after 5 worker passes"):
        clock.advance(2 * MINUTE)
    with pytest.raises(TimeMachineError, match="max_passes must be an int >= 1"):
        TimeMachine(harness.timers, max_passes=0)


def retry_due_times(clock: BlockingClock) -> list[datetime.timedelta]:
    clock.harness.set_timer("fails", "r", Order(order_id=1), MINUTE)
    report = clock.advance(datetime.timedelta(hours=1))
    return [run.due_at - report.ran[0].due_at for run in report.ran]


def test_the_seed_makes_retry_due_times_repeat(front: Front) -> None:
    def fails(payload: Order, _: dict[str, Any]) -> None:
        raise RuntimeError("no")

    settings = TimersSettings(retry_backoff_seconds=60.0, max_attempts=4)
    times = []
    for _ in range(2):
        harness = front.timers(spec("fails", Order, fails), settings=settings)
        machine_type = AsyncTimeMachine if front.is_async else TimeMachine
        times.append(retry_due_times(BlockingClock(harness, machine_type(harness.timers, seed=7))))
        harness.call("purge_dead_letters")
    assert len(times[0]) == len(times[1]) == 4
    # The same jitter (up to 15 s here); the due times differ only by the real milliseconds the runs took.
    assert all(abs(first - second) < datetime.timedelta(seconds=1) for first, second in zip(*times)), times
