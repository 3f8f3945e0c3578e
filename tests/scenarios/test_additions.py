"""Scenario 2: what we added to the seed's interface: `activate_at`, `get_timer`, dead letters."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from redis_timers import ActivationError, DeadLetter, InvalidTimerError, NaiveDatetimeError, TimerInfo
from tests.harness import Front, Recorder, datetime_to_ms, ms_to_datetime, server_time_ms, spec
from tests.scenarios.models import Job

UTC = datetime.timezone.utc
NOW = datetime.timedelta(0)


def test_activate_at_an_aware_datetime(front: Front) -> None:
    calls: Recorder[int] = Recorder()
    timers = front.timers(spec("jobs", Job, lambda payload, context: calls.record(payload.n)))
    now = ms_to_datetime(server_time_ms(front.raw))
    plus_two = datetime.timezone(datetime.timedelta(hours=2))

    timers.set_timer("jobs", "past", Job(n=1), activate_at=now - datetime.timedelta(seconds=1))
    timers.set_timer(
        "jobs", "other-zone", Job(n=2), activate_at=(now - datetime.timedelta(seconds=1)).astimezone(plus_two)
    )
    timers.set_timer("jobs", "future", Job(n=3), activate_at=now + datetime.timedelta(hours=1))
    timers.handle_ready_timers()
    assert sorted(calls.items) == [1, 2]

    info = timers.get_timer("jobs", "future")
    assert info is not None
    assert info.due_at == now + datetime.timedelta(hours=1)


def test_activate_at_rounds_up_to_the_next_millisecond(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, lambda payload, context: None))
    base = datetime.datetime(2100, 1, 1, tzinfo=UTC)
    timers.set_timer("jobs", "exact", Job(n=1), activate_at=base)
    timers.set_timer("jobs", "fraction", Job(n=2), activate_at=base + datetime.timedelta(microseconds=1))
    exact, fraction = timers.get_timer("jobs", "exact"), timers.get_timer("jobs", "fraction")
    assert exact is not None
    assert fraction is not None
    assert exact.due_at == base
    assert fraction.due_at == base + datetime.timedelta(milliseconds=1)  # never earlier than asked


@pytest.mark.cluster
def test_naive_datetime_is_refused(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, lambda payload, context: None))
    with pytest.raises(NaiveDatetimeError):
        timers.set_timer("jobs", "a", Job(n=1), activate_at=datetime.datetime.now())
    with pytest.raises(InvalidTimerError):
        timers.set_timer("jobs", "a", Job(n=1), activate_at=datetime.datetime(2100, 1, 1))
    assert front.all_keys() == []


def test_exactly_one_of_activation_period_and_activate_at(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, lambda payload, context: None))
    with pytest.raises(ActivationError):
        timers.set_timer("jobs", "a", Job(n=1))
    with pytest.raises(ActivationError):
        timers.set_timer("jobs", "a", Job(n=1), NOW, activate_at=datetime.datetime.now(UTC))
    with pytest.raises(ActivationError):
        timers.set_timer("jobs", "a", Job(n=1), datetime.timedelta(seconds=-1))
    with pytest.raises(ValueError, match="activation_period"):
        timers.set_timer("jobs", "a", Job(n=1), 5)
    assert front.all_keys() == []


@pytest.mark.parametrize("decode_responses", [True, False])
def test_get_timer(front: Front, decode_responses: bool) -> None:
    infos: Recorder[TimerInfo | None] = Recorder()
    gate = front.gate()
    timers = front.timers(decode_responses=decode_responses)

    def handler(payload: Job, context: dict[str, Any]) -> None:
        infos.record(timers.get_timer("jobs", "a"))  # from inside the run: it is leased
        gate.wait()

    timers.include_router(front.router(spec("jobs", Job, handler, blocking=True)))
    assert timers.get_timer("jobs", "a") is None

    due = datetime.datetime(2100, 5, 17, 12, 30, 15, 250_000, tzinfo=UTC)
    timers.set_timer("jobs", "a", Job(n=7, note="x"), activate_at=due)
    assert timers.get_timer("jobs", "a") == TimerInfo(
        topic="jobs",
        timer_id="a",
        due_at=due,
        payload=Job(n=7, note="x"),
        attempts=0,
        running=False,
        last_error=None,
    )

    before_ms = server_time_ms(front.raw)
    timers.set_timer("jobs", "a", Job(n=8), NOW)
    info = timers.get_timer("jobs", "a")
    assert info is not None
    # Due at the call's instant rounded up to the millisecond: at most the clock read after it, rounded up.
    assert before_ms <= datetime_to_ms(info.due_at) <= server_time_ms(front.raw) + 1
    assert info.payload == Job(n=8)

    lease_seconds = 30
    pass_done = timers.background("handle_ready_timers")
    (running,) = infos.wait_for(1)
    assert running is not None
    assert running.running is True
    assert running.attempts == 1
    assert running.payload == Job(n=8)
    # While running, due_at is still the due time; the lease's end is apart.
    assert running.due_at == info.due_at
    assert running.lease_expires_at is not None
    assert datetime_to_ms(running.lease_expires_at) >= before_ms + lease_seconds * 1000
    gate.open()
    pass_done.result(timeout=20)
    assert timers.get_timer("jobs", "a") is None


@pytest.mark.parametrize("decode_responses", [True, False])
@pytest.mark.cluster
def test_dead_letters_api(front: Front, decode_responses: bool) -> None:
    from redis_timers import TimersSettings

    calls: Recorder[int] = Recorder()

    def handler(payload: Job, context: dict[str, Any]) -> None:
        calls.record(payload.n)
        if payload.note == "fail":
            raise ValueError(f"cannot handle {payload.n}")

    timers = front.timers(
        spec("jobs", Job, handler),
        settings=TimersSettings(max_attempts=1),
        decode_responses=decode_responses,
    )
    assert timers.dead_letters() == []
    assert timers.purge_dead_letters() == 0
    assert timers.requeue_dead_letter("jobs", "missing") is False

    before_ms = server_time_ms(front.raw)
    timers.set_timer("jobs", "a", Job(n=1, note="fail"), NOW)
    timers.set_timer("jobs", "b", Job(n=2, note="fail"), NOW)
    timers.set_timer("jobs", "ok", Job(n=3), NOW)
    timers.handle_ready_timers()
    assert sorted(calls.items) == [1, 2, 3]

    letters = timers.dead_letters()
    assert [(letter.topic, letter.timer_id) for letter in sorted(letters, key=lambda x: x.timer_id)] == [
        ("jobs", "a"),
        ("jobs", "b"),
    ]
    by_id = {letter.timer_id: letter for letter in letters}
    letter = by_id["a"]
    assert isinstance(letter, DeadLetter)
    assert letter.attempts == 1
    assert letter.error == "ValueError: cannot handle 1"
    assert letter.payload_as(Job) == Job(n=1, note="fail")
    assert before_ms <= datetime_to_ms(letter.failed_at) <= server_time_ms(front.raw)
    assert timers.get_timer("jobs", "a") is None  # parked, no longer scheduled

    # Requeue: scheduled again due now, with the parked payload; the dead letter is gone.
    assert timers.requeue_dead_letter("jobs", "a") is True
    assert timers.requeue_dead_letter("jobs", "a") is False
    requeued = timers.get_timer("jobs", "a")
    assert requeued is not None
    assert requeued.payload == Job(n=1, note="fail")
    assert requeued.attempts == 0
    assert [letter.timer_id for letter in timers.dead_letters()] == ["b"]

    timers.handle_ready_timers()  # fails again, back to the dead letters
    assert sorted(letter.timer_id for letter in timers.dead_letters()) == ["a", "b"]

    assert timers.purge_dead_letters() == 2
    assert timers.dead_letters() == []
    assert timers.purge_dead_letters() == 0
    assert front.timer_data() == []
