"""drain and fan-out: a backlog of due timers, handled by 1, 2 or 4 worker processes with a no-op handler.

The backlog is loaded before the clock starts and the worker processes are already up
and connected; the clock runs from the parent's `go` until the timeline holds no due or
leased timer (polled every millisecond with ZCOUNT), i.e. until every handler has run and
(for the library) every ack has landed.

Around each measured drain the parent reads `INFO commandstats`: the commands the server ran for it, by
name, per fired timer (a script call counts as EVALSHA and as each command it runs), and the script
calls' own run time (EVALSHA usec) per fired timer. The parent's own ZCOUNT polls and its opening INFO are
left out. Each worker process also reports its CPU time from go to stop (every thread of it): the client's CPU
per fired timer, a figure that other load on the machine changes far less than the rate.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.common import KINDS, BenchmarkError, Front, Impl, delete_topic, server_time_ms, wait_until
from benchmarks.context import Context
from benchmarks.loader import load_timers

OWN_INFO_CALLS = 1
"""Counted in a drain's deltas: the parent's opening INFO commandstats (the closing one is counted after it replies)."""


def time_drain(
    ctx: Context,
    front: Front,
    impl: Impl,
    processes: int,
    topic: str,
    count: int,
    boundary: str,
    loaded: dict[int, int] | None = None,
    commands: dict[str, tuple[int, int]] | None = None,
    cpu_seconds: list[float] | None = None,
    full_collections: list[float] | None = None,
) -> float:
    """Seconds for `processes` workers of one kind to handle `count` freshly loaded due timers of `topic`.

    `boundary`: timers scored above it are not part of the backlog (the scale scenario's far-future fill).
    `loaded`, if given, gets how many timers were loaded into each shard of the context's namespace.
    `commands`, if given (one server only), gets the (calls, usec) of each command the server ran for the
    drain, from `INFO commandstats`, the parent's own polls and INFO left out.
    `cpu_seconds`, if given, gets each worker process's CPU time over the drain.
    `full_collections`, if given, gets the length in ms of each full garbage collection the worker processes ran
    during the drain.
    """
    workers = ctx.pool.take(processes)
    now = server_time_ms(ctx.control)
    per_shard = load_timers(ctx.control, topic, "d", 0, count, lambda i: now - 1000, ctx.namespace)
    if loaded is not None:
        loaded.update(per_shard)
    polls = 0

    def drained() -> bool:
        nonlocal polls
        polls += 1
        return ctx.pending(topic, boundary) == 0

    before = _stats(ctx.control.info("commandstats")) if commands is not None else {}
    started = time.perf_counter()
    for worker in workers:
        worker.go(front, impl, topic)
    try:
        wait_until(drained, 30 + count / 500, f"{count} timers to drain", ctx.poll_interval)
    finally:
        elapsed = time.perf_counter() - started
        reports = [worker.stop() for worker in workers]
        handled = sum(int(report["handled"]) for report in reports)
    if cpu_seconds is not None:
        cpu_seconds.extend(float(report["cpu_seconds"]) for report in reports)
    if full_collections is not None:
        full_collections.extend(float(ms) for report in reports for ms in report["full_collection_ms"])
    if commands is not None:
        after = _stats(ctx.control.info("commandstats"))
        commands.update(_own_left_out(_delta(before, after), {"zcount": polls, "info": OWN_INFO_CALLS}))
    if handled < count:
        raise BenchmarkError(f"{processes} {front} {impl} worker process(es): {handled} of {count} timers handled")
    if handled > count:
        ctx.results.note(f"drain by {processes} {front} {impl} worker process(es): {handled - count} handled twice")
    return elapsed


def _stats(commandstats: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {
        name.removeprefix("cmdstat_"): (int(stats["calls"]), int(stats["usec"])) for name, stats in commandstats.items()
    }


def _delta(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    return {
        name: (calls - before.get(name, (0, 0))[0], usec - before.get(name, (0, 0))[1])
        for name, (calls, usec) in after.items()
    }


def _own_left_out(delta: dict[str, tuple[int, int]], own: dict[str, int]) -> dict[str, tuple[int, int]]:
    """`delta` without the parent's own calls; a command's usec is scaled down with its calls."""
    kept: dict[str, tuple[int, int]] = {}
    for name, (calls, usec) in sorted(delta.items()):
        left = calls - own.get(name, 0)
        if left > 0:
            kept[name] = (left, usec * left // calls)
    return kept


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
                commands: dict[str, tuple[int, int]] = {}
                cpu: list[float] = []
                collections: list[float] = []
                elapsed = time_drain(
                    ctx,
                    front,
                    impl,
                    processes,
                    topic,
                    count,
                    "+inf",
                    commands=commands,
                    cpu_seconds=cpu,
                    full_collections=collections,
                )
                ctx.results.add(f"drain.rate.{processes}", front, impl, count / elapsed)
                per_timer = {name: calls / count for name, (calls, _) in commands.items()}
                ctx.results.add_breakdown(f"drain.by_command.{processes}", front, impl, per_timer)
                ctx.results.add(f"drain.commands.{processes}", front, impl, sum(per_timer.values()))
                script_usec = commands.get("evalsha", (0, 0))[1]
                ctx.results.add(f"drain.evalsha_us.{processes}", front, impl, script_usec / count)
                ctx.results.add(f"drain.client_cpu_us.{processes}", front, impl, sum(cpu) * 1e6 / count)
                ctx.results.add(f"drain.full_collections.{processes}", front, impl, float(len(collections)))
                ctx.results.add(f"drain.full_collections_ms.{processes}", front, impl, sum(collections))
                ctx.progress(
                    f"drain #{rep + 1} {processes} process(es) {front} {impl}: {count / elapsed:,.0f} timers/s"
                )
    delete_topic(ctx.control, topic)
