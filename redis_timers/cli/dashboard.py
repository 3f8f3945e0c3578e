"""`redis-timers dashboard`: a read-only web page of the timers, served by the standard library.

One HTML page (inline CSS and JS, no build step) fetches `/api/snapshot` every few seconds: stats per topic, the
due-time histograms of the next hour and day, the running timers, and the dead letters, paged, with their errors.
Only GET is answered, and nothing it calls writes. The page puts every stored string in place with `textContent`,
never as HTML, so ids and errors holding markup show as text; the JSON is served as `application/json`, with
`nosniff` and a Content-Security-Policy that allows no other origin. Listening on loopback, it answers only
requests whose Host is a loopback name: a page of another site, whose name an attacker made resolve to 127.0.0.1
(DNS rebinding), gets 403 instead of the timers.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import logging
import signal
import threading
import urllib.parse
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import FrameType
from typing import Any

from redis_timers.cli import render
from redis_timers.cli.connection_check import CHECKED_ERRORS, explain
from redis_timers.cli.dashboard_page import PAGE
from redis_timers.cli.ops import HISTOGRAMS
from redis_timers.errors import TimersError
from redis_timers.sync.timers import Timers as SyncTimers

logger = logging.getLogger("redis_timers.cli")

PAGE_LIMIT = 50
"""Running timers and dead letters per page."""
LOOPBACK = ("127.0.0.1", "::1", "localhost")
LOOPBACK_HOST_NAMES = ("127.0.0.1", "[::1]", "localhost")
"""What a browser sends as Host (without the port) for a page it loaded from a loopback address."""
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class BadRequest(Exception):
    pass


def host_name(header: str) -> str:
    """The Host header without its port: `127.0.0.1:8000` -> `127.0.0.1`, `[::1]:8000` -> `[::1]`."""
    name = header.strip().lower()
    if name.startswith("["):
        return name[: name.find("]") + 1]
    return name.rsplit(":", 1)[0]


def snapshot(timers: SyncTimers, query: dict[str, str]) -> dict[str, Any]:
    """What the page shows, as JSON fields (the same ones `stats --json`, `ls --json` and `dead --json` print)."""
    stats = timers.stats()
    histograms = {name: timers.due_histogram(window, buckets=buckets) for name, (window, buckets) in HISTOGRAMS.items()}
    running = timers.running_timers(limit=PAGE_LIMIT, cursor=query.get("running_cursor") or None)
    dead = timers.dead_letter_page(limit=PAGE_LIMIT, cursor=query.get("dead_cursor") or None)
    as_json = render.stats_json(stats)
    as_json["histograms"] = {name: render.histogram_json(each) for name, each in histograms.items()}
    as_json["running"] = {"timers": [render.timer_json(timer) for timer in running.items], "cursor": running.cursor}
    as_json["dead"] = {
        "dead_letters": [render.dead_letter_json(letter) for letter in dead.items],
        "cursor": dead.cursor,
        "count": stats.dead,
    }
    return as_json


class DashboardServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], timers: SyncTimers, where: str, refresh_seconds: float) -> None:
        super().__init__(address, DashboardHandler)
        self.loopback_only = address[0] in LOOPBACK
        self.timers = timers
        self.where = where
        self.refresh_seconds = refresh_seconds
        # One request reads Redis at a time: the page asks every few seconds, and a snapshot is a few calls.
        self.reading = threading.Lock()


class DashboardHandler(http.server.BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "redis-timers-dashboard"

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        host = self.headers.get("Host")
        if self.server.loopback_only and host is not None and host_name(host) not in LOOPBACK_HOST_NAMES:
            self.reply(403, "text/plain; charset=utf-8", b"this dashboard answers only on a loopback address\n")
        elif url.path == "/":
            page = PAGE.replace("__REFRESH_MS__", str(int(self.server.refresh_seconds * 1000)))
            self.reply(200, "text/html; charset=utf-8", page.encode())
        elif url.path == "/api/snapshot":
            self.reply_json(dict(urllib.parse.parse_qsl(url.query)))
        else:
            self.reply(404, "text/plain; charset=utf-8", b"not found\n")

    def reply_json(self, query: dict[str, str]) -> None:
        try:
            with self.server.reading:
                body: dict[str, Any] = snapshot(self.server.timers, query)
            status = 200
        except TimersError as error:  # a cursor from another page or another server, say
            body, status = {"error": f"{type(error).__name__}: {error}"}, 400
        except CHECKED_ERRORS as error:
            body, status = {"error": explain(error, self.server.where)}, 503
        self.reply(status, "application/json", render.json_text(body).encode())

    def reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("dashboard: %s " + format, self.address_string(), *args)


def run_dashboard(
    args: argparse.Namespace, open_timers: Callable[[argparse.Namespace], AbstractContextManager[SyncTimers]]
) -> int:
    """Serve until SIGTERM or SIGINT; exit code 0 after SIGTERM, 130 after SIGINT, 2 if it cannot start."""
    from redis_timers.cli.ops import USAGE, CommandFailed
    from redis_timers.cli.redis_url import redact_url

    with open_timers(args) as timers:
        try:
            server = DashboardServer((args.host, args.port), timers, redact_url(args.redis_url), args.interval)
        except OSError as error:
            raise CommandFailed(f"cannot listen on {args.host}:{args.port}: {error}", USAGE) from None
        received: list[int] = []

        def stop(signum: int, frame: FrameType | None) -> None:
            received.append(signum)
            # shutdown() waits for serve_forever to return, which runs in this thread: ask from another one.
            threading.Thread(target=server.shutdown, daemon=True).start()

        # Before saying where it listens: whoever waits for that line may signal at once.
        previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}
        try:
            host, port = str(server.server_address[0]), int(server.server_address[1])
            shown_host = f"[{host}]" if ":" in str(host) else host
            print(f"redis-timers dashboard (read-only) on http://{shown_host}:{port}/", flush=True)
            if args.host in LOOPBACK:
                print(f"listening on {args.host} only: reachable from this host alone", flush=True)
            else:
                logger.warning(
                    "the dashboard listens on %s, not on 127.0.0.1: anyone who can reach this address sees the timers' "
                    "ids, payloads and errors (it has no login)",
                    args.host,
                )
            server.serve_forever(poll_interval=0.2)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            with contextlib.suppress(Exception):
                server.server_close()
    return 128 + signal.SIGINT if received and received[0] == signal.SIGINT else 0
