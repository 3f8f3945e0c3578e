"""lateness: timers due at random instants over a window while one worker runs; handler start - due time.

The worker process is started and settled first; then the parent schedules every timer with
the library's blocking `set_timer`, due from 1 s later on, in random order (each one that
becomes the earliest notifies the library worker; the raw poller just polls). Half of the
timers use `activate_at` on a whole server millisecond; the other half use
`activation_period`, as a caller asking for "in N ms" does, and their due time is the
caller's clock when it sent the call (mapped onto the server's clock) plus the delay, so a
library that rounds a relative delay down fires them early, and this shows it.

The handler records `time.time()` first thing; the worker process maps it onto the server's
clock with the offset measured by TIME round trips (the one with the least delay; its half
round trip is the uncertainty), and the parent maps its send times the same way. A timer
counts as early only when it started before its due time by more than the two uncertainties
together.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from collections.abc import Sequence

from benchmarks.common import (
    FRONTS,
    RAW_POLL_SLEEPS_MS,
    BenchmarkError,
    LatenessPayload,
    clock_offset_ms,
    delete_topic,
    percentile,
    poller,
    server_time_ms,
    wait_until,
)
from benchmarks.context import Context

LEAD_MS = 1000
"""First due time, after the parent's now: the scheduling itself must be over by then."""
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
HALVES = {False: "activate_at", True: "activation_period"}
"""Figure suffix of each half, by `LatenessPayload.relative`."""


@dataclasses.dataclass(frozen=True)
class Summary:
    p50_ms: float
    p99_ms: float
    max_ms: float
    min_ms: float
    early: dict[str, int]
    """Timers that started before their due time by more than the uncertainty, per half (HALVES' values)."""


def summarize(records: Sequence[Sequence[float | bool]], tolerance_ms: float) -> Summary:
    """Lateness figures of `[started_ms, due_ms, relative]` records (server ms); early counts per half."""
    lateness = sorted(float(started) - float(due) for started, due, _ in records)
    early = dict.fromkeys(HALVES.values(), 0)
    for started, due, relative in records:
        if float(started) - float(due) < -tolerance_ms:
            early[HALVES[bool(relative)]] += 1
    return Summary(
        p50_ms=percentile(lateness, 0.50),
        p99_ms=percentile(lateness, 0.99),
        max_ms=lateness[-1],
        min_ms=lateness[0],
        early=early,
    )


def _kinds() -> list[tuple[str, str, dict[str, float]]]:
    """(front, implementation name in the results, worker options): the library, then each raw poller."""
    kinds: list[tuple[str, str, dict[str, float]]] = []
    for front in FRONTS:
        kinds.append((front, "library", {}))
        kinds += [(front, poller(sleep), {"poll_sleep": sleep / 1000}) for sleep in RAW_POLL_SLEEPS_MS]
    return kinds


def _schedule(ctx: Context, topic: str, count: int, window_ms: int) -> tuple[int, float]:
    """Schedule the window's timers, half relative; (last due ms, the parent's clock uncertainty ms)."""
    offset_ms, offset_error_ms = clock_offset_ms(ctx.control)
    start = server_time_ms(ctx.control) + LEAD_MS
    dues = [start + int(ctx.rng.random() * window_ms) for _ in range(count)]
    relative = [ctx.rng.random() < 0.5 for _ in range(count)]
    for i, due in enumerate(dues):
        if relative[i]:
            sent_ms = time.time() * 1000 + offset_ms
            delay_ms = max(0, round(due - sent_ms))
            payload = LatenessPayload(due_ms=sent_ms + delay_ms, relative=True)
            ctx.timers.set_timer(topic, f"l{i}", payload, datetime.timedelta(milliseconds=delay_ms))
        else:
            moment = _EPOCH + datetime.timedelta(milliseconds=due)
            ctx.timers.set_timer(topic, f"l{i}", LatenessPayload(due_ms=due), activate_at=moment)
    if server_time_ms(ctx.control) > start:
        raise BenchmarkError("scheduling the lateness timers took longer than their lead time")
    return max(dues), offset_error_ms


def measure(
    ctx: Context,
    front: str,
    impl: str,
    options: dict[str, float],
    figures: str = "lateness",
    label: str | None = None,
) -> None:
    """One lateness window of one kind of worker; its figures under `figures`.<name>, front, `label` (or impl)."""
    topic, count = "lateness", ctx.config.lateness_timers
    window_ms = round(ctx.config.lateness_seconds * 1000)
    delete_topic(ctx.control, topic, ctx.namespace)
    worker = ctx.pool.take(1)[0]
    worker_impl = "library" if impl == "library" else "raw"
    worker.go(front, worker_impl, topic, records=True, options=options)
    try:
        ctx.settle(worker_impl, topic, 0.2)
        last_due, parent_error_ms = _schedule(ctx, topic, count, window_ms)
        time.sleep(max(0, last_due + 50 - server_time_ms(ctx.control)) / 1000)
        wait_until(lambda: ctx.pending(topic, "+inf") == 0, 30, "the lateness timers to fire")
    finally:
        report = worker.stop()
    records = report["records"]
    collections = [float(ms) for ms in report["full_collection_ms"]]
    longest_collection_ms = max(collections, default=0.0)
    if len(records) != count:
        ctx.results.note(f"{figures} {front} {impl}: {len(records)} handler calls for {count} timers")
    tolerance = float(report["offset_error_ms"]) + parent_error_ms
    summary = summarize(records, tolerance)
    for name, value in (
        ("p50_ms", summary.p50_ms),
        ("p99_ms", summary.p99_ms),
        ("max_ms", summary.max_ms),
        ("min_ms", summary.min_ms),
        ("clock_uncertainty_ms", tolerance),
        ("full_collections", float(len(collections))),
        ("longest_full_collection_ms", longest_collection_ms),
    ):
        ctx.results.add(f"{figures}.{name}", front, label or impl, value)
    for half, early in summary.early.items():
        ctx.results.add(f"{figures}.early.{half}", front, label or impl, float(early))
    shown = ", ".join(f"{early} early ({half})" for half, early in summary.early.items())
    ctx.progress(
        f"{figures} {front} {label or impl}: p50 {summary.p50_ms:.2f} ms, "
        f"p99 {summary.p99_ms:.2f} ms, max {summary.max_ms:.2f} ms, {shown}, "
        f"{len(collections)} full collection(s) (longest {longest_collection_ms:.1f} ms)"
    )


def run(ctx: Context) -> None:
    for _ in range(ctx.config.window_repeat):
        for front, impl, options in _kinds():
            measure(ctx, front, impl, options)
    delete_topic(ctx.control, "lateness", ctx.namespace)
