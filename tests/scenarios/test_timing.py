"""Scenarios 8 and 14: never early by the server's clock, and on time without polling."""

from __future__ import annotations

import datetime
import random
import statistics
from typing import Any

import pytest

from tests.harness import Front, Recorder, ms_to_datetime, running, server_time_ms, spec, wait_until
from tests.scenarios.models import Stamp

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
ONE_MS = datetime.timedelta(milliseconds=1)

# Serial: both bound how late a timer fires (3 s over hundreds, 500 ms for one), and a parallel run's neighbours on
# 2 CPUs made one fire 2 s late.
pytestmark = pytest.mark.serial


def stamp_recorder(front: Front) -> tuple[Recorder[tuple[str, int, int]], Any]:
    """Records (key, due ms, handler start ms by the server's clock)."""
    calls: Recorder[tuple[str, int, int]] = Recorder()

    def handler(payload: Stamp, context: dict[str, Any]) -> None:
        calls.record((payload.key, payload.due_ms, server_time_ms(front.raw)))

    return calls, handler


@pytest.mark.cluster
def test_never_early_over_hundreds_of_timers(front: Front) -> None:
    calls, handler = stamp_recorder(front)
    timers = front.timers(spec("stamps", Stamp, handler))
    rng = random.Random(20240601)
    total = 300
    with running(timers):
        base = EPOCH + datetime.timedelta(milliseconds=server_time_ms(front.raw) + 200)
        for i in range(total):
            # Sub-millisecond instants too: the library must round them up, never down.
            activate_at = base + datetime.timedelta(microseconds=rng.randrange(0, 2_000_000))
            due_ms = -((EPOCH - activate_at) // ONE_MS)  # ceil to whole ms
            timers.set_timer("stamps", f"s{i}", Stamp(key=f"s{i}", due_ms=due_ms), activate_at=activate_at)
        handled = calls.wait_for(total, timeout=30)

    early = [(key, due - started) for key, due, started in handled if started < due]
    assert early == [], f"fired early (ms): {early}"
    assert sorted(key for key, _, _ in handled) == sorted(f"s{i}" for i in range(total))
    lateness = sorted(started - due for _, due, started in handled)
    p50, p99 = statistics.median(lateness), lateness[int(len(lateness) * 0.99) - 1]
    print(f"\n[{front.kind}] lateness over {total} timers: p50={p50}ms p99={p99}ms max={lateness[-1]}ms")
    assert lateness[-1] < 3000, "firing should be near-immediate, not polled"


@pytest.mark.cluster
def test_a_sleeping_worker_wakes_for_a_timer_due_sooner(front: Front) -> None:
    calls, handler = stamp_recorder(front)
    worker = front.timers(spec("stamps", Stamp, handler), spec("other", Stamp, handler))
    scheduler = front.timers(spec("stamps", Stamp, handler), spec("other", Stamp, handler), decode_responses=False)

    far = server_time_ms(front.raw) + 3_600_000
    worker.set_timer("stamps", "far", Stamp(key="far", due_ms=far), activate_at=ms_to_datetime(far))
    with running(worker):
        # The worker now sleeps toward a timer an hour away (or its 8 s safety wake-up).
        channels = front.wake_channels("stamps") + front.wake_channels("other")
        wait_until(lambda: all(front.subscribers(channel) >= 1 for channel in channels))
        steps = [("stamps", "soon"), ("other", "other-topic"), ("stamps", "far")]  # the last moves "far" closer
        for index, (topic, key) in enumerate(steps):
            due = server_time_ms(front.raw) + 300
            scheduler.set_timer(topic, key, Stamp(key=key, due_ms=due), activate_at=ms_to_datetime(due))
            fired_key, fired_due, started = calls.wait_for(index + 1, timeout=10)[-1]
            assert (fired_key, fired_due) == (key, due)
            assert 0 <= started - due < 500, f"{key} fired {started - due} ms after its due time"
    assert len(calls) == len(steps)
