"""The results table, in Markdown (to paste into docs/performance.md as it is printed)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from benchmarks.common import FRONTS
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


def per_second(value: float) -> str:
    return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


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
    """The implementation of the minimum beside it: raw, raw-multi or raw-evalsha."""
    fmt: Callable[[float], str]
    with_ratio: bool = True


def _power(level: int) -> str:
    exponent = len(str(level)) - 1
    return f"10^{exponent}" if level == 10**exponent else f"{level:,}"


def rows(config: Config) -> list[Row]:
    table = [
        Row("schedule", "set_timer/s (raw: MULTI)", "schedule.rate", "raw-multi", rate),
        Row("schedule", "set_timer/s (raw: EVALSHA)", "schedule.rate", "raw-evalsha", rate),
        Row("schedule", "MEMORY USAGE, B/timer (raw: MULTI)", "schedule.memory_bytes", "raw-multi", count),
    ]
    for processes in config.fanout:
        scenario = "drain" if processes == 1 else "fan-out"
        figure = f"timers/s, {processes} worker process{'es' if processes > 1 else ''}"
        table.append(Row(scenario, figure, f"drain.rate.{processes}", "raw", rate))
    table += [
        Row("lateness", "p50 ms", "lateness.p50_ms", "raw", ms),
        Row("lateness", "p99 ms", "lateness.p99_ms", "raw", ms),
        Row("lateness", "max ms", "lateness.max_ms", "raw", ms),
        Row("lateness", "early (must be 0)", "lateness.early", "raw", count, with_ratio=False),
        Row("idle", "Redis commands/s (INFO, incl. inside scripts)", "idle.commands_per_s", "raw", per_second),
    ]
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
        table.append(Row("scale", f"fire µs/timer, {_power(level)} pending", f"scale.fire_us.{level}", "raw", micros))
    return table


def _idle_breakdown(results: Results) -> str:
    cells = ["idle", "by command, per second"]
    for front in FRONTS:
        for impl in ("library", "raw"):
            parts = results.median_breakdown("idle.by_command", front, impl) or {}
            cells.append(", ".join(f"{name} {value:.2f}" for name, value in parts.items() if value > 0) or "none")
        cells.append("-")
    return "| " + " | ".join(cells) + " |"


def markdown(results: Results, config: Config, machine: dict[str, Any], elapsed: float, command: str) -> str:
    lines = [
        f"Machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['python']}, redis-py {machine['redis_py']}, "
        f"server {machine['server']} on loopback; {machine['os']}; {machine['date']}; "
        f"redis-timers at {machine['library']}.",
        f"Command: `{command}` ({elapsed:.0f} s). Medians of {config.repeat} repetition(s) "
        f"(lateness and idle: {config.window_repeat} window(s) of {config.lateness_seconds:g} s and "
        f"{config.idle_seconds:g} s). ratio = library / raw minimum of the same client (async or blocking).",
        "",
        "| scenario | figure | async library | async raw | ratio | sync library | sync raw | ratio |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows(config):
        if row.key not in results.values:
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
        if row.key == "idle.commands_per_s" and "idle.by_command" in results.breakdowns:
            lines.append(_idle_breakdown(results))
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
    if results.notes:
        lines += ["", "Notes:"] + [f"- {note}" for note in results.notes]
    return "\n".join(lines)
