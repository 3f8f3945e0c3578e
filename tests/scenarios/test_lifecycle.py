"""Scenarios 12 and 13: sharing clients, and stopping workers (gracefully, or past the grace period)."""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from typing import Any

import pytest

from redis_timers import Router, TimersSettings
from tests.harness import Front, Recorder, TimersHarness, listener_threads, running, spec, subscribers, wait_until
from tests.scenarios.models import Job

NOW = datetime.timedelta(0)
LATER = datetime.timedelta(hours=1)


# -- scenario 12: clients ---------------------------------------------------------------------


def test_one_client_shared_by_many_threads_or_tasks(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, lambda payload, context: None))
    total = 1000
    items = [("jobs", f"t{n}", Job(n=n, note="x" * (n % 50)), LATER) for n in range(total)]
    # Sync: 8 threads share one instance and its client; async: 50 tasks share them on one loop.
    timers.set_timers_concurrently(items, parallelism=8 if not front.is_async else 50)
    assert front.raw.zcard("{timers}:timeline:jobs") == total
    assert front.raw.hlen("{timers}:payloads:jobs") == total
    for n in (0, 1, 499, 999):
        info = timers.get_timer("jobs", f"t{n}")
        assert info is not None
        assert info.payload == Job(n=n, note="x" * (n % 50))


def test_instances_sharing_one_client(front: Front) -> None:
    calls: Recorder[int] = Recorder()
    worker = front.timers(spec("jobs", Job, lambda payload, context: calls.record(payload.n)))
    scheduler = front.timers(spec("jobs", Job, lambda payload, context: None), client=worker.client)
    with running(worker):
        for n in range(20):
            scheduler.set_timer("jobs", f"t{n}", Job(n=n), NOW)
        calls.wait_for(20)
    assert sorted(calls.items) == list(range(20))
    assert worker.ping()


def test_the_library_never_closes_the_given_client(front: Front) -> None:
    calls: Recorder[int] = Recorder()
    timers = front.timers(spec("jobs", Job, lambda payload, context: calls.record(payload.n)))
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    timers.handle_ready_timers()
    assert timers.ping()

    with running(timers):
        timers.set_timer("jobs", "b", Job(n=2), NOW)
        calls.wait_for(2)
    assert timers.ping()

    if front.is_async:
        timers.start_worker()
        timers.set_timer("jobs", "c", Job(n=3), NOW)
        calls.wait_for(3)
        timers.cancel_worker()
        assert timers.ping()

    # And the instance keeps working on the same client.
    timers.set_timer("jobs", "d", Job(n=4), NOW)
    timers.handle_ready_timers()
    assert calls.items[-1] == 4
    assert timers.ping()


# -- scenario 13: stop() --------------------------------------------------------------------


def test_stop_returns_run_forever_promptly(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, lambda payload, context: None))
    timers.set_timer("jobs", "far", Job(n=1), LATER)
    for _ in range(3):  # and run_forever can be started again after stop()
        timers.start_worker()
        assert timers.stop_worker() < 1.0
    info = timers.get_timer("jobs", "far")
    assert info is not None
    assert info.running is False


def test_stop_before_run_forever_starts_still_stops_it(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, lambda payload, context: None))
    timers.request_stop()
    timers.start_worker()
    timers.wait_worker(timeout=5)


ASYNC_ONLY = pytest.mark.parametrize("front", ["async"], indirect=True)
SYNC_ONLY = pytest.mark.parametrize("front", ["sync"], indirect=True)


@ASYNC_ONLY
def test_cancelling_run_forever_returns_cleanly(front: Front) -> None:
    calls: Recorder[int] = Recorder()
    timers = front.timers(spec("jobs", Job, lambda payload, context: calls.record(payload.n)))
    timers.start_worker()
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    calls.wait_for(1)
    assert timers.cancel_worker() < 1.0


def test_a_handler_in_flight_at_stop_finishes_and_its_timer_is_acked(front: Front) -> None:
    check_graceful_end(front, TimersHarness.request_stop)


@ASYNC_ONLY
def test_a_handler_in_flight_when_run_forever_is_cancelled_finishes_and_its_timer_is_acked(front: Front) -> None:
    check_graceful_end(front, TimersHarness.request_cancel)


def check_graceful_end(front: Front, end: Callable[[TimersHarness], None]) -> None:
    gate, started, finished = front.gate(), Recorder[str](), Recorder[str]()

    def handler(payload: Job, context: dict[str, Any]) -> None:
        started.record("run")
        gate.wait()
        finished.record("run")

    timers = front.timers(spec("jobs", Job, handler, blocking=True))
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    timers.start_worker()
    started.wait_for(1)
    end(timers)
    assert not worker_returns(timers, within=0.3), "run_forever returned before its handler finished"
    gate.open()
    timers.wait_worker(cancelled_ok=True)
    assert finished.items == ["run"]
    assert timers.get_timer("jobs", "a") is None  # acked, not handed back
    timers.handle_ready_timers()
    assert started.items == ["run"]


def test_a_handler_overrunning_the_grace_period_hands_its_timer_back(front: Front) -> None:
    gate, started, finished = front.gate(), Recorder[str](), Recorder[str]()
    attempts_seen: Recorder[int] = Recorder()
    settings = TimersSettings(lease_seconds=30, shutdown_grace_seconds=0.2)

    def handler(payload: Job, context: dict[str, Any]) -> None:
        started.record(context["name"])
        if context["name"] == "first":
            gate.wait()
        else:
            info = context["self"].get_timer("jobs", "a")
            attempts_seen.record(-1 if info is None else info.attempts)
        finished.record(context["name"])

    first = front.timers(spec("jobs", Job, handler, blocking=True), context={"name": "first"}, settings=settings)
    second_context: dict[str, Any] = {"name": "second"}
    second = front.timers(spec("jobs", Job, handler, blocking=True), context=second_context, settings=settings)
    second_context["self"] = second
    first.set_timer("jobs", "a", Job(n=1), NOW)
    first.start_worker()
    started.wait_for(1)
    with running(second):
        stopped_at = time.monotonic()
        assert first.stop_worker() < 3.0  # 0.2 s grace, then the lease is handed back
        # The other worker takes it at once, not when the 30 s lease would have run out.
        assert started.wait_for(2, timeout=10) == ["first", "second"]
        assert time.monotonic() - stopped_at < 5.0
        finished.wait_for(1)
    assert attempts_seen.items == [1]  # a handed-back lease does not count as an attempt
    assert first.get_timer("jobs", "a") is None
    gate.open()  # the abandoned first run ends; its late outcome must change nothing
    finished.wait_for(2)
    first.handle_ready_timers()
    assert started.items == ["first", "second"]
    assert front.timer_data() == []


@ASYNC_ONLY
def test_async_front_plain_def_handler_overrunning_the_grace_period(front: Front) -> None:
    """The async front end runs plain `def` handlers in threads; stop() must still return after the grace period."""
    gate, started = front.gate(), Recorder[str]()

    def plain(payload: Job, context: dict[str, Any]) -> None:
        started.record("plain")
        gate.wait()

    router = Router()
    router.handler(topic="jobs", schema=Job)(plain)
    timers = front.timers(routers=[router], settings=TimersSettings(shutdown_grace_seconds=0.2))
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    timers.start_worker()
    started.wait_for(1)
    timers.request_stop()
    returned = worker_returns(timers, within=3.0)
    gate.open()
    timers.wait_worker()
    assert returned, "run_forever waited for a plain def handler past the grace period"
    info = timers.get_timer("jobs", "a")
    assert info is not None
    assert info.running is False  # handed back


def worker_returns(timers: TimersHarness, within: float) -> bool:
    try:
        timers.wait_worker(timeout=within, cancelled_ok=True)
    except AssertionError:
        return False
    return True


@SYNC_ONLY
def test_sync_run_forever_leaves_no_thread_behind(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, lambda payload, context: None))
    leftovers: set[str] = set()
    for _ in range(3):
        timers.start_worker()
        wait_for_listener(front)
        timers.stop_worker()
        # Checked right after run_forever returned: the listener only notices every 0.25 s.
        leftovers.update(repr(thread) for thread in listener_threads() if thread.is_alive())
    assert leftovers == set(), "a listener thread outlived run_forever; closing the client now breaks it"


def wait_for_listener(front: Front) -> None:
    wait_until(lambda: subscribers(front.raw, "{timers}:wake:jobs") >= 1)


def test_a_handler_can_stop_its_own_worker(front: Front) -> None:
    calls: Recorder[int] = Recorder()
    instance: list[TimersHarness] = []

    def stopper(payload: Job, context: dict[str, Any]) -> None:
        calls.record(payload.n)
        if payload.n == 1:
            instance[0].request_stop()

    timers = front.timers(spec("jobs", Job, stopper, blocking=True))
    instance.append(timers)
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    timers.start_worker()
    timers.wait_worker()
    assert calls.items == [1]
    assert timers.get_timer("jobs", "a") is None  # the run that asked to stop was still acked
