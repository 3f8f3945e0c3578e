"""`redis-timers dashboard` as a subprocess on a real server: where it listens, what it serves, read-only."""

from __future__ import annotations

import json
import re
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.cli.conftest import Spawn
from tests.cli.ops_world import ERROR_TEXT, FAILING, HELD, ODD_IDS, ODD_TOPIC, World, world
from tests.cli.processes import CliProcess

LISTENING = re.compile(r"redis-timers dashboard \(read-only\) on (?P<url>http://\S+/)$")


@pytest.fixture
def timers_world(client: redis.Redis) -> Iterator[World]:
    with world(client) as made:
        yield made


def start_dashboard(spawn: Spawn, redis_url: str, *args: str) -> tuple[CliProcess, str]:
    dashboard = spawn("dashboard", "--redis-url", redis_url, "--port", "0", "--interval", "0.5", *args)
    line = dashboard.wait_for("redis-timers dashboard (read-only) on ")
    match = LISTENING.search(line)
    assert match is not None, line
    return dashboard, match["url"]


def fetch(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    assert url.startswith("http://127.0.0.")  # what the dashboard printed: loopback only
    request = urllib.request.Request(url, method=method)  # noqa: S310 (checked above)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def snapshot(base: str, query: str = "") -> dict[str, Any]:
    status, headers, body = fetch(f"{base}api/snapshot{query}")
    assert status == 200, body
    assert headers["Content-Type"] == "application/json"
    parsed: dict[str, Any] = json.loads(body)
    return parsed


def test_dashboard_binds_to_loopback_by_default_and_says_so(spawn: Spawn, redis_url: str) -> None:
    dashboard, url = start_dashboard(spawn, redis_url)

    assert url.startswith("http://127.0.0.1:")
    dashboard.wait_for("listening on 127.0.0.1 only: reachable from this host alone")
    dashboard.process.send_signal(signal.SIGTERM)
    assert dashboard.wait_exit() == 0, dashboard.output


def test_dashboard_warns_when_bound_elsewhere_and_exits_130_after_sigint(spawn: Spawn, redis_url: str) -> None:
    dashboard, url = start_dashboard(spawn, redis_url, "--host", "127.0.0.2")

    assert url.startswith("http://127.0.0.2:")
    dashboard.wait_for("the dashboard listens on 127.0.0.2, not on 127.0.0.1: anyone who can reach this address")
    dashboard.process.send_signal(signal.SIGINT)
    assert dashboard.wait_exit() == 130, dashboard.output


def test_snapshot_has_the_stats_histograms_running_timers_and_dead_letters_exactly(
    spawn: Spawn, redis_url: str, timers_world: World
) -> None:
    _dashboard, base = start_dashboard(spawn, redis_url)
    data = snapshot(base)

    assert set(data) == {"server_time", "totals", "topics", "histograms", "running", "dead"}
    assert data["totals"]["pending"] == len(timers_world.pending)
    assert data["totals"]["running"] == len(timers_world.running)
    assert data["topics"][ODD_TOPIC]["pending"] == len(ODD_IDS)
    assert data["histograms"]["next_hour"]["overdue"] == len(timers_world.due_now)
    assert {timer["timer_id"] for timer in data["running"]["timers"]} == set(timers_world.running)
    assert all(timer["topic"] == HELD and timer["lease_expires_at"] for timer in data["running"]["timers"])
    assert data["dead"]["count"] == len(timers_world.dead)
    letters = data["dead"]["dead_letters"]
    assert sorted(letter["timer_id"] for letter in letters) == sorted(timers_world.dead)
    assert all(letter["topic"] == FAILING and ERROR_TEXT in letter["error"] for letter in letters)


def test_the_page_holds_no_data_and_serves_only_reads(spawn: Spawn, redis_url: str, timers_world: World) -> None:
    """Every stored string reaches the page through the JSON and `textContent`: none is in the HTML."""
    _dashboard, base = start_dashboard(spawn, redis_url)
    status, headers, body = fetch(base)
    page = body.decode()

    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    for stored in [*ODD_IDS, ODD_TOPIC, "alert('boom')", *timers_world.dead]:
        assert stored not in page
    assert "innerHTML" not in page
    assert "textContent" in page
    for method in ("POST", "PUT", "DELETE"):
        assert fetch(base + "api/snapshot", method)[0] == 501
    assert fetch(base + "nothing-here")[0] == 404


def test_a_bad_cursor_gets_400_with_the_error(spawn: Spawn, redis_url: str) -> None:
    _dashboard, base = start_dashboard(spawn, redis_url)
    status, _, body = fetch(f"{base}api/snapshot?dead_cursor=not-a-cursor")

    assert status == 400
    assert "InvalidCursorError" in json.loads(body)["error"]


def test_a_port_in_use_exits_2_in_one_line(spawn: Spawn, redis_url: str) -> None:
    _first, url = start_dashboard(spawn, redis_url)
    port = url.rsplit(":", 1)[1].strip("/")
    second = spawn("dashboard", "--redis-url", redis_url, "--port", port)

    assert second.wait_exit() == 2, second.output
    assert f"redis-timers dashboard: cannot listen on 127.0.0.1:{port}:" in second.output
    assert "Traceback" not in second.output
