"""The flags of the ops commands (`ls`, `get`, `stats`, `cancel`, `dead`, `requeue`, `purge`) and `dashboard`."""

from __future__ import annotations

import argparse
import datetime
import math
import os
import re
from collections.abc import Callable

OPS_COMMANDS = ("ls", "get", "stats", "cancel", "dead", "requeue", "purge", "dashboard")
DESTRUCTIVE = ("cancel", "requeue", "purge")
MAX_LIMIT = 1000
RELATIVE = re.compile(r"^(?P<sign>[+-])(?P<amount>\d+(\.\d+)?)(?P<unit>[smhd])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
LONGEST_INTERVAL = 3600.0


def moment(text: str) -> datetime.datetime:
    """An ISO 8601 time with its UTC offset (`2026-01-02T03:04:05Z`), or one relative to now: `+10m`, `-1h`,
    `+30s`, `+2d` (this machine's clock). A time without an offset is refused: it would be read in some zone."""
    relative = RELATIVE.match(text)
    if relative:
        span = float(relative["amount"]) * UNITS[relative["unit"]]
        sign = 1 if relative["sign"] == "+" else -1
        return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=sign * span)
    try:
        parsed = datetime.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (give ISO 8601 with an offset, like 2026-01-02T03:04:05Z, or +10m, -1h, +2d)"
        ) from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset: add Z or +HH:MM")
    return parsed


def limit(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_LIMIT}, got {value}")
    return value


def interval(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and 0.1 <= value <= LONGEST_INTERVAL):
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0.1 and <= {LONGEST_INTERVAL:g}, got {text}")
    return value


def shards(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535, got {value}")
    return value


def _connection(parser: argparse.ArgumentParser, redis_url: Callable[[str], str]) -> None:
    parser.add_argument(
        "--redis-url",
        type=redis_url,
        default=os.environ.get("REDIS_URL") or None,
        metavar="URL",
        help="the Redis the timers are on (default: $REDIS_URL)",
    )
    parser.add_argument(
        "--cluster", action="store_true", help="the --redis-url names a node of a Redis Cluster: use a cluster client"
    )
    parser.add_argument(
        "--namespace", metavar="NAME", help="the timers' namespace (default: $TIMERS_NAMESPACE, else the library's)"
    )
    parser.add_argument(
        "--shards", type=shards, metavar="N", help="the namespace's shard count (default: $TIMERS_SHARDS, else 1)"
    )


def _paging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--limit", type=limit, default=100, metavar="N", help=f"at most N per page, 1 to {MAX_LIMIT} (default: 100)"
    )
    pages = parser.add_mutually_exclusive_group()
    pages.add_argument("--cursor", metavar="CURSOR", help="the page after the one that printed this cursor")
    pages.add_argument("--all", action="store_true", help="every page, one after the other")


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON (fields in docs/operations.md)")


def _confirm(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--yes", action="store_true", help="do it without asking (needed when stdin is not a terminal)")


def add_ops_commands(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    *,
    redis_url: Callable[[str], str],
    add_common: Callable[[argparse.ArgumentParser], None],
) -> None:
    def command(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text, description=description)
        return parser

    ls = command("ls", "list pending and running timers, earliest due first", "Lists timers, earliest due first.")
    ls.add_argument("--topic", metavar="TOPIC", help="only this topic")
    ls.add_argument("--due-after", type=moment, metavar="TIME", help="only timers due at or after TIME")
    ls.add_argument("--due-before", type=moment, metavar="TIME", help="only timers due before TIME")
    ls.add_argument("--running", action="store_true", help="only timers a worker runs now (ignores --due-*)")
    _paging(ls)

    get = command("get", "show one timer", "Shows one timer; exit code 1 if there is none.")
    get.add_argument("topic", metavar="TOPIC")
    get.add_argument("timer_id", metavar="ID")

    stats = command(
        "stats",
        "counts per topic and due-time histograms of the next hour and day",
        "Counts per topic (pending, due now, overdue, running, dead) and histograms of the due times.",
    )
    stats.add_argument("--watch", action="store_true", help="redraw in place every --interval until Ctrl-C")
    stats.add_argument(
        "--interval", type=interval, default=2.0, metavar="SECONDS", help="--watch refresh interval (default: 2)"
    )
    stats.add_argument(
        "--overdue-after",
        type=interval,
        default=1.0,
        metavar="SECONDS",
        help="a timer due longer ago than this counts as overdue (default: 1)",
    )

    cancel = command("cancel", "remove a scheduled timer (asks first)", "Removes a timer. Writes.")
    cancel.add_argument("topic", metavar="TOPIC")
    cancel.add_argument("timer_id", metavar="ID")
    _confirm(cancel)

    dead = command("dead", "list dead letters with their errors", "Lists dead letters, paged.")
    dead.add_argument("--topic", metavar="TOPIC", help="only this topic")
    _paging(dead)

    requeue = command(
        "requeue", "schedule a dead letter again, due now (asks first)", "Requeues a dead letter. Writes."
    )
    requeue.add_argument("topic", metavar="TOPIC")
    requeue.add_argument("timer_id", metavar="ID")
    _confirm(requeue)

    purge = command("purge", "delete every dead letter (asks first)", "Deletes every dead letter. Writes.")
    _confirm(purge)

    for parser in (ls, get, stats, cancel, dead, requeue, purge):
        _connection(parser, redis_url)
        _json(parser)
        add_common(parser)

    dashboard = command(
        "dashboard",
        "serve a read-only web page of stats, histograms, running timers and dead letters",
        "Serves one page that refreshes itself from a JSON endpoint; it never changes anything.",
    )
    _connection(dashboard, redis_url)
    dashboard.add_argument(
        "--host", default="127.0.0.1", metavar="HOST", help="address to listen on (default: 127.0.0.1, this host only)"
    )
    dashboard.add_argument("--port", type=port, default=8000, metavar="N", help="port (default: 8000; 0 picks one)")
    dashboard.add_argument(
        "--interval", type=interval, default=2.0, metavar="SECONDS", help="page refresh interval (default: 2)"
    )
    add_common(dashboard)
