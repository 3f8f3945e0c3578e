"""The results table, in Markdown (to paste into docs/performance.md as it is printed)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from benchmarks.common import (
    CLUSTER_PRIMARIES,
    CLUSTER_SHARDS,
    FRONTS,
    RAW_POLL_SLEEP,
    RAW_POLL_SLEEPS_MS,
    poller,
    poller_label,
)
from benchmarks.context import Config
from benchmarks.results import Results


def rate(value: float) -> str:
    return f"{value:,.0f}"


def ms(value: float) -> str:
    return f"{value:.2f}"


def micros(value: float) -> str:
    return f"{value:.1f}"


def count(value: float) -> str:
    return f"{value:.0f}"


def per_timer(value: float) -> str:
    """Commands per fired timer: a drain's batched round trips make most of them hundredths or less."""
    return f"{value:.3f}"


def per_second(value: float) -> str:
    """Rates from a few thousand down to an idle worker's tenths: three digits where they matter."""
    if value >= 10:
        return f"{value:,.1f}"
    return f"{value:.2f}" if value >= 1 else f"{value:.3f}"


def ratio(library: float | None, raw: float | None) -> str:
    if library is None or raw is None or raw == 0:
        return "-"
    value = library / raw
    if value == 0:
        return "0"
    return f"{value:.2f}" if value >= 0.01 else f"{value:.1e}"


@dataclasses.dataclass(frozen=True)
class Row:
    scenario: str
    figure: str
    key: str
    raw: str
    """The implementation of the minimum beside it: raw (the 1 ms poller), raw-multi, raw-evalsha... or raw-1ms."""
    fmt: Callable[[float], str]
    with_ratio: bool = True
    breakdown: str | None = None
    """A per-command breakdown figure to show in a row of its own below this one."""
    breakdown_figure: str | None = None
    """That row's figure, by default "by command, per second" and this row's figure after its first comma."""
    breakdown_fmt: Callable[[float], str] | None = None
    """How that row shows each command's value, by default `per_second`."""


def _power(level: int) -> str:
    exponent = len(str(level)) - 1
    return f"10^{exponent}" if level == 10**exponent else f"{level:,}"


def rows(config: Config) -> list[Row]:
    drain_poller = poller_label(round(RAW_POLL_SLEEP * 1000))
    table = [
        Row("schedule", "set_timer/s (raw: MULTI)", "schedule.rate", "raw-multi", rate),
        Row("schedule", "set_timer/s (raw: EVALSHA)", "schedule.rate", "raw-evalsha", rate),
        Row("schedule", "set_timer/s (raw: EVALSHA on a held connection)", "schedule.rate", "raw-evalsha-held", rate),
        Row("schedule", "MEMORY USAGE, B/timer (raw: MULTI)", "schedule.memory_bytes", "raw-multi", count),
        Row(
            "bulk",
            "set_timers timers/s (raw: ZADD + HSET per timer, heads, one pipeline per 1,000)",
            "bulk.rate",
            "raw-pipeline",
            rate,
        ),
        Row(
            "bulk",
            "set_timers timers/s (raw: one ZADD + one HSET + heads per 1,000)",
            "bulk.rate",
            "raw-variadic",
            rate,
        ),
        Row("bulk", "set_timers timers/s (raw: set_timer one at a time)", "bulk.rate", "one-at-a-time", rate),
        Row(
            "bulk",
            "set_timers client CPU µs per timer (raw: one ZADD + one HSET + heads per 1,000)",
            "bulk.client_cpu_us",
            "raw-variadic",
            micros,
        ),
        Row(
            "bulk",
            "set_timers client CPU µs per timer (raw: set_timer one at a time)",
            "bulk.client_cpu_us",
            "one-at-a-time",
            micros,
        ),
    ]
    for processes in config.fanout:
        scenario = "drain" if processes == 1 else "fan-out"
        figure = f"timers/s, {processes} worker process{'es' if processes > 1 else ''} (raw: {drain_poller})"
        table.append(Row(scenario, figure, f"drain.rate.{processes}", "raw", rate))
        of = f"{processes} worker process{'es' if processes > 1 else ''}"
        table.append(
            Row(
                scenario,
                f"server commands per fired timer, {of} (INFO commandstats; raw: {drain_poller})",
                f"drain.commands.{processes}",
                "raw",
                per_timer,
                breakdown=f"drain.by_command.{processes}",
                breakdown_figure=f"by command, per fired timer, {of}",
                breakdown_fmt=per_timer,
            )
        )
        table.append(
            Row(
                scenario,
                f"EVALSHA µs per fired timer, {of} (commandstats usec; raw: {drain_poller})",
                f"drain.evalsha_us.{processes}",
                "raw",
                micros,
            )
        )
        table.append(
            Row(
                scenario,
                f"client CPU µs per fired timer, {of} (the worker processes' CPU time; raw: {drain_poller})",
                f"drain.client_cpu_us.{processes}",
                "raw",
                micros,
            )
        )
        # Each full collection holds the GIL throughout: every timer due meanwhile waits for it.
        for name, key, fmt in (
            ("full garbage collections", "full_collections", count),
            ("ms in full garbage collections", "full_collections_ms", ms),
        ):
            figure = f"{name} in the worker processes, {of} (raw: {drain_poller})"
            table.append(Row(scenario, figure, f"drain.{key}.{processes}", "raw", fmt, with_ratio=False))
    for sleep in RAW_POLL_SLEEPS_MS:
        for name, key in (("p50", "p50_ms"), ("p99", "p99_ms"), ("max", "max_ms")):
            table.append(
                Row("lateness", f"{name} ms (raw: {poller_label(sleep)})", f"lateness.{key}", poller(sleep), ms)
            )
    # A full collection holds the GIL throughout: a timer due meanwhile starts that much later.
    beside = RAW_POLL_SLEEPS_MS[0]
    for name, key, fmt in (
        ("full garbage collections in the window", "full_collections", count),
        ("longest full garbage collection, ms", "longest_full_collection_ms", ms),
    ):
        figure = f"{name} (raw: {poller_label(beside)})"
        table.append(Row("lateness", figure, f"lateness.{key}", poller(beside), fmt, with_ratio=False))
    for sleep in RAW_POLL_SLEEPS_MS:
        for half in ("activate_at", "activation_period"):
            figure = f"early, `{half}` half (must be 0; raw: {poller_label(sleep)})"
            table.append(Row("lateness", figure, f"lateness.early.{half}", poller(sleep), count, with_ratio=False))
    for name, key in (("p50", "p50_ms"), ("p99", "p99_ms"), ("max", "max_ms")):
        figure = f"lateness {name} ms, 100,000 seed-era timers of an unhandled topic (beside: none)"
        table.append(Row("legacy", figure, f"legacy.{key}", "without-seed", ms))
    for suffix, what in (("", "at the default intervals"), (".no_import", "legacy import off")):
        for index, sleep in enumerate(RAW_POLL_SLEEPS_MS):
            table.append(
                Row(
                    "idle",
                    f"Redis commands/s, {what} (raw: {poller_label(sleep)})",
                    f"idle.commands_per_s{suffix}",
                    poller(sleep),
                    per_second,
                    breakdown=f"idle.by_command{suffix}" if index == len(RAW_POLL_SLEEPS_MS) - 1 else None,
                )
            )
    for level in sorted(config.scale_levels):
        table.append(
            Row(
                "scale",
                f"schedule µs/op, {_power(level)} pending (raw: EVALSHA)",
                f"scale.schedule_us.{level}",
                "raw-evalsha",
                micros,
            )
        )
    for level in sorted(config.scale_levels):
        figure = f"fire µs/timer, {_power(level)} pending (raw: {drain_poller})"
        table.append(Row("scale", figure, f"scale.fire_us.{level}", "raw", micros))
    for level in sorted({1, *config.topic_levels}):
        for key, what in (("call_us", "round trip"), ("timer_us", "fired timer")):
            figure = f"server µs per {what} firing 200 timers of one topic, {level:,} topics (raw: 1 topic)"
            table.append(Row("scale", figure, f"scale.topics.{key}.{level}", "one-topic", micros))
    return table


def _breakdown(results: Results, row: Row) -> str:
    assert row.breakdown is not None
    figure = row.breakdown_figure or "by command, per second," + row.figure.split(",", 1)[1]
    fmt = row.breakdown_fmt or per_second
    cells = [row.scenario, figure]
    for front in FRONTS:
        for impl in ("library", row.raw):
            parts = results.median_breakdown(row.breakdown, front, impl) or {}
            cells.append(", ".join(f"{name} {fmt(value)}" for name, value in parts.items() if value > 0) or "none")
        cells.append("-")
    return "| " + " | ".join(cells) + " |"


def _window_description(config: Config) -> str:
    return (
        f"lateness: {config.window_repeat} window(s) of {config.lateness_seconds:g} s; idle: "
        f"{config.window_repeat} window(s) of {config.idle_seconds:g} s per periodic job and poller"
    )


def markdown(results: Results, config: Config, machine: dict[str, Any], elapsed: float, command: str) -> str:
    lines = [
        f"Machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['python']}, redis-py {machine['redis_py']}, "
        f"server {machine['server']} on loopback; {machine['os']}; {machine['date']}; "
        f"redis-timers at {machine['library']}.",
        f"Command: `{command}` ({elapsed:.0f} s). Medians of {config.repeat} repetition(s) "
        f"({_window_description(config)}). ratio = library / raw minimum of the same client (async or blocking).",
        "",
        "| scenario | figure | async library | async raw | ratio | sync library | sync raw | ratio |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows(config):
        if all(results.median(row.key, front, "library") is None for front in FRONTS):
            continue
        cells = [row.scenario, row.figure]
        for front in FRONTS:
            library = results.median(row.key, front, "library")
            raw = results.median(row.key, front, row.raw)
            cells += [
                "-" if library is None else row.fmt(library),
                "-" if raw is None else row.fmt(raw),
                ratio(library, raw) if row.with_ratio else "-",
            ]
        lines.append("| " + " | ".join(cells) + " |")
        if row.breakdown is not None and row.breakdown in results.breakdowns:
            lines.append(_breakdown(results, row))
    memory = [
        (level, results.median(f"scale.memory_bytes.{level}", "any", "fill")) for level in sorted(config.scale_levels)
    ]
    if any(value is not None for _, value in memory):
        lines += [
            "",
            "| pending timers | Redis memory per pending timer (bulk-loaded, small payload) |",
            "| ---: | ---: |",
        ]
        lines += [f"| {_power(level)} | {value:.0f} B |" for level, value in memory if value is not None]
    lines += cluster_tables(results, config)
    if results.notes:
        lines += ["", "Notes:"] + [f"- {note}" for note in results.notes]
    return "\n".join(lines)


def percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def cluster_rows(config: Config) -> list[Row]:
    table = []
    for processes in config.fanout:
        figure = f"timers/s, {processes} worker process{'es' if processes > 1 else ''}"
        table.append(Row("drain", figure, f"cluster.drain.rate.{processes}", "one-server", rate))
    for name, key in (("p50", "p50_ms"), ("p99", "p99_ms"), ("max", "max_ms")):
        table.append(Row("lateness", f"{name} ms", f"cluster.lateness.{key}", "one-server", ms))
    for half in ("activate_at", "activation_period"):
        figure = f"early, `{half}` half (must be 0)"
        table.append(Row("lateness", figure, f"cluster.lateness.early.{half}", "one-server", count, with_ratio=False))
    return table


def even(shares: list[float]) -> str:
    """Whether every primary's share is within 15% of an even split."""
    fair = 1 / len(shares)
    return "yes" if all(abs(share - fair) <= 0.15 * fair for share in shares) else "no"


def cluster_tables(results: Results, config: Config) -> list[str]:
    """The cluster scenario: its figures beside the single server's, then what each primary did."""
    rows_present = [row for row in cluster_rows(config) if results.median(row.key, FRONTS[0], "library") is not None]
    if not rows_present and results.median("cluster.share.commands.0", FRONTS[0], "library") is None:
        return []
    lines = [
        "",
        f"Cluster: {CLUSTER_PRIMARIES} primaries (no replicas) of the same server on this machine, "
        f"`TIMERS_SHARDS={CLUSTER_SHARDS}`, cluster clients; ratio = cluster / one server. Both share the "
        "machine's CPUs with the workers, so the cluster cannot drain faster than one server here: its scale-out "
        "is the even split and the server time per timer on each primary below, not the wall-clock rate.",
        "",
        "| scenario | figure | async cluster | async one server | ratio | sync cluster | sync one server | ratio |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows_present:
        cells = [row.scenario, row.figure]
        for front in FRONTS:
            on_cluster = results.median(row.key, front, "library")
            alone = results.median(row.key, front, row.raw)
            cells += [
                "-" if on_cluster is None else row.fmt(on_cluster),
                "-" if alone is None else row.fmt(alone),
                ratio(on_cluster, alone) if row.with_ratio else "-",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    primaries = range(CLUSTER_PRIMARIES)
    header = " | ".join(f"primary {index + 1}" for index in primaries)
    lines += [
        "",
        f"| per primary, over every cluster drain | front end | {header} | within 15% of an even split |",
        "| --- | --- | " + " | ".join("---:" for _ in primaries) + " | --- |",
    ]
    for figure, what, fmt, judged in (
        ("cluster.share.timers", "share of the timers (loaded into its shards)", percent, True),
        ("cluster.share.commands", "share of the commands (INFO commandstats)", percent, True),
        ("cluster.share.cpu", "share of the server CPU (INFO cpu)", percent, True),
        ("cluster.cpu_us", "server CPU µs per fired timer", micros, False),
        ("cluster.evalsha_us", "EVALSHA µs per fired timer (commandstats usec)", micros, False),
        ("cluster.idle.commands_per_s", "idle worker: Redis commands/s at the default intervals", per_second, False),
        (
            "cluster.idle.script_calls_per_interval",
            "idle worker: script calls per safety interval",
            per_second,
            False,
        ),
    ):
        for front in FRONTS:
            values = [results.median(f"{figure}.{index}", front, "library") for index in primaries]
            if any(value is None for value in values):
                continue
            shown = [fmt(value) for value in values if value is not None]
            verdict = even([value for value in values if value is not None]) if judged else "-"
            lines.append(f"| {what} | {front} | " + " | ".join(shown) + f" | {verdict} |")
    return lines
