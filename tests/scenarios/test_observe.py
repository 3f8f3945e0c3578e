"""The observer hook (`Timers(observer=...)`) and the worker's log records, through both front ends."""

from __future__ import annotations

import contextvars
import datetime
import logging
import threading
from typing import Any

import pytest

from redis_timers import TimersSettings
from redis_timers.bulk import TimerSpec
from redis_timers.observe import ObservedRun, TimersObserver
from tests.harness import Front, Recorder, running, server_time_ms, spec, wait_until
from tests.scenarios.models import Job

NOW = datetime.timedelta(0)
FAST_RETRIES = TimersSettings(max_attempts=2, retry_backoff_seconds=0.02)
CURRENT_RUN: contextvars.ContextVar[str] = contextvars.ContextVar("current_run", default="")
"""Set by the observer's `run_started`, read by the handler: what a tracer's current span needs."""


class RecordingObserver(TimersObserver):
    def __init__(self) -> None:
        self.events: Recorder[tuple[Any, ...]] = Recorder()

    def scheduled(self, topic: str, timer_id: str) -> None:
        self.events.record(("scheduled", topic, timer_id))

    def run_started(self, run: ObservedRun) -> object:
        self.events.record(("started", run.timer_id, run.attempts, run.lateness_ms, threading.get_ident()))
        return CURRENT_RUN.set(run.timer_id)

    def run_ended(self, run: ObservedRun, started: object, error: BaseException | None) -> None:
        assert isinstance(started, contextvars.Token)
        CURRENT_RUN.reset(started)
        self.events.record(("ended", run.timer_id, run.attempts, None if error is None else str(error)))

    def fired(self, run: ObservedRun) -> None:
        self.events.record(("fired", run.timer_id, run.attempts))

    def retried(self, run: ObservedRun, error: str, delay_ms: int) -> None:
        self.events.record(("retried", run.timer_id, run.attempts, error))

    def dead_lettered(self, topic: str, timer_id: str, attempts: int, error: str) -> None:
        self.events.record(("dead_lettered", timer_id, attempts, error))

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [event[1:] for event in self.events.items if event[0] == kind]


def test_the_observer_is_told_what_is_scheduled_and_how_each_run_went(front: Front) -> None:
    observer = RecordingObserver()
    seen: Recorder[tuple[str, str, int]] = Recorder()

    def handle(job: Job, context: dict[str, Any]) -> None:
        seen.record((job.note, CURRENT_RUN.get(), threading.get_ident()))
        if job.note == "fail":
            raise RuntimeError("on purpose")

    timers = front.timers(spec("jobs", Job, handle), settings=FAST_RETRIES, observer=observer)
    assert timers.timers.observer is observer
    timers.set_timer("jobs", "ok", Job(n=1), NOW)
    timers.call("set_timer", "jobs", "ok", Job(n=1), NOW, mode="keep")  # kept, not written: not told
    timers.call("set_timers", [TimerSpec("jobs", "bad", Job(n=2, note="fail"), NOW)])
    past = datetime.datetime.fromtimestamp((server_time_ms(front.raw) - 2000) / 1000, tz=datetime.timezone.utc)
    timers.set_timer("jobs", "late", Job(n=3), activate_at=past)
    assert observer.of("scheduled") == [("jobs", "ok"), ("jobs", "bad"), ("jobs", "late")]

    with running(timers):
        observer.events.wait_until(lambda events: any(event[0] == "dead_lettered" for event in events))
        wait_until(lambda: len(observer.of("fired")) == 2)

    assert sorted(observer.of("fired")) == [("late", 1), ("ok", 1)]
    assert observer.of("retried") == [("bad", 1, "RuntimeError: on purpose")]
    assert observer.of("dead_lettered") == [("bad", 2, "RuntimeError: on purpose")]
    started = {
        (timer_id, attempts): (lateness, thread) for timer_id, attempts, lateness, thread in observer.of("started")
    }
    assert sorted(started) == [("bad", 1), ("bad", 2), ("late", 1), ("ok", 1)]
    # Lateness: from the due time in the claim's token to the reply's arrival, on the server's clock.
    assert all(lateness is not None and 0 <= lateness < 10_000 for lateness, _ in started.values())
    assert 2000 <= started["late", 1][0] < 12_000
    assert sorted(observer.of("ended")) == [
        ("bad", 1, "on purpose"),
        ("bad", 2, "on purpose"),
        ("late", 1, None),
        ("ok", 1, None),
    ]
    # run_started ran where the handler ran, and what it set was current in the handler.
    for note, current, thread in seen.items:
        timer_id = {"": None, "fail": "bad"}.get(note)
        assert current in ({timer_id} if timer_id else {"ok", "late"})
        assert any(thread == started_thread for _, started_thread in started.values())


def test_an_observer_that_raises_fails_nothing(front: Front, caplog: pytest.LogCaptureFixture) -> None:
    class Broken(TimersObserver):
        def scheduled(self, topic: str, timer_id: str) -> None:
            raise ValueError("scheduled is broken")

        def run_started(self, run: ObservedRun) -> object:
            raise ValueError("run_started is broken")

        def fired(self, run: ObservedRun) -> None:
            raise ValueError("fired is broken")

    done: Recorder[int] = Recorder()
    timers = front.timers(spec("jobs", Job, lambda job, context: done.record(job.n)), observer=Broken())
    with caplog.at_level(logging.WARNING, logger="redis_timers"), running(timers):
        timers.set_timer("jobs", "a", Job(n=1), NOW)
        assert done.wait_for(1) == [1]
        wait_until(
            lambda: (
                not front.raw.exists(front.keyspace_for("jobs", "a").payloads("jobs"))
                and "fired is broken" in caplog.text
            )
        )
    assert "scheduled is broken" in caplog.text
    assert "run_started is broken" in caplog.text


def test_observer_must_be_an_observer(front: Front) -> None:
    from redis_timers import SettingsError

    with pytest.raises(SettingsError, match="TimersObserver"):
        front.timers(observer=object())  # type: ignore[arg-type]


def test_run_logs_carry_fields_and_a_dead_letter_is_one_warning(front: Front, caplog: pytest.LogCaptureFixture) -> None:
    """Nothing per timer at INFO or above over a drain; a dead letter's one WARNING has its error and fields."""
    ran: Recorder[int] = Recorder()

    def handle(job: Job, context: dict[str, Any]) -> None:
        ran.record(job.n)
        if job.note == "fail":
            raise RuntimeError(f"job {job.n} failed")

    timers = front.timers(spec("jobs", Job, handle), settings=FAST_RETRIES)
    count = 500
    timers.call("set_timers", [TimerSpec("jobs", f"t{n}", Job(n=n), NOW) for n in range(count)])
    with caplog.at_level(logging.DEBUG, logger="redis_timers"):
        timers.handle_ready_timers()
    assert len(ran) == count
    assert [record for record in caplog.records if record.levelno >= logging.INFO] == []

    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="redis_timers"), running(timers):
        timers.set_timer("jobs", "doomed", Job(n=-1, note="fail"), NOW)
        wait_until(lambda: front.raw.hlen("{timers}:dead") == 1)
    failures = [record for record in caplog.records if getattr(record, "timer_id", None) == "doomed"]
    [dead] = [record for record in failures if "dead letters" in record.getMessage()]
    assert dead.levelno == logging.WARNING
    assert "RuntimeError: job -1 failed" in dead.getMessage()
    assert [record.levelno for record in caplog.records if "dead letters" in record.getMessage()] == [logging.WARNING]
    for attempt, record in enumerate(failures, start=1):
        fields = {name: getattr(record, name) for name in ("topic", "timer_id", "attempt")}
        assert fields == {"topic": "jobs", "timer_id": "doomed", "attempt": attempt}
        lateness = getattr(record, "lateness_ms")  # noqa: B009
        assert isinstance(lateness, float)
        assert 0 <= lateness < 10_000
    # The retry's record, then the dead letter's: both WARNINGs, each with the handler's traceback.
    assert [record.levelno for record in failures] == [logging.WARNING, logging.WARNING]
    assert all(record.exc_info is not None for record in failures)


def test_a_claim_dead_lettered_for_its_payload_is_one_warning_and_told(
    front: Front, caplog: pytest.LogCaptureFixture
) -> None:
    observer = RecordingObserver()
    timers = front.timers(spec("jobs", Job, lambda job, context: None), observer=observer)
    timers.set_timer("jobs", "broken", Job(n=1), NOW)
    front.raw.hset(front.keyspace_for("jobs", "broken").payloads("jobs"), "broken", '{"n": "not a number"}')
    with caplog.at_level(logging.DEBUG, logger="redis_timers"):
        timers.handle_ready_timers()
    [record] = [record for record in caplog.records if "dead letters" in record.getMessage()]
    assert record.levelno == logging.WARNING
    assert "does not validate against Job" in record.getMessage()
    assert (getattr(record, "topic"), getattr(record, "timer_id"), getattr(record, "attempt")) == ("jobs", "broken", 1)  # noqa: B009
    [(timer_id, attempts, error)] = observer.of("dead_lettered")
    assert (timer_id, attempts) == ("broken", 1)
    assert "does not validate against Job" in error


def test_a_timer_whose_payload_vanished_is_one_warning_and_told(front: Front, caplog: pytest.LogCaptureFixture) -> None:
    """The claim script buries it ("payload missing"); the worker still logs its one WARNING and tells the observer."""
    observer = RecordingObserver()
    ran: Recorder[int] = Recorder()
    timers = front.timers(spec("jobs", Job, lambda job, context: ran.record(job.n)), observer=observer)
    timers.set_timer("jobs", "gone", Job(n=1), NOW)
    timers.set_timer("jobs", "kept", Job(n=2), NOW)
    front.raw.hdel(front.keyspace_for("jobs", "gone").payloads("jobs"), "gone")
    with caplog.at_level(logging.DEBUG, logger="redis_timers"):
        timers.handle_ready_timers()
    assert ran.items == [2]
    [record] = [record for record in caplog.records if "dead letters" in record.getMessage()]
    assert record.levelno == logging.WARNING
    assert "payload missing" in record.getMessage()
    assert (getattr(record, "topic"), getattr(record, "timer_id")) == ("jobs", "gone")  # noqa: B009
    assert observer.of("dead_lettered") == [("gone", 0, "payload missing")]


def test_a_poison_timer_is_one_warning_and_told(front: Front, caplog: pytest.LogCaptureFixture) -> None:
    """Claimed more times than its attempts allow (its workers kept dying): one WARNING, the observer told."""
    observer = RecordingObserver()
    ran: Recorder[int] = Recorder()
    timers = front.timers(
        spec("jobs", Job, lambda job, context: ran.record(job.n)), settings=FAST_RETRIES, observer=observer
    )
    timers.set_timer("jobs", "poison", Job(n=1), NOW)
    # Two claims already counted (FAST_RETRIES allows two attempts), both handed back without finishing.
    front.raw.hset(front.keyspace_for("jobs", "poison").payloads("jobs"), "poison", '2:|{"n":1,"note":""}')
    with caplog.at_level(logging.DEBUG, logger="redis_timers"):
        timers.handle_ready_timers()
    assert ran.items == []
    [record] = [record for record in caplog.records if "dead letters" in record.getMessage()]
    assert record.levelno == logging.WARNING
    assert "claimed 3 times without finishing" in record.getMessage()
    assert (getattr(record, "timer_id"), getattr(record, "attempt")) == ("poison", 3)  # noqa: B009
    [(timer_id, attempts, error)] = observer.of("dead_lettered")
    assert (timer_id, attempts) == ("poison", 3)
    assert error.startswith("claimed 3 times without finishing")
