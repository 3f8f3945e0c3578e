"""idle: one worker with nothing due; the Redis commands per second it causes, in total and by command.

Read from `INFO stats` (total_commands_processed) and `INFO commandstats` before and after
the window. INFO counts the commands a script runs as well as the script call itself (so
one raw poll shows as EVALSHA + TIME + ZRANGEBYSCORE); the per-command breakdown tells
round trips (EVALSHA, PING...) from the work inside them. A command is counted once it has
run, so the window's figures include the parent's own opening INFO calls and the closing
`INFO stats`; those are subtracted. Nothing else talks to the server meanwhile (the other
worker processes are stopped).
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.common import KINDS, delete_topic
from benchmarks.context import Context

OWN_INFO_CALLS = 2
"""Counted in the deltas: the opening INFO stats and INFO commandstats in the total, and between the two
INFO commandstats, the opening one and the closing INFO stats."""


def _calls(commandstats: dict[str, Any]) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): int(stats["calls"]) for name, stats in commandstats.items()}


def run(ctx: Context) -> None:
    topic, window = "idle", ctx.config.idle_seconds
    for rep in range(ctx.config.window_repeat):
        for front, impl in KINDS:
            delete_topic(ctx.control, topic)
            worker = ctx.pool.take(1)[0]
            worker.go(front, impl, topic)
            try:
                ctx.settle(impl, topic, ctx.config.settle_seconds)
                opened = time.perf_counter()
                total_before = int(ctx.control.info("stats")["total_commands_processed"])
                calls_before = _calls(ctx.control.info("commandstats"))
                time.sleep(window)
                total_after = int(ctx.control.info("stats")["total_commands_processed"])
                calls_after = _calls(ctx.control.info("commandstats"))
                elapsed = time.perf_counter() - opened
            finally:
                worker.stop()
            total = total_after - total_before - OWN_INFO_CALLS
            by_command = {name: calls - calls_before.get(name, 0) for name, calls in calls_after.items()}
            by_command["info"] = by_command.get("info", 0) - OWN_INFO_CALLS
            rates = {name: calls / elapsed for name, calls in sorted(by_command.items()) if calls > 0}
            ctx.results.add("idle.commands_per_s", front, impl, total / elapsed)
            ctx.results.add_breakdown("idle.by_command", front, impl, rates)
            shown = ", ".join(f"{name} {rate:.2f}/s" for name, rate in rates.items()) or "none"
            ctx.progress(f"idle #{rep + 1} {front} {impl}: {total / elapsed:.2f} commands/s ({shown})")
    delete_topic(ctx.control, topic)
