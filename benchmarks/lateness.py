"""lateness: timers due at random instants over a window while one worker runs; handler start - due time.

The worker process is started and settled first; then the parent schedules every timer with
the library's blocking `set_timer(activate_at=...)`, due from 1 s later on, in random order
(each one that becomes the earliest notifies the library worker; the raw poller just polls).
The handler records `time.time()` first thing; the worker process maps it onto the server's
clock with the offset measured by TIME round trips (the one with the least delay; its half
round trip is the uncertainty). A timer counts as early only when it started before its
due time by more than that uncertainty.
"""

from __future__ import annotations

import datetime
import time

from benchmarks.common import (
    KEYSPACE,
    KINDS,
    BenchmarkError,
    BenchPayload,
    delete_topic,
    percentile,
    server_time_ms,
    wait_until,
)
from benchmarks.context import Context

LEAD_MS = 1000
"""First due time, after the parent's now: the scheduling itself must be over by then."""
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def run(ctx: Context) -> None:
    topic, count = "lateness", ctx.config.lateness_timers
    window_ms = round(ctx.config.lateness_seconds * 1000)
    timeline = KEYSPACE.timeline(topic)
    for rep in range(ctx.config.window_repeat):
        for front, impl in KINDS:
            delete_topic(ctx.control, topic)
            worker = ctx.pool.take(1)[0]
            worker.go(front, impl, topic, records=True)
            try:
                ctx.settle(impl, topic, 0.2)
                start = server_time_ms(ctx.control) + LEAD_MS
                dues = [start + int(ctx.rng.random() * window_ms) for _ in range(count)]
                for i, due in enumerate(dues):
                    moment = _EPOCH + datetime.timedelta(milliseconds=due)
                    ctx.timers.set_timer(topic, f"l{i}", BenchPayload(due_ms=due), activate_at=moment)
                if server_time_ms(ctx.control) > start:
                    raise BenchmarkError("scheduling the lateness timers took longer than their lead time")
                time.sleep(max(0, max(dues) + 50 - server_time_ms(ctx.control)) / 1000)
                wait_until(lambda: int(ctx.control.zcard(timeline)) == 0, 30, "the lateness timers to fire")
            finally:
                report = worker.stop()
            records = report["records"]
            if len(records) != count:
                ctx.results.note(f"lateness {front} {impl}: {len(records)} handler calls for {count} timers")
            lateness = sorted(started - due for started, due in records)
            tolerance = float(report["offset_error_ms"])
            early = sum(1 for value in lateness if value < -tolerance)
            for name, value in (
                ("p50_ms", percentile(lateness, 0.50)),
                ("p99_ms", percentile(lateness, 0.99)),
                ("max_ms", lateness[-1]),
                ("min_ms", lateness[0]),
                ("early", float(early)),
                ("clock_uncertainty_ms", tolerance),
            ):
                ctx.results.add(f"lateness.{name}", front, impl, value)
            ctx.progress(
                f"lateness #{rep + 1} {front} {impl}: p50 {percentile(lateness, 0.5):.2f} ms, "
                f"p99 {percentile(lateness, 0.99):.2f} ms, max {lateness[-1]:.2f} ms, {early} early"
            )
    delete_topic(ctx.control, topic)
