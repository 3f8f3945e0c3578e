"""Scenario 9: a failing handler is retried with backoff, then parked in the dead letters, never dropped."""

from __future__ import annotations

import datetime
from typing import Any

import pydantic
import pytest

from redis_timers import StoredPayloadError, TimersError, TimersSettings
from tests.harness import Front, Gate, Recorder, running, server_time_ms, spec
from tests.scenarios.models import Job, Other

NOW = datetime.timedelta(0)
FAST_RETRIES = TimersSettings(max_attempts=3, retry_backoff_seconds=0.05)


@pytest.mark.cluster
def test_retried_then_dead_lettered_with_its_error(front: Front) -> None:
    attempts: Recorder[int] = Recorder()

    def always_fails(payload: Job, context: dict[str, Any]) -> None:
        count = attempts.record(server_time_ms(front.raw))
        raise RuntimeError(f"always fails #{count}")

    timers = front.timers(spec("jobs", Job, always_fails), settings=FAST_RETRIES)
    timers.set_timer("jobs", "doomed", Job(n=1, note="payload kept"), NOW)
    with running(timers):
        attempts.wait_for(3)
        # stop() settles what is pending (the burial) before it returns.
    first, second, third = attempts.items
    assert second - first >= 50  # backoff 0.05 s after the first failure
    assert third - second >= 100  # doubled after the second

    (letter,) = timers.dead_letters()
    assert letter.topic == "jobs"
    assert letter.timer_id == "doomed"
    assert letter.attempts == 3
    assert "RuntimeError: always fails #3" in repr(letter)
    assert letter.payload_as(Job) == Job(n=1, note="payload kept")
    assert timers.get_timer("jobs", "doomed") is None
    assert len(attempts) == 3


def test_last_error_is_visible_between_attempts(front: Front) -> None:
    def fails(payload: Job, context: dict[str, Any]) -> None:
        raise ValueError("first failure")

    timers = front.timers(spec("jobs", Job, fails), settings=TimersSettings(max_attempts=3, retry_backoff_seconds=60))
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    timers.handle_ready_timers()
    info = timers.get_timer("jobs", "a")
    assert info is not None
    assert info.attempts == 1
    assert info.running is False
    assert info.last_error == "ValueError: first failure"
    assert info.due_at > datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=50)
    assert timers.dead_letters() == []


@pytest.mark.parametrize(("instance_limit", "handler_limit"), [(5, 1), (2, 4)])
def test_per_handler_max_attempts_overrides_the_instance(front: Front, instance_limit: int, handler_limit: int) -> None:
    attempts: Recorder[int] = Recorder()

    def fails(payload: Job, context: dict[str, Any]) -> None:
        attempts.record(payload.n)
        raise RuntimeError("nope")

    timers = front.timers(
        spec("jobs", Job, fails, max_attempts=handler_limit),
        settings=TimersSettings(max_attempts=instance_limit, retry_backoff_seconds=0.02),
    )
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    with running(timers):
        attempts.wait_for(handler_limit)
    (letter,) = timers.dead_letters()
    assert letter.attempts == handler_limit
    assert len(attempts) == handler_limit


def test_a_raising_handler_never_stops_the_worker(front: Front) -> None:
    good: Recorder[int] = Recorder()
    bad: Recorder[int] = Recorder()

    def failing(payload: Job, context: dict[str, Any]) -> None:
        bad.record(payload.n)
        raise KeyError("bad handler")

    timers = front.timers(
        spec("good", Job, lambda payload, context: good.record(payload.n)),
        spec("bad", Job, failing),
        settings=TimersSettings(max_attempts=2, retry_backoff_seconds=0.02),
    )
    for n in range(5):
        timers.set_timer("bad", f"b{n}", Job(n=n), NOW)
        timers.set_timer("good", f"g{n}", Job(n=n), NOW)
    with running(timers):
        good.wait_for(5)
        bad.wait_for(10)  # each bad timer tried twice
        timers.set_timer("good", "after", Job(n=99), NOW)
        assert good.wait_for(6)[-1] == 99
        assert timers.worker_running
    assert sorted(letter.timer_id for letter in timers.dead_letters()) == [f"b{n}" for n in range(5)]


@pytest.mark.cluster
def test_requeued_dead_letter_fires_again(front: Front) -> None:
    calls: Recorder[tuple[int, bool]] = Recorder()
    healed = Gate()

    def flaky(payload: Job, context: dict[str, Any]) -> None:
        calls.record((payload.n, healed.is_open))
        if not healed.is_open:
            raise RuntimeError("not yet")

    timers = front.timers(spec("jobs", Job, flaky), settings=TimersSettings(max_attempts=1))
    timers.set_timer("jobs", "a", Job(n=7), NOW)
    with running(timers):
        calls.wait_for(1)
    assert [letter.timer_id for letter in timers.dead_letters()] == ["a"]

    healed.open()
    with running(timers):
        assert timers.requeue_dead_letter("jobs", "a") is True
        assert calls.wait_for(2) == [(7, False), (7, True)]
    assert timers.dead_letters() == []
    assert timers.get_timer("jobs", "a") is None
    assert front.timer_data() == []


@pytest.mark.cluster
def test_payload_written_with_another_schema_is_dead_lettered_at_once(front: Front) -> None:
    calls: Recorder[Job] = Recorder()
    reader = front.timers(spec("jobs", Job, lambda payload, context: calls.record(payload)), settings=FAST_RETRIES)
    writer = front.timers(spec("jobs", Other, lambda payload, context: None))
    writer.set_timer("jobs", "mismatch", Other(text="not a job"), NOW)
    reader.set_timer("jobs", "fine", Job(n=1), NOW)
    with pytest.raises(StoredPayloadError):
        reader.get_timer("jobs", "mismatch")

    reader.handle_ready_timers()
    assert calls.items == [Job(n=1)]
    (letter,) = reader.dead_letters()
    assert letter.timer_id == "mismatch"
    assert letter.attempts == 1
    assert "Job" in letter.error
    assert letter.payload_as(Other) == Other(text="not a job")
    assert reader.get_timer("jobs", "mismatch") is None


@pytest.mark.parametrize("stored", ['{"n": "not a number"}', "not json at all", "", '{"note": "n is missing"}'])
def test_raw_invalid_payload_is_dead_lettered_at_once(front: Front, stored: str) -> None:
    calls: Recorder[Job] = Recorder()
    timers = front.timers(spec("jobs", Job, lambda payload, context: calls.record(payload)), settings=FAST_RETRIES)
    timers.set_timer("jobs", "corrupt", Job(n=1), NOW)
    front.raw.hset("{timers}:payloads:jobs", "corrupt", stored)

    timers.handle_ready_timers()
    assert calls.items == []
    (letter,) = timers.dead_letters()
    assert letter.timer_id == "corrupt"
    assert letter.attempts == 1
    assert letter.payload == stored
    assert timers.get_timer("jobs", "corrupt") is None


class HandlerAbort(BaseException):
    """Not an Exception: like SystemExit from sys.exit(), or a test framework's outcome exceptions."""


def test_a_handler_raising_a_base_exception_never_wedges_the_worker(front: Front) -> None:
    """Either run_forever ends with the exception, or the run counts as failed; never a silently stuck timer."""
    events: Recorder[str] = Recorder()

    def handler(payload: Job, context: dict[str, Any]) -> None:
        events.record(f"run {payload.n}")
        if payload.n == 0:
            raise HandlerAbort("abort")

    timers = front.timers(
        spec("jobs", Job, handler),
        settings=TimersSettings(max_attempts=1, lease_seconds=1, shutdown_grace_seconds=0.5),
    )
    timers.set_timer("jobs", "t0", Job(n=0), NOW)
    timers.start_worker(concurrency=1, on_exit=lambda: events.record("worker ended"))
    events.wait_for(1)
    timers.set_timer("jobs", "t1", Job(n=1), NOW)
    outcome = events.wait_until(lambda items: "run 1" in items or "worker ended" in items, timeout=5)

    if "worker ended" in outcome:  # the exception surfaced from run_forever
        with pytest.raises(BaseException) as raised:  # noqa: PT011 - a group or the exception itself
            timers.wait_worker()
        assert contains(raised.value, HandlerAbort), repr(raised.value)
        return
    timers.stop_worker()
    info = timers.get_timer("jobs", "t0")
    assert info is None or info.running is False, "t0 is still leased by a handler that is gone"


def contains(error: BaseException, kind: type[BaseException]) -> bool:
    """Whether `error` is a `kind`, or an exception group holding one (Python 3.10 has no builtin groups)."""
    if isinstance(error, kind):
        return True
    return any(contains(inner, kind) for inner in getattr(error, "exceptions", ()))


class AliasedPayload(pydantic.BaseModel):
    """camelCase on the wire, as FastAPI apps often declare."""

    order_id: int = pydantic.Field(alias="orderId")


class ComputedPayload(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    amount: int

    @pydantic.computed_field  # type: ignore[prop-decorator]
    @property
    def doubled(self) -> int:
        return self.amount * 2


@pytest.mark.parametrize(
    "payload",
    [AliasedPayload(orderId=5), ComputedPayload(amount=2)],
    ids=["alias", "computed-field"],
)
def test_a_payload_accepted_by_set_timer_reaches_its_handler(front: Front, payload: pydantic.BaseModel) -> None:
    """Either set_timer refuses the payload up front (writing nothing), or the handler gets it back intact."""
    calls: Recorder[pydantic.BaseModel] = Recorder()
    timers = front.timers(spec("jobs", type(payload), lambda received, context: calls.record(received)))
    try:
        timers.set_timer("jobs", "a", payload, NOW)
    except TimersError:
        assert front.all_keys() == []
        return
    timers.handle_ready_timers()
    assert timers.dead_letters() == []
    assert calls.items == [payload]


def test_a_timer_whose_payload_vanished_is_dead_lettered(front: Front) -> None:
    calls: Recorder[Job] = Recorder()
    timers = front.timers(spec("jobs", Job, lambda payload, context: calls.record(payload)))
    timers.set_timer("jobs", "gone", Job(n=1), NOW)
    timers.set_timer("jobs", "kept", Job(n=2), NOW)
    front.raw.hdel("{timers}:payloads:jobs", "gone")
    timers.handle_ready_timers()
    assert calls.items == [Job(n=2)]
    (letter,) = timers.dead_letters()
    assert letter.timer_id == "gone"
    assert "payload missing" in letter.error
    assert timers.get_timer("jobs", "gone") is None
