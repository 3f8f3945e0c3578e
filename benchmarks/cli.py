"""`python -m benchmarks`: start a server (or use --redis-url), run the scenarios, print the table, write JSON."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks import bulk, cluster, drain, idle, lateness, legacy_lateness, machine, report, scale, schedule
from benchmarks.common import LEGACY_IMPORT_OFF, BenchmarkError, delete_namespace
from benchmarks.context import SCENARIOS, Config, Context
from benchmarks.workers import WorkerPool

RUNNERS: dict[str, Callable[[Context], None]] = {
    "schedule": schedule.run,
    "bulk": bulk.run,
    "drain": drain.run,
    "lateness": lateness.run,
    "legacy": legacy_lateness.run,
    "idle": idle.run,
    "scale": scale.run,
    "cluster": cluster.run,
}


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(float(part)) for part in text.split(",") if part)


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, Config]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark redis-timers (async and sync) beside the raw redis-py minimum, in one run.",
    )
    parser.add_argument("--redis-url", help="use this server instead of starting an embedded Valkey (keep it idle)")
    parser.add_argument(
        "--json", default="bench-results.json", help="where to write the results (default: %(default)s)"
    )
    parser.add_argument("--quick", action="store_true", help="a tiny run (CI): 200 timers, 1 repetition, short windows")
    parser.add_argument("--timers", type=int, help="timers per schedule and drain measurement (default 10000)")
    parser.add_argument("--repeat", type=int, help="repetitions of schedule, drain, fan-out and scale (default 3)")
    parser.add_argument("--window-repeat", type=int, help="repetitions of the lateness and idle windows (default 1)")
    parser.add_argument("--lateness-timers", type=int, help="timers in the lateness window (default 500)")
    parser.add_argument("--lateness-seconds", type=float, help="length of the lateness window (default 10)")
    parser.add_argument("--idle-seconds", type=float, help="length of each idle window (default 10)")
    parser.add_argument(
        "--idle-interval",
        dest="idle_interval_seconds",
        type=float,
        help="the shortened safety and legacy-import intervals of the idle windows (default 1)",
    )
    parser.add_argument("--scale-levels", type=_ints, help="pending-timer counts, e.g. 1e4,1e5,1e6 (the default)")
    parser.add_argument("--fanout", type=_ints, help="worker process counts for the drain (default 1,2,4)")
    parser.add_argument("--only", help=f"comma-separated scenarios among {','.join(SCENARIOS)}")
    parser.add_argument("--seed", type=int, help="seed of the lateness scenario's due times (default 1)")
    parser.add_argument(
        "--no-legacy-import",
        dest="legacy_import",
        action="store_false",
        help="library workers look for the original library's timers only when they start, not every 60 s",
    )
    parser.add_argument(
        "--no-freeze-gc",
        dest="freeze_gc",
        action="store_false",
        help="worker processes keep their start-up heap in the garbage collector's reach (TIMERS_FREEZE_GC=0)",
    )
    args = parser.parse_args(argv)
    config = Config.quick() if args.quick else Config()
    changes: dict[str, object] = {"legacy_import": args.legacy_import, "freeze_gc": args.freeze_gc}
    for name in (
        "repeat",
        "window_repeat",
        "lateness_timers",
        "lateness_seconds",
        "idle_seconds",
        "idle_interval_seconds",
        "seed",
    ):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.timers is not None:
        changes["timers"] = args.timers
        changes["cluster_timers"] = args.timers
        changes["scale_ops"] = max(args.timers // 5, 20)
    if args.scale_levels:
        changes["scale_levels"] = args.scale_levels
    if args.fanout:
        changes["fanout"] = args.fanout
    if args.only:
        chosen = tuple(name.strip() for name in args.only.split(",") if name.strip())
        unknown = set(chosen) - set(SCENARIOS)
        if unknown:
            parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
        changes["scenarios"] = chosen
    config = dataclasses.replace(config, **changes)  # type: ignore[arg-type]
    if min(config.repeat, config.window_repeat, config.timers, config.lateness_timers, *config.fanout) < 1:
        parser.error("counts and repetitions must be at least 1")
    if not 0 < config.idle_interval_seconds <= config.idle_seconds:
        parser.error("--idle-interval must be above 0 and at most --idle-seconds")
    return args, config


def run(url: str, config: Config, json_path: Path, command: str) -> int:
    started = time.monotonic()
    pool = WorkerPool(
        url, max(config.fanout), None if config.legacy_import else LEGACY_IMPORT_OFF, freeze_gc=config.freeze_gc
    )
    ctx = Context(url, config, pool)
    try:
        delete_namespace(ctx.control)
        described = machine.describe(ctx.control)
        ctx.progress(f"{described['server']}, {described['nproc']} CPUs, worker processes ready")
        if "DIRTY" in described["library"]:
            ctx.progress(f"warning: redis-timers at {described['library']}")
        drain.warm_up(ctx)
        for name in SCENARIOS:
            if name in config.scenarios:
                RUNNERS[name](ctx)
        elapsed = time.monotonic() - started
        table = report.markdown(ctx.results, config, described, elapsed, command)
        print(table)
        document = {
            "machine": described,
            "config": dataclasses.asdict(config),
            "command": command,
            "elapsed_seconds": elapsed,
            **ctx.results.as_json(),
            "table_markdown": table,
        }
        json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        ctx.progress(f"results written to {json_path}")
        return 0
    finally:
        pool.close()
        try:
            delete_namespace(ctx.control)
        finally:
            ctx.close()


def _without_json(arguments: list[str]) -> list[str]:
    """The command as the report shows it: where the JSON went changes no figure (and is often a local path)."""
    shown: list[str] = []
    skip = False
    for argument in arguments:
        if skip:
            skip = False
        elif argument == "--json":
            skip = True
        elif not argument.startswith("--json="):
            shown.append(argument)
    return shown


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args, config = parse(arguments)
    command = shlex.join(["uv", "run", "python", "-m", "benchmarks", *_without_json(arguments)])
    try:
        if args.redis_url:
            return run(args.redis_url, config, Path(args.json), command)
        from redis_timers.cli.embedded import EmbeddedServer

        with EmbeddedServer() as server:
            return run(server.url, config, Path(args.json), command)
    except BenchmarkError as error:
        sys.stderr.write(f"benchmark failed: {error}\n")
        return 1
