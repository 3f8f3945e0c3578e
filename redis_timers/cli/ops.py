"""The ops commands: `ls`, `get`, `stats`, `cancel`, `dead`, `requeue`, `purge`, on the blocking front end.

Exit codes: 0 done, 1 not found (`get`, `cancel`, `requeue` of a timer or dead letter that is not there, or a
confirmation answered no), 2 bad input or no usable Redis (the code `worker` and `demo` use for that too), 130
`stats --watch` stopped by Ctrl-C, 141 stdout's reader gone.
They work on any topic, handled by this process or not: `get` and `cancel` name the topic with a handler that
never runs and reads any JSON payload.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import logging
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import pydantic
import redis.exceptions

from redis_timers.cli import clients, render
from redis_timers.cli.connection_check import CHECKED_ERRORS, RedisUnusable, check_sync, explain
from redis_timers.cli.redis_url import redact_url
from redis_timers.errors import StoredPayloadError, TimersConnectionError, TimersError, TimersUnavailableError
from redis_timers.records import Page
from redis_timers.router import Router
from redis_timers.settings import TimersSettings
from redis_timers.sync.timers import Timers as SyncTimers

logger = logging.getLogger("redis_timers.cli")

OK, NOT_FOUND, USAGE = 0, 1, 2
INTERRUPTED = 130
"""`stats --watch` stopped by Ctrl-C (SIGINT), as `worker` and shells do."""
READER_GONE = 141
"""stdout's reader went away (`ls --all | head`): a shell's code for a command ended by SIGPIPE."""
HOUR, DAY = datetime.timedelta(hours=1), datetime.timedelta(days=1)
HISTOGRAMS = {"next_hour": (HOUR, 12), "next_day": (DAY, 24)}
"""Each histogram's window and bucket count: the next hour by 5 minutes, the next day by hour."""
CLEAR_SCREEN = "\x1b[H\x1b[2J"
PASSING_ERRORS = (
    TimersConnectionError,
    TimersUnavailableError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
)
"""What `stats --watch` waits out: Redis unreachable, or loading after a restart."""


class AnyPayload(pydantic.RootModel[Any]):
    """Whatever JSON a timer stores: `get` shows it as stored, whichever app's schema wrote it."""


class CommandFailed(Exception):
    """Ends a command with `code`, the message said on stderr."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def settings_for(args: argparse.Namespace) -> TimersSettings:
    overrides: dict[str, Any] = {}
    if args.namespace is not None:
        overrides["namespace"] = args.namespace
    if args.shards is not None:
        overrides["shards"] = args.shards
    return TimersSettings.from_env(**overrides)


@contextlib.contextmanager
def open_timers(args: argparse.Namespace, *, topic: str | None = None) -> Iterator[SyncTimers]:
    """A blocking `Timers` on `--redis-url` that has checked that Redis answers; with `topic`, one that may
    name that topic in `get_timer`/`remove_timer` (its handler never runs: nothing here runs a worker)."""
    if not args.redis_url:
        raise CommandFailed("no Redis given: pass --redis-url (or set REDIS_URL)", USAGE)
    where = redact_url(args.redis_url)
    try:
        settings = settings_for(args)
        routers = [reader_of(topic)] if topic is not None else []
    except TimersError as error:
        raise CommandFailed(f"{type(error).__name__}: {error}", USAGE) from None
    try:
        client = clients.sync_client(args.redis_url, cluster=args.cluster)
    except CHECKED_ERRORS as error:  # a cluster client reads its slot map as it is made
        raise CommandFailed(explain(error, where, args.connect_timeout), USAGE) from None
    try:
        try:
            check_sync(client, where, args.connect_timeout)
        except RedisUnusable as error:
            raise CommandFailed(str(error), USAGE) from None
        try:
            yield SyncTimers(redis_client=client, routers=routers, settings=settings)
        except TimersError as error:
            raise CommandFailed(f"{type(error).__name__}: {error}", USAGE) from None
        except BrokenPipeError:
            raise  # an OSError of stdout, not of Redis: see `run_ops`
        except CHECKED_ERRORS as error:
            raise CommandFailed(explain(error, where), USAGE) from None
    finally:
        client.close()


def reader_of(topic: str) -> Router:
    router = Router()

    @router.handler(topic=topic, schema=AnyPayload)
    def never_run(payload: AnyPayload, context: dict[str, Any]) -> None:
        raise AssertionError("the ops commands run no worker")

    return router


def emit(args: argparse.Namespace, as_json: object, human: Callable[[], str], out: TextIO) -> None:
    if args.json:
        out.write(render.json_text(as_json) + "\n")
    else:
        out.write(human() + "\n")
    out.flush()


def print_pages(
    args: argparse.Namespace,
    out: TextIO,
    fetch: Callable[[str | None], Page[Any]],
    field: str,
    as_json: Callable[[Any], dict[str, Any]],
    table: Callable[..., str],
    after_json: str = "",
) -> None:
    """One page (from `--cursor`), or with `--all` every page in turn, each printed as soon as it is read: `--all`
    over a big namespace holds one page at a time, and whoever reads the output sees rows at once. The JSON is
    that of `{field: [...], "cursor": ..., <after_json>}`, written piecewise."""
    widths: list[int] = []
    separator = ""
    page = fetch(args.cursor)
    if args.json:
        out.write("{" + render.json_text(field) + ": [")
    while True:
        if args.json:
            for item in page.items:
                out.write(separator + render.json_text(as_json(item)))
                separator = ", "
        else:
            text = table(page.items, widths=widths, with_headers=not widths)
            out.write(text + "\n" if text else "")
        out.flush()
        if not args.all or page.cursor is None:
            break
        page = fetch(page.cursor)
    if args.json:
        out.write('], "cursor": ' + render.json_text(page.cursor) + after_json + "}\n")
    elif page.cursor is not None:
        out.write(f"more: pass --cursor {shlex.quote(page.cursor)} for the next page\n")
    out.flush()


def ls(args: argparse.Namespace, out: TextIO) -> int:
    with open_timers(args) as timers:
        if args.running:
            fetch: Callable[[str | None], Page[Any]] = lambda after: timers.running_timers(  # noqa: E731
                args.topic, limit=args.limit, cursor=after
            )
        else:
            fetch = lambda after: timers.list_timers(  # noqa: E731
                args.topic, due_after=args.due_after, due_before=args.due_before, limit=args.limit, cursor=after
            )
        print_pages(args, out, fetch, "timers", render.timer_json, render.timers_table)
    return OK


def get(args: argparse.Namespace, out: TextIO) -> int:
    with open_timers(args, topic=args.topic) as timers:
        found = timers.get_timer(args.topic, args.timer_id)
    if found is None:
        raise CommandFailed(f"no timer {named_timer(args)}", NOT_FOUND)
    fields = render.timer_json(found)
    emit(args, fields, lambda: "\n".join(f"{name}: {render.shown(str(value))}" for name, value in fields.items()), out)
    return OK


def stats_frame(timers: SyncTimers, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    stats = timers.stats(overdue_after=datetime.timedelta(seconds=args.overdue_after))
    histograms = {name: timers.due_histogram(window, buckets=buckets) for name, (window, buckets) in HISTOGRAMS.items()}
    as_json = render.stats_json(stats)
    as_json["histograms"] = {name: render.histogram_json(each) for name, each in histograms.items()}
    charts = [render.histogram_chart(name.replace("_", " "), each) for name, each in histograms.items()]
    return as_json, "\n\n".join([render.stats_table(stats), *charts])


def stats(args: argparse.Namespace, out: TextIO) -> int:
    with open_timers(args) as timers:
        if not args.watch:
            as_json, human = stats_frame(timers, args)
            emit(args, as_json, lambda: human, out)
            return OK
        try:
            while True:
                try:
                    as_json, human = stats_frame(timers, args)
                except PASSING_ERRORS as error:
                    # A restart or a blip: say so and ask again, as a watch should, rather than end.
                    said = render.shown(explain(error, redact_url(args.redis_url)))
                    gone = f"{said}; trying again every {args.interval:g}s"
                    if args.json:
                        sys.stderr.write(f"redis-timers stats: {gone}\n")
                        sys.stderr.flush()
                    else:
                        out.write(f"{CLEAR_SCREEN}{gone}\n\n(Ctrl-C stops)\n")
                        out.flush()
                else:
                    if args.json:
                        emit(args, as_json, str, out)  # one JSON object per line, per refresh
                    else:
                        out.write(f"{CLEAR_SCREEN}{human}\n\n(every {args.interval:g}s; Ctrl-C stops)\n")
                        out.flush()
                time.sleep(args.interval)
        except KeyboardInterrupt:
            return INTERRUPTED


def confirm(args: argparse.Namespace, question: str | Callable[[], str]) -> None:
    """Go on with `--yes`, or after a `y` typed on a terminal; refuse without `--yes` when stdin is no terminal.
    A callable `question` is asked only when there is someone to ask (it may read Redis)."""
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise CommandFailed(f"refusing to {args.command} without --yes: stdin is not a terminal to ask on", USAGE)
    sys.stderr.write(f"{question() if callable(question) else question}? [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise CommandFailed("nothing done", NOT_FOUND)


def named_timer(args: argparse.Namespace) -> str:
    """`topic/timer_id` of the command's arguments, as the terminal shows them."""
    return f"{render.shown(args.topic)}/{render.shown(args.timer_id)}"


def emit_done(args: argparse.Namespace, done: str, human: str, out: TextIO) -> None:
    """What a command that acted on the one timer of its arguments did: `{..., done: true}` in JSON, else `human`."""
    emit(args, {"topic": args.topic, "timer_id": args.timer_id, done: True}, lambda: human, out)


def cancel(args: argparse.Namespace, out: TextIO) -> int:
    named = named_timer(args)
    with open_timers(args, topic=args.topic) as timers:
        try:
            found = timers.get_timer(args.topic, args.timer_id) is not None
        except StoredPayloadError:
            found = True  # there, with a payload that no longer reads: maybe the very reason to cancel it
        if not found:
            raise CommandFailed(f"no timer {named}", NOT_FOUND)
        confirm(args, f"cancel timer {named}")
        if not timers.remove_timer(args.topic, args.timer_id):
            raise CommandFailed(f"no timer {named} (gone meanwhile)", NOT_FOUND)
    emit_done(args, "cancelled", f"cancelled {named}", out)
    return OK


def dead(args: argparse.Namespace, out: TextIO) -> int:
    with open_timers(args) as timers:
        count = timers.count_dead_letters(args.topic)
        if not args.json:
            out.write(f"{count} dead letter(s)\n")

        def fetch(after: str | None) -> Page[Any]:
            return timers.dead_letter_page(args.topic, limit=args.limit, cursor=after)

        after_json = ', "count": ' + render.json_text(count)
        print_pages(args, out, fetch, "dead_letters", render.dead_letter_json, render.dead_letters_table, after_json)
    return OK


def requeue(args: argparse.Namespace, out: TextIO) -> int:
    named = named_timer(args)
    with open_timers(args) as timers:
        confirm(args, f"requeue dead letter {named} (due now)")
        if not timers.requeue_dead_letter(args.topic, args.timer_id):
            raise CommandFailed(f"no dead letter {named}", NOT_FOUND)
    emit_done(args, "requeued", f"requeued {named}, due now", out)
    return OK


def purge(args: argparse.Namespace, out: TextIO) -> int:
    with open_timers(args) as timers:
        confirm(args, lambda: f"delete all {timers.count_dead_letters()} dead letter(s)")
        purged = timers.purge_dead_letters()
    emit(args, {"purged": purged}, lambda: f"purged {purged} dead letter(s)", out)
    return OK


COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
    "ls": ls,
    "get": get,
    "stats": stats,
    "cancel": cancel,
    "dead": dead,
    "requeue": requeue,
    "purge": purge,
}


def run_ops(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the ops command `args.command`; its message, when it fails, is one line on stderr."""
    try:
        if args.command == "dashboard":
            from redis_timers.cli.dashboard import run_dashboard

            return run_dashboard(args, open_timers)
        return COMMANDS[args.command](args, sys.stdout if out is None else out)
    except BrokenPipeError:
        # The reader has what it wanted: end quietly, and let nothing flush into the closed pipe at exit.
        if out is None:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return READER_GONE
    except CommandFailed as failure:
        # One line, escaped as the tables are: messages quote stored text and server replies (pydantic's span lines).
        sys.stderr.write(f"redis-timers {args.command}: {render.shown(str(failure))}\n")
        return failure.code
