"""drain and fan-out: a backlog of due timers, handled by 1, 2 or 4 worker processes with a no-op handler.

The backlog is loaded before the clock starts and the worker processes are already up
and connected; the clock runs from the parent's `go` until the timeline holds no due or
leased timer (polled every millisecond with ZCOUNT), i.e. until every handler has run and
(for the library) every ack has landed.
"""

from __future__ import annotations

import time

from benchmarks.common import KINDS, BenchmarkError, Front, Impl, delete_topic, server_time_ms, wait_until
from benchmarks.context import Context
from benchmarks.loader import load_timers


def time_drain(
    ctx: Context,
    front: Front,
    impl: Impl,
    processes: int,
    topic: str,
    count: int,
    boundary: str,
    loaded: dict[int, int] | None = None,
) -> float:
    """Seconds for `processes` workers of one kind to handle `count` freshly loaded due timers of `topic`.

    `boundary`: timers scored above it are not part of the backlog (the scale scenario's far-future fill).
    `loaded`, if given, gets how many timers were loaded into each shard of the context's namespace.
    """
    workers = ctx.pool.take(processes)
    now = server_time_ms(ctx.control)
    per_shard = load_timers(ctx.control, topic, "d", 0, count, lambda i: now - 1000, ctx.namespace)
    if loaded is not None:
        loaded.update(per_shard)

    def drained() -> bool:
        return ctx.pending(topic, boundary) == 0

    started = time.perf_counter()
    for worker in workers:
        worker.go(front, impl, topic)
    try:
        wait_until(drained, 30 + count / 500, f"{count} timers to drain", ctx.poll_interval)
    finally:
        elapsed = time.perf_counter() - started
        handled = sum(int(worker.stop()["handled"]) for worker in workers)
    if handled < count:
        raise BenchmarkError(f"{processes} {front} {impl} worker process(es): {handled} of {count} timers handled")
    if handled > count:
        ctx.results.note(f"drain by {processes} {front} {impl} worker process(es): {handled - count} handled twice")
    return elapsed


def warm_up(ctx: Context, count: int = 100, kinds: tuple[tuple[Front, Impl], ...] = KINDS) -> None:
    """A small drain of every kind by every worker process, so that no measured round is a first."""
    for front, impl in kinds:
        for processes in range(1, len(ctx.pool.workers) + 1):
            delete_topic(ctx.control, "warmup", ctx.namespace)
            time_drain(ctx, front, impl, processes, "warmup", count, "+inf")
    delete_topic(ctx.control, "warmup", ctx.namespace)


def run(ctx: Context) -> None:
    topic, count = "drain", ctx.config.timers
    for rep in range(ctx.config.repeat):
        for processes in ctx.config.fanout:
            for front, impl in KINDS:
                delete_topic(ctx.control, topic)
                elapsed = time_drain(ctx, front, impl, processes, topic, count, "+inf")
                ctx.results.add(f"drain.rate.{processes}", front, impl, count / elapsed)
                ctx.progress(
                    f"drain #{rep + 1} {processes} process(es) {front} {impl}: {count / elapsed:,.0f} timers/s"
                )
    delete_topic(ctx.control, topic)
