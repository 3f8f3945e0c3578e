"""idle: one worker with nothing due; the Redis commands per second it causes, in total and by command.

Read from `INFO commandstats` before and after the window. INFO counts the commands a script
runs as well as the script call itself (so one raw poll shows as EVALSHA + TIME +
ZRANGEBYSCORE); the per-command breakdown tells round trips (EVALSHA, PING...) from the work
inside them. A command is counted once it has run, so the window's counts include the
parent's opening `INFO commandstats`; it is subtracted. Nothing else talks to the server
meanwhile (the other worker processes are stopped).

An idle library worker does nothing but periodic work: what it does every safety interval
(`safety_wakeup_seconds`, 8 s: a PING, and whatever else) and every legacy-import interval
(`legacy_import_interval_seconds`, 60 s). A 10 s window at those intervals sees one PING or
two, and an import or none, depending on where it falls. So each is measured on its own,
with its interval shortened (`Config.idle_interval_seconds`, 1 s: ten intervals per 10 s
window) and the other one out of the window's reach, as commands per interval; the steady rate at the
default intervals is computed from those counts (`steady_rates`). The raw pollers have no
intervals: their rate is measured directly.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping
from typing import Any

from benchmarks.common import FRONTS, RAW_POLL_SLEEPS_MS, SETTINGS, delete_topic, poller
from benchmarks.context import Context

OWN_INFO_CALLS = 1
"""Counted in the deltas: the opening INFO commandstats (the closing one is counted after it replies)."""
OUT_OF_REACH_SECONDS = 1e6
"""An interval no window reaches (the other periodic job, while one is measured)."""


@dataclasses.dataclass(frozen=True)
class Periodic:
    """One periodic job of an idle library worker: the setting of its interval and its default."""

    name: str
    setting: str
    default_seconds: float


SAFETY = Periodic("safety", "safety_wakeup_seconds", SETTINGS.safety_wakeup_seconds)
LEGACY_IMPORT = Periodic("legacy import", "legacy_import_interval_seconds", SETTINGS.legacy_import_interval_seconds)


@dataclasses.dataclass(frozen=True)
class IntervalCounts:
    """Commands counted over a window in which one periodic job ran every `interval_seconds`."""

    job: Periodic
    interval_seconds: float
    elapsed_seconds: float
    calls: Mapping[str, int]

    def per_interval(self) -> dict[str, float]:
        intervals = self.elapsed_seconds / self.interval_seconds
        return {name: calls / intervals for name, calls in self.calls.items()}


def steady_rates(measured: Iterable[IntervalCounts]) -> dict[str, float]:
    """Commands per second, by command, of a worker running every measured job at its default interval."""
    rates: dict[str, float] = {}
    for counts in measured:
        for name, per_interval in counts.per_interval().items():
            rates[name] = rates.get(name, 0.0) + per_interval / counts.job.default_seconds
    return dict(sorted(rates.items()))


def _calls(commandstats: dict[str, Any]) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): int(stats["calls"]) for name, stats in commandstats.items()}


def measure_window(
    ctx: Context, front: str, impl: str, options: Mapping[str, float], phase: float = 0.0
) -> tuple[dict[str, int], float]:
    """(commands by name, seconds) over one idle window of a freshly started worker, the parent's INFO left out.

    `phase`: seconds added to the settling time. A periodic job runs from the worker's start on, so a window
    opened a whole number of intervals later would open and close on an occurrence, and a little drift would
    decide whether the window counts it; opened half an interval off, it holds as many as it holds intervals.
    """
    topic, window = "idle", ctx.config.idle_seconds
    delete_topic(ctx.control, topic)
    worker = ctx.pool.take(1)[0]
    worker.go(front, impl, topic, options=options)
    try:
        ctx.settle(impl, topic, ctx.config.settle_seconds + phase)
        opened = time.perf_counter()
        calls_before = _calls(ctx.control.info("commandstats"))
        time.sleep(window)
        calls_after = _calls(ctx.control.info("commandstats"))
        elapsed = time.perf_counter() - opened
    finally:
        worker.stop()
    by_command = {name: calls - calls_before.get(name, 0) for name, calls in calls_after.items()}
    by_command["info"] = by_command.get("info", 0) - OWN_INFO_CALLS
    return {name: calls for name, calls in sorted(by_command.items()) if calls > 0}, elapsed


def _add(ctx: Context, figure: str, front: str, impl: str, rates: Mapping[str, float]) -> None:
    ctx.results.add(f"idle.commands_per_s{figure}", front, impl, sum(rates.values()))
    ctx.results.add_breakdown(f"idle.by_command{figure}", front, impl, dict(rates))


def _shown(rates: Mapping[str, float], unit: str = "/s") -> str:
    return ", ".join(f"{name} {rate:.3f}{unit}" for name, rate in rates.items()) or "none"


def _library(ctx: Context, front: str) -> None:
    jobs = [SAFETY, LEGACY_IMPORT] if ctx.config.legacy_import else [SAFETY]
    interval = ctx.config.idle_interval_seconds
    measured: list[IntervalCounts] = []
    for job in jobs:
        others = {other.setting: OUT_OF_REACH_SECONDS for other in (SAFETY, LEGACY_IMPORT) if other is not job}
        calls, elapsed = measure_window(ctx, front, "library", {**others, job.setting: interval}, interval / 2)
        counts = IntervalCounts(job, interval, elapsed, calls)
        measured.append(counts)
        shown = _shown(counts.per_interval(), " per interval")
        ctx.progress(f"idle {front} library, {job.name} every {interval:g} s: {shown}")
    without_import = steady_rates(counts for counts in measured if counts.job is not LEGACY_IMPORT)
    _add(ctx, ".no_import", front, "library", without_import)
    if LEGACY_IMPORT in jobs:
        with_import = steady_rates(measured)
        _add(ctx, "", front, "library", with_import)
        ctx.progress(f"idle {front} library, steady at the default intervals: {_shown(with_import)}")
    ctx.progress(f"idle {front} library, steady without legacy import: {_shown(without_import)}")


def run(ctx: Context) -> None:
    for _ in range(ctx.config.window_repeat):
        for front in FRONTS:
            _library(ctx, front)
            for sleep in RAW_POLL_SLEEPS_MS:
                calls, elapsed = measure_window(ctx, front, "raw", {"poll_sleep": sleep / 1000})
                rates = {name: count / elapsed for name, count in calls.items()}
                # The poller has no legacy import: the same figure stands beside both library rows.
                _add(ctx, "", front, poller(sleep), rates)
                _add(ctx, ".no_import", front, poller(sleep), rates)
                ctx.progress(f"idle {front} {poller(sleep)}: {sum(rates.values()):.1f} commands/s ({_shown(rates)})")
    delete_topic(ctx.control, "idle")
