"""scale: the cost of scheduling and of firing while 10^4, 10^5 and 10^6 other timers are pending.

The pending timers are bulk-loaded (benchmarks/loader.py) into the measured topic's own
keys, due a year from now, with a small payload. At each level, for every front end:
`scale_ops` one-at-a-time schedules (library `set_timer` interleaved with one raw EVALSHA
each, as in the schedule scenario), removed again afterwards; then a drain of `scale_ops`
due timers by one worker process, whose clock stops when no timer below the far-future fill
is left. A healthy store keeps both costs flat as the level grows (sorted-set operations
are logarithmic).

Memory per pending timer is INFO used_memory after the fill minus before, over the count.
"""

from __future__ import annotations

import time

from benchmarks import topics
from benchmarks.common import FRONTS, KEYSPACE, KINDS, BenchmarkError, delete_namespace, server_time_ms, used_memory
from benchmarks.context import Context
from benchmarks.drain import time_drain
from benchmarks.loader import load_timers, unload_timers
from benchmarks.schedule import ScheduleImpl, time_schedule, timer_ids

FAR_AWAY_MS = 365 * 24 * 3600 * 1000
SCALE_SCHEDULE_IMPLS: tuple[ScheduleImpl, ...] = ("library", "raw-evalsha")


def run(ctx: Context) -> None:
    topic, ops = "scale", ctx.config.scale_ops
    delete_namespace(ctx.control)
    baseline = used_memory(ctx.control)
    far = server_time_ms(ctx.control) + FAR_AWAY_MS
    boundary = far - 1
    pending = 0
    for level in sorted(ctx.config.scale_levels):
        started = time.perf_counter()
        load_timers(ctx.control, topic, "p", pending, level, lambda i: far + i)
        pending = level
        per_timer = (used_memory(ctx.control) - baseline) / level
        ctx.results.add(f"scale.memory_bytes.{level}", "any", "fill", per_timer)
        ctx.progress(
            f"scale: {level:,} pending (filled in {time.perf_counter() - started:.1f}s), {per_timer:.0f} B/timer"
        )
        if ctx.timers.get_timer(topic, "p0") is None:
            raise BenchmarkError("the bulk loader's layout is not the library's: get_timer cannot see a filled timer")
        for _ in range(ctx.config.repeat):
            for front in FRONTS:
                seconds = time_schedule(ctx.url, front, dict.fromkeys(SCALE_SCHEDULE_IMPLS, topic), "n", ops)
                for impl in SCALE_SCHEDULE_IMPLS:
                    unload_timers(ctx.control, topic, timer_ids(impl, "n", ops))
                    ctx.results.add(f"scale.schedule_us.{level}", front, impl, seconds[impl] / ops * 1e6)
            for front, kind_impl in KINDS:
                elapsed = time_drain(ctx, front, kind_impl, 1, topic, ops, str(boundary))
                ctx.results.add(f"scale.fire_us.{level}", front, kind_impl, elapsed / ops * 1e6)
            if int(ctx.control.zcard(KEYSPACE.timeline(topic))) != level:
                raise BenchmarkError("the scale scenario's pending count drifted")
        summary = ", ".join(
            f"{front} {impl} schedule {ctx.results.median(f'scale.schedule_us.{level}', front, impl) or 0:.1f} us"
            for front in FRONTS
            for impl in SCALE_SCHEDULE_IMPLS
        )
        ctx.progress(f"scale: {level:,} pending: {summary}")
    delete_namespace(ctx.control)
    topics.run(ctx)
