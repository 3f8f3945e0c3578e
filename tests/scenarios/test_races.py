"""Scenario 4: a reschedule or removal made while the timer's handler runs is kept."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from redis_timers import TimersSettings
from tests.harness import Front, Gate, Recorder, running, spec
from tests.scenarios.models import Job

NOW = datetime.timedelta(0)
LATER = datetime.timedelta(hours=1)


def blocking_first_run(gate: Gate, started: Recorder[Job]) -> Any:
    """A handler that records each run and holds the first one until `gate` opens."""

    def handler(payload: Job, context: dict[str, Any]) -> None:
        if started.record(payload) == 1:
            assert gate.wait(), "the test never opened the gate"

    return handler


@pytest.mark.cluster
def test_reschedule_during_handler_is_kept(front: Front) -> None:
    gate, started = front.gate(), Recorder[Job]()
    timers = front.timers(spec("jobs", Job, blocking_first_run(gate, started), blocking=True))
    timers.set_timer("jobs", "a", Job(n=1), NOW)

    single_pass = timers.background("handle_ready_timers")
    started.wait_for(1)
    timers.set_timer("jobs", "a", Job(n=2, note="rescheduled"), LATER)
    gate.open()
    single_pass.result(timeout=20)

    # Finishing the old run did not delete the new schedule.
    info = timers.get_timer("jobs", "a")
    assert info is not None
    assert info.payload == Job(n=2, note="rescheduled")
    assert info.running is False
    assert info.attempts == 0
    assert info.due_at > datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=50)

    timers.set_timer("jobs", "a", Job(n=3, note="due now"), NOW)
    timers.handle_ready_timers()
    assert started.items == [Job(n=1), Job(n=3, note="due now")]
    assert timers.get_timer("jobs", "a") is None


def test_reschedule_due_now_during_handler_fires_again_with_the_new_payload(front: Front) -> None:
    gate, started = front.gate(), Recorder[Job]()
    timers = front.timers(spec("jobs", Job, blocking_first_run(gate, started), blocking=True))
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    with running(timers):
        started.wait_for(1)
        timers.set_timer("jobs", "a", Job(n=2, note="new"), NOW)
        # The new schedule may start while the old run still blocks; either way it runs with the new payload.
        gate.open()
        assert started.wait_for(2) == [Job(n=1), Job(n=2, note="new")]
        wait_gone(front, timers, "a")
    assert started.items == [Job(n=1), Job(n=2, note="new")]


def test_remove_during_handler_is_kept(front: Front) -> None:
    gate, started = front.gate(), Recorder[Job]()
    timers = front.timers(spec("jobs", Job, blocking_first_run(gate, started), blocking=True))
    timers.set_timer("jobs", "a", Job(n=1), NOW)

    single_pass = timers.background("handle_ready_timers")
    started.wait_for(1)
    assert timers.remove_timer("jobs", "a") is True
    gate.open()
    single_pass.result(timeout=20)

    assert timers.get_timer("jobs", "a") is None
    timers.handle_ready_timers()
    assert started.items == [Job(n=1)]
    assert front.timer_data() == []


@pytest.mark.cluster
def test_remove_during_handler_with_run_forever(front: Front) -> None:
    gate, started = front.gate(), Recorder[Job]()
    timers = front.timers(spec("jobs", Job, blocking_first_run(gate, started), blocking=True))
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    with running(timers):
        started.wait_for(1)
        assert timers.remove_timer("jobs", "a") is True
        gate.open()
    # stop() waited for the run to finish and settle: it must not have been re-run or resurrected.
    assert started.items == [Job(n=1)]
    assert timers.get_timer("jobs", "a") is None
    assert front.timer_data() == []


def wait_gone(front: Front, timers: Any, timer_id: str) -> None:
    from tests.harness import wait_until

    # The ack follows the handler's return by one round trip; there is no event for it outside the library.
    wait_until(lambda: timers.get_timer("jobs", timer_id) is None, timeout=10)


def test_a_handler_that_reschedules_its_own_timer_keeps_the_new_schedule(front: Front) -> None:
    """The recurring-timer pattern: each run schedules the next one for the same id."""
    runs: Recorder[int] = Recorder()
    instance: list[Any] = []

    def recurring(payload: Job, context: dict[str, Any]) -> None:
        runs.record(payload.n)
        if payload.n < 4:
            instance[0].set_timer("jobs", "tick", Job(n=payload.n + 1), datetime.timedelta(milliseconds=20))

    timers = front.timers(spec("jobs", Job, recurring, blocking=True))
    instance.append(timers)
    timers.set_timer("jobs", "tick", Job(n=0), NOW)
    with running(timers):
        assert runs.wait_for(5) == [0, 1, 2, 3, 4]
        wait_gone(front, timers, "tick")
    assert runs.items == [0, 1, 2, 3, 4]


def test_a_handler_that_removes_its_own_timer(front: Front) -> None:
    removed: Recorder[bool] = Recorder()
    instance: list[Any] = []

    def remove_self(payload: Job, context: dict[str, Any]) -> None:
        removed.record(instance[0].remove_timer("jobs", "self"))

    timers = front.timers(spec("jobs", Job, remove_self, blocking=True))
    instance.append(timers)
    timers.set_timer("jobs", "self", Job(n=0), NOW)
    timers.handle_ready_timers()
    assert removed.items == [True]  # it was still stored (leased) while running
    timers.handle_ready_timers()
    assert removed.items == [True]
    assert front.timer_data() == []


def failing_first_run(gate: Gate, started: Recorder[Job]) -> Any:
    """Records each run; the first one waits for `gate`, then raises."""

    def handler(payload: Job, context: dict[str, Any]) -> None:
        if started.record(payload) == 1:
            assert gate.wait(), "the test never opened the gate"
            raise RuntimeError("first run fails")

    return handler


@pytest.mark.parametrize("max_attempts", [1, 3], ids=["then-dead", "then-retry"])
def test_reschedule_during_a_failing_handler_is_kept(front: Front, max_attempts: int) -> None:
    """The failed run's retry or burial must not touch the schedule made while it ran."""
    gate, started = front.gate(), Recorder[Job]()
    timers = front.timers(
        spec("jobs", Job, failing_first_run(gate, started), blocking=True),
        settings=TimersSettings(max_attempts=max_attempts, retry_backoff_seconds=0.01),
    )
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    single_pass = timers.background("handle_ready_timers")
    started.wait_for(1)
    timers.set_timer("jobs", "a", Job(n=2), LATER)
    gate.open()
    single_pass.result(timeout=20)

    info = timers.get_timer("jobs", "a")
    assert info is not None
    assert info.payload == Job(n=2)
    assert info.attempts == 0
    assert info.last_error is None
    assert info.due_at > datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=50)
    assert timers.dead_letters() == []


def test_remove_during_a_failing_handler_is_kept(front: Front) -> None:
    gate, started = front.gate(), Recorder[Job]()
    timers = front.timers(
        spec("jobs", Job, failing_first_run(gate, started), blocking=True),
        settings=TimersSettings(max_attempts=1),
    )
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    single_pass = timers.background("handle_ready_timers")
    started.wait_for(1)
    assert timers.remove_timer("jobs", "a") is True
    gate.open()
    single_pass.result(timeout=20)
    assert timers.get_timer("jobs", "a") is None
    assert timers.dead_letters() == []
    assert front.timer_data() == []


@pytest.mark.cluster
def test_lease_renewals_never_move_a_timer_rescheduled_during_its_run(front: Front) -> None:
    hold, started, finished = front.gate(), Recorder[Job](), Recorder[Job]()

    def slow(payload: Job, context: dict[str, Any]) -> None:
        started.record(payload)
        if payload.n == 1:
            hold.wait(timeout=1.6)  # never opened: several renewals of a 1 s lease happen meanwhile
        finished.record(payload)

    timers = front.timers(spec("jobs", Job, slow, blocking=True), settings=TimersSettings(lease_seconds=1))
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    far = datetime.datetime(2100, 1, 1, tzinfo=datetime.timezone.utc)
    with running(timers):
        started.wait_for(1)
        timers.set_timer("jobs", "a", Job(n=2), activate_at=far)
        finished.wait_for(1, timeout=20)
    info = timers.get_timer("jobs", "a")
    assert info is not None
    assert info.due_at == far
    assert info.payload == Job(n=2)
    assert info.running is False
    assert started.items == [Job(n=1)]
