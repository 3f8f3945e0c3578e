"""The ops commands and the dashboard against what an operator may find in Redis: bytes that are not UTF-8 (keys
written by other programs), payloads that are not JSON, and requests that name another host."""

from __future__ import annotations

import http.client
import io
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import redis

from redis_timers.cli.embedded import EmbeddedServer
from redis_timers.cli.main import build_parser
from redis_timers.cli.ops import run_ops
from tests.cli.conftest import Spawn
from tests.cli.processes import ROOT, cli_environment, run_cli
from tests.cli.test_dashboard import fetch, start_dashboard

TOPIC = "raw-topic"
NOT_UTF8_ID = b"id-\xff\xfe-\x1b[2J"
NOT_UTF8_ERROR = b"boom \xff"
AS_PYTHON_READS_IT = NOT_UTF8_ID.decode("utf-8", errors="surrogateescape")


def write_raw(client: redis.Redis, *, timer_id: bytes = NOT_UTF8_ID, payload: bytes = b'{"text":"x"}') -> None:
    """A pending timer and a dead letter, written byte for byte as docs/protocol.md lays them out."""
    due_ms = int(time.time() * 1000) + 600_000
    client.zadd(f"{{timers}}:timeline:{TOPIC}", {timer_id: due_ms})
    client.hset(f"{{timers}}:payloads:{TOPIC}", timer_id, payload)
    client.hset(f"{{timers}}:state:{TOPIC}", b"e:" + timer_id, NOT_UTF8_ERROR)
    letter = b'{"payload":"{}","attempts":3,"error":"' + NOT_UTF8_ERROR + b'","failed_at":1}'
    client.hset("{timers}:dead", TOPIC.encode() + b"\0" + timer_id, letter)


def test_json_of_bytes_that_are_not_utf8_is_utf8_and_gives_the_bytes_back(redis_url: str, client: redis.Redis) -> None:
    """`--json` stays valid UTF-8 JSON: a byte that is not UTF-8 is the escape `\\udcXX` of Python's
    `surrogateescape`, so that `json.loads` and `.encode("utf-8", "surrogateescape")` give the stored bytes back.
    (Before, the raw bytes were printed: not JSON, or a traceback where stdout is strict UTF-8.)"""
    write_raw(client)
    for io_encoding in ("", "utf-8:strict"):  # the locale's default, and a stdout that refuses lone surrogates
        listed = run_cli("ls", "--redis-url", redis_url, "--json", PYTHONIOENCODING=io_encoding).json()
        (timer,) = listed["timers"]
        assert timer["timer_id"] == AS_PYTHON_READS_IT
        assert timer["timer_id"].encode("utf-8", errors="surrogateescape") == NOT_UTF8_ID
        assert timer["last_error"].encode("utf-8", errors="surrogateescape") == NOT_UTF8_ERROR

        dead = run_cli("dead", "--redis-url", redis_url, "--json", PYTHONIOENCODING=io_encoding).json()
        (letter,) = dead["dead_letters"]
        assert letter["timer_id"] == AS_PYTHON_READS_IT
        assert letter["error"].encode("utf-8", errors="surrogateescape") == NOT_UTF8_ERROR


def test_the_dashboard_serves_bytes_that_are_not_utf8(spawn: Spawn, redis_url: str, client: redis.Redis) -> None:
    """Before, one such id made every snapshot fail (an empty reply): the page showed nothing at all."""
    write_raw(client)
    _dashboard, base = start_dashboard(spawn, redis_url)
    status, _, body = fetch(f"{base}api/snapshot")

    assert status == 200, body
    snapshot = json.loads(body.decode("utf-8"))
    (letter,) = snapshot["dead"]["dead_letters"]
    assert letter["timer_id"] == AS_PYTHON_READS_IT


def test_errors_are_one_line_without_control_characters(redis_url: str, client: redis.Redis) -> None:
    """A payload that is not JSON: `get` says so in one line (pydantic's message has several, and the payload's
    escape sequences), escaped as the tables escape."""
    write_raw(client, timer_id=b"broken", payload=b'{"text":"\x1b[2J\n')
    shown = run_cli("get", TOPIC, "broken", "--redis-url", redis_url)

    assert shown.code == 2, shown
    assert "StoredPayloadError" in shown.stderr
    assert shown.stderr.endswith("\n")
    assert shown.stderr.count("\n") == 1, shown.stderr
    assert "\x1b" not in shown.stderr


def test_cancel_removes_a_timer_whose_payload_no_longer_reads(redis_url: str, client: redis.Redis) -> None:
    """The timer an operator most wants to cancel may be the one whose payload is broken: it exists, so `cancel`
    removes it (before, it failed with StoredPayloadError and exit code 2)."""
    write_raw(client, timer_id=b"broken", payload=b"not json")
    cancelled = run_cli("cancel", TOPIC, "broken", "--redis-url", redis_url, "--yes", "--json")

    assert cancelled.json()["cancelled"] is True
    assert client.zscore(f"{{timers}}:timeline:{TOPIC}", b"broken") is None


def test_the_dashboard_answers_only_requests_for_a_loopback_host(spawn: Spawn, redis_url: str) -> None:
    """Bound to loopback, it refuses a request naming another host (a page of another site whose name was made to
    resolve to 127.0.0.1, DNS rebinding, must not read the timers); `localhost` and the address itself work."""
    _dashboard, base = start_dashboard(spawn, redis_url)
    port = int(base.rsplit(":", 1)[1].strip("/"))

    def status_for(host: str) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        try:
            connection.request("GET", "/api/snapshot", headers={"Host": host})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    for foreign in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}"):
        status, body = status_for(foreign)
        assert status == 403, (foreign, body)
        assert b"server_time" not in body
    for own in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost"):
        assert status_for(own)[0] == 200, own


@pytest.fixture
def own_server() -> Iterator[EmbeddedServer]:
    """A server of this test's own, to stop and start again (the session's is shared)."""
    server = EmbeddedServer()
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("as_json", [False, True])
def test_stats_watch_outlives_the_server_going_away_and_coming_back(
    spawn: Spawn, own_server: EmbeddedServer, as_json: bool
) -> None:
    """`--watch` redraws until Ctrl-C: a Redis that goes away says so (the frame, or a line on stderr with
    `--json`) and is asked again every interval, and the frames come back with it. (Before, the first refresh that
    failed ended the watch with exit code 2.)"""
    frame = '"server_time"' if as_json else "server time "
    watch = spawn(
        "stats", "--watch", "--interval", "0.2", "--redis-url", own_server.url, *(["--json"] if as_json else [])
    )
    watch.wait_for(frame)
    own_server.stop()
    watch.wait_for("trying again every 0.2s")
    own_server.start()
    watch.wait_for(frame)
    watch.process.send_signal(signal.SIGINT)

    assert watch.wait_exit() == 130, watch.output
    assert "Traceback" not in watch.output


def many_timers(client: redis.Redis, count: int) -> None:
    due_ms = int(time.time() * 1000) + 600_000
    pipe = client.pipeline(transaction=False)
    for number in range(count):
        timer_id = f"many-{number:05d}"
        pipe.zadd(f"{{timers}}:timeline:{TOPIC}", {timer_id: due_ms + number})
        pipe.hset(f"{{timers}}:payloads:{TOPIC}", timer_id, '{"text":"x"}')
    pipe.execute()


class ClearsRedisAtFirstWrite(io.StringIO):
    """stdout that empties the namespace when the first rows are written: whatever `--all` prints after that was
    read after the first page was printed."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__()
        self.client = client

    def write(self, text: str) -> int:
        if "many-" in text:
            self.client.delete(f"{{timers}}:timeline:{TOPIC}", f"{{timers}}:payloads:{TOPIC}")
        return super().write(text)


@pytest.mark.parametrize("as_json", [False, True])
def test_ls_all_prints_each_page_before_reading_the_next(redis_url: str, client: redis.Redis, as_json: bool) -> None:
    """`ls --all` holds one page at a time (100,000 timers took 170 MB and printed nothing until the end)."""
    many_timers(client, 5)
    out = ClearsRedisAtFirstWrite(client)
    args = build_parser().parse_args(["ls", "--all", "--limit", "2", "--redis-url", redis_url, *(["--json"] * as_json)])

    assert run_ops(args, out) == 0
    if as_json:
        printed = json.loads(out.getvalue())
        assert [timer["timer_id"] for timer in printed["timers"]] == ["many-00000", "many-00001"]
        assert printed["cursor"] is None
    else:
        assert out.getvalue().count("many-") == 2


def test_a_reader_that_goes_away_ends_the_listing_quietly(redis_url: str, client: redis.Redis) -> None:
    """`ls --all | head`: exit code 141, as a command ended by SIGPIPE, and no traceback."""
    many_timers(client, 2000)
    listing = subprocess.Popen(
        [sys.executable, "-m", "redis_timers.cli", "ls", "--all", "--redis-url", redis_url],
        cwd=ROOT,
        env=cli_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert listing.stdout is not None
    assert listing.stderr is not None
    assert listing.stdout.readline().startswith(b"TOPIC")
    listing.stdout.close()

    assert listing.wait(60) == 141
    assert b"Traceback" not in listing.stderr.read()
    listing.stderr.close()
