"""The `redis-timers` command line: argument parsing, logging set-up and dispatch to one module per command."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from importlib import metadata
from typing import NoReturn

from redis_timers.cli.connection_check import DEFAULT_CONNECT_TIMEOUT_SECONDS
from redis_timers.cli.ops_parser import OPS_COMMANDS, add_ops_commands
from redis_timers.cli.redis_url import check_redis_url, redact_urls

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LONGEST_SECONDS = 3600.0
"""Longest demo spread and connection timeout: more is a typo, and `inf` would never end."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port from 1 to 65535, got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and 0 < value <= LONGEST_SECONDS):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0 and <= {LONGEST_SECONDS:g}, got {text}")
    return value


def _redis_url(text: str) -> str:
    try:
        return check_redis_url(text)
    except ValueError as error:
        # An ArgumentTypeError, so that argparse shows our message, which hides the password, not the raw value.
        raise argparse.ArgumentTypeError(str(error)) from None


class _Parser(argparse.ArgumentParser):
    """Its errors never show a password: argparse echoes arguments it could not place ("unrecognized
    arguments: --redis-urll=redis://:secret@host"), and such a message lands in logs."""

    def error(self, message: str) -> NoReturn:
        super().error(redact_urls(message))


def _version() -> str:
    try:
        return metadata.version("redis-timers")
    except metadata.PackageNotFoundError:
        return "unknown"


def _add_common(parser: argparse.ArgumentParser, *, log_level: str) -> None:
    parser.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=DEFAULT_CONNECT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=(
            "how long Redis gets to answer a first PING at start; no answer, a wrong password or database ends "
            f"the command with exit code 2 (default: {DEFAULT_CONNECT_TIMEOUT_SECONDS:g})"
        ),
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        metavar="LEVEL",
        default=log_level,
        help=f"log level of redis_timers and the app: {', '.join(LOG_LEVELS)} (default: {log_level})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="redis-timers",
        description=(
            "Durable one-shot timers on Redis: try it (demo), run workers (worker), look and act (ls, get, stats, "
            "cancel, dead, requeue, purge, dashboard), measure it (bench)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="schedule a few dozen timers, run a worker, and print how late each one fires",
        description=(
            "Schedules timers with pydantic payloads due at random over a few seconds, runs a worker, prints "
            "each firing with its lateness (ms, on the Redis server's clock) and a summary. Starts an embedded "
            "server when no Redis URL is given. Exits non-zero if a timer fired early or did not fire."
        ),
    )
    demo.add_argument(
        "--redis-url",
        type=_redis_url,
        default=os.environ.get("REDIS_URL") or None,
        metavar="URL",
        help="Redis to run on (default: $REDIS_URL, else an embedded server started for the demo)",
    )
    demo.add_argument(
        "--cluster",
        action="store_true",
        help=(
            "run on a Redis Cluster: the URL names any node of it; with no URL, an embedded cluster of 3 primaries "
            "and 3 replicas is started for the demo"
        ),
    )
    demo.add_argument("--count", type=_positive_int, default=40, metavar="N", help="how many timers (default: 40)")
    demo.add_argument(
        "--spread",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help=f"seconds over which they fall due, at most {LONGEST_SECONDS:g} (default: 5)",
    )
    demo.add_argument("--front-end", choices=("async", "sync"), default="async", help="which worker (default: async)")
    _add_common(demo, log_level="WARNING")

    worker = commands.add_parser(
        "worker",
        help="run the Timers found at MODULE:ATTRIBUTE until SIGTERM or SIGINT",
        description=(
            "Imports MODULE and runs ATTRIBUTE, a redis_timers.Timers (async) or redis_timers.sync.Timers instance "
            "or a function returning one, with run_forever(). SIGTERM and SIGINT stop it gracefully: no new "
            "claims, in-flight handlers get the shutdown grace period to finish, unfinished ones are handed back, "
            "then it exits (0 after SIGTERM, 130 after SIGINT). A second signal exits at once (128 + its number)."
        ),
    )
    worker.add_argument("target", metavar="MODULE:ATTRIBUTE", help="for example myapp.tasks:timers")
    worker.add_argument(
        "--redis-url",
        type=_redis_url,
        metavar="URL",
        help="run against this Redis instead of the app's client (also exported as REDIS_URL before the import)",
    )
    worker.add_argument(
        "--cluster",
        action="store_true",
        help="the --redis-url names a node of a Redis Cluster: run on a cluster client of that cluster",
    )
    worker.add_argument(
        "--concurrency",
        type=_positive_int,
        metavar="N",
        help="handlers run at once (default: the instance's concurrent_processing_limit)",
    )
    worker.add_argument(
        "--metrics-port",
        type=_port,
        metavar="PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (needs the redis-timers[prometheus] extra)",
    )
    worker.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="the address the metrics exporter binds to (default: 127.0.0.1, this host only)",
    )
    _add_common(worker, log_level="INFO")

    add_ops_commands(commands, redis_url=_redis_url, add_common=lambda parser: _add_common(parser, log_level="WARNING"))

    commands.add_parser(
        "bench",
        help="run the project's benchmark (python -m benchmarks) from a source checkout; arguments are passed on",
        add_help=False,
    )
    return parser


def _configure_logging(level: str) -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
    root.setLevel(level)


def run(argv: list[str]) -> int:
    if argv[:1] == ["bench"]:
        # Everything after `bench` belongs to the benchmark, `--help` included.
        from redis_timers.cli.bench import run_bench

        return run_bench(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.log_level)
    if args.command == "demo":
        from redis_timers.cli.demo import run_demo

        return run_demo(
            redis_url=args.redis_url,
            cluster=args.cluster,
            count=args.count,
            spread=args.spread,
            front_end=args.front_end,
            connect_timeout=args.connect_timeout,
        )
    if args.command in OPS_COMMANDS:
        from redis_timers.cli.ops import run_ops

        return run_ops(args)
    if args.cluster and not args.redis_url:
        parser.error(
            "worker --cluster needs --redis-url, a node of the cluster (else the app's client is used as it is)"
        )
    from redis_timers.cli.worker import run_worker

    return run_worker(
        args.target,
        redis_url=args.redis_url,
        cluster=args.cluster,
        concurrency=args.concurrency,
        connect_timeout=args.connect_timeout,
        metrics=None if args.metrics_port is None else (args.metrics_host, args.metrics_port),
    )
