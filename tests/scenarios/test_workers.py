"""Scenarios 5, 7 and 15: several workers share the timers; leases and concurrency limits hold."""

from __future__ import annotations

import collections
import datetime
from typing import Any

import pytest

from redis_timers import TimersSettings
from tests.harness import ConcurrencyProbe, Front, Recorder, running, spec
from tests.scenarios.models import Job

NOW = datetime.timedelta(0)


@pytest.mark.cluster
def test_two_workers_handle_each_of_1000_timers_exactly_once(front: Front) -> None:
    calls: Recorder[tuple[int, str]] = Recorder()

    def handler(payload: Job, context: dict[str, Any]) -> None:
        calls.record((payload.n, context["worker"]))

    lease = TimersSettings(lease_seconds=30)
    first = front.timers(spec("jobs", Job, handler), context={"worker": "first"}, settings=lease)
    second = front.timers(
        spec("jobs", Job, handler), context={"worker": "second"}, settings=lease, decode_responses=False
    )
    total = 1000
    for n in range(total):
        first.set_timer("jobs", f"t{n}", Job(n=n), NOW)

    with running(first), running(second):
        calls.wait_for(total, timeout=60)
    # Both workers are stopped: any duplicate run would have been recorded by now.
    counts = collections.Counter(n for n, _ in calls.items)
    assert sorted(counts) == list(range(total))
    assert [n for n, count in counts.items() if count > 1] == []
    assert front.timer_data() == []


@pytest.mark.cluster
def test_a_handler_longer_than_the_lease_runs_once(front: Front) -> None:
    """Lease renewal keeps a slow run owned: a second worker never takes it over."""
    hold, started, finished = front.gate(), Recorder[str](), Recorder[str]()

    def slow(payload: Job, context: dict[str, Any]) -> None:
        started.record(context["worker"])
        hold.wait(timeout=2.5)  # never opened: holds the run 2.5 s, over two leases
        finished.record(context["worker"])

    short_lease = TimersSettings(lease_seconds=1)
    first = front.timers(spec("jobs", Job, slow, blocking=True), context={"worker": "first"}, settings=short_lease)
    second = front.timers(spec("jobs", Job, slow, blocking=True), context={"worker": "second"}, settings=short_lease)
    first.set_timer("jobs", "slow", Job(n=1), NOW)
    with running(first):
        started.wait_for(1)
        with running(second):
            finished.wait_for(1, timeout=30)
    # stop() let any run in flight finish; each started run was recorded when it began.
    assert started.items == ["first"]
    assert first.get_timer("jobs", "slow") is None


@pytest.mark.parametrize("how", ["run_forever", "settings"])
def test_concurrency_limit_holds(front: Front, how: str) -> None:
    gate, probe = front.gate(), ConcurrencyProbe()
    started, finished = Recorder[int](), Recorder[int]()

    def handler(payload: Job, context: dict[str, Any]) -> None:
        with probe:
            started.record(payload.n)
            assert gate.wait(), "the test never opened the gate"
        finished.record(payload.n)

    limit, total = 3, 20
    settings = TimersSettings(concurrent_processing_limit=limit) if how == "settings" else TimersSettings()
    timers = front.timers(spec("jobs", Job, handler, blocking=True), settings=settings)
    for n in range(total):
        timers.set_timer("jobs", f"t{n}", Job(n=n), NOW)

    timers.start_worker(concurrency=limit if how == "run_forever" else None)
    started.wait_for(limit)
    assert not started.arrives(limit + 1, timeout=0.5), "a handler started beyond the concurrency limit"
    assert probe.current == limit
    gate.open()
    finished.wait_for(total)
    timers.stop_worker()
    assert probe.peak == limit
    assert sorted(finished.items) == list(range(total))
    assert front.timer_data() == []
