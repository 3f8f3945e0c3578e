"""The ops commands (`ls`, `get`, `stats`, `cancel`, `dead`, `requeue`, `purge`) as subprocesses on a real server."""

from __future__ import annotations

import datetime
import json
import os
import pty
import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis

from redis_timers.cli.embedded import free_port
from redis_timers.cli.render import iso
from tests.cli.conftest import Spawn
from tests.cli.ops_world import ERROR_TEXT, FAILING, HELD, ODD_IDS, ODD_TOPIC, PLAIN, World, world
from tests.cli.processes import ROOT, cli_environment, run_cli


@pytest.fixture
def timers_world(client: redis.Redis) -> Iterator[World]:
    with world(client) as made:
        yield made


def keys_of(timers: list[dict[str, object]]) -> set[tuple[str, str]]:
    return {(str(timer["topic"]), str(timer["timer_id"])) for timer in timers}


# -- ls ----------------------------------------------------------------------------------------------------------


def test_ls_json_lists_every_pending_and_running_timer_with_its_text_exactly(
    redis_url: str, timers_world: World
) -> None:
    listed = run_cli("ls", "--redis-url", redis_url, "--json", "--all").json()

    assert listed["cursor"] is None
    timers = listed["timers"]
    expected = set(timers_world.pending) | {(HELD, timer_id) for timer_id in timers_world.running}
    assert keys_of(timers) == expected
    assert {timer["timer_id"] for timer in timers} >= set(ODD_IDS)
    due = [timer["due_at"] for timer in timers]
    assert due == sorted(due)  # earliest due first (same-width ISO strings sort as times)
    assert set(timers[0]) == {
        "topic",
        "timer_id",
        "due_at",
        "payload",
        "attempts",
        "running",
        "lease_expires_at",
        "last_error",
    }
    odd = next(timer for timer in timers if timer["timer_id"] == ODD_IDS[2])
    assert odd["payload"] == '{"text":"<img src=x onerror=alert(1)>"}'
    assert odd["running"] is False
    assert odd["lease_expires_at"] is None


def test_ls_by_topic_and_due_window(redis_url: str, timers_world: World) -> None:
    by_topic = run_cli("ls", "--redis-url", redis_url, "--json", "--topic", ODD_TOPIC).json()
    assert keys_of(by_topic["timers"]) == {(ODD_TOPIC, timer_id) for timer_id in ODD_IDS}

    due_soon = run_cli("ls", "--redis-url", redis_url, "--json", "--topic", PLAIN, "--due-before", "+1m").json()
    assert keys_of(due_soon["timers"]) == {(PLAIN, "job-due-1"), (PLAIN, "job-due-2")}

    later = run_cli(
        "ls", "--redis-url", redis_url, "--json", "--topic", PLAIN, "--due-after", "+1m", "--due-before", "+1h"
    ).json()
    assert keys_of(later["timers"]) == {(PLAIN, "job-later")}


def test_ls_pages_follow_the_cursor_it_prints(redis_url: str, timers_world: World) -> None:
    seen: list[dict[str, object]] = []
    cursor: str | None = None
    pages = 0
    while True:
        extra = ["--cursor", cursor] if cursor else []
        page = run_cli("ls", "--redis-url", redis_url, "--json", "--topic", PLAIN, "--limit", "3", *extra).json()
        seen += page["timers"]
        pages += 1
        cursor = page["cursor"]
        if cursor is None:
            break
    assert pages == 2
    assert keys_of(seen) == {key for key in timers_world.pending if key[0] == PLAIN}

    human = run_cli("ls", "--redis-url", redis_url, "--topic", PLAIN, "--limit", "3")
    assert human.code == 0, human
    assert "more: pass --cursor " in human.stdout


def test_ls_running_shows_lease_and_attempts(redis_url: str, timers_world: World) -> None:
    running = run_cli("ls", "--redis-url", redis_url, "--json", "--running").json()["timers"]

    assert keys_of(running) == {(HELD, timer_id) for timer_id in timers_world.running}
    for timer in running:
        assert timer["running"] is True
        assert timer["attempts"] == 1
        assert isinstance(timer["lease_expires_at"], str)


def test_ls_table_escapes_control_characters(redis_url: str, timers_world: World) -> None:
    table = run_cli("ls", "--redis-url", redis_url, "--topic", ODD_TOPIC)

    assert table.code == 0, table
    assert "\x1b" not in table.stdout
    assert "\t" not in table.stdout
    assert "esc\\x1b[2Jid" in table.stdout
    assert "tab\\tid" in table.stdout
    assert "<img src=x onerror=alert(1)>" in table.stdout
    assert table.stdout.splitlines()[0].split() == [
        "TOPIC",
        "ID",
        "DUE",
        "AT",
        "ATTEMPTS",
        "RUNNING",
        "LEASE",
        "EXPIRES",
        "LAST",
        "ERROR",
    ]


# -- get -----------------------------------------------------------------------------------------------------------


def test_get_shows_a_timer_of_any_topic_and_exits_1_for_a_missing_one(redis_url: str, timers_world: World) -> None:
    found = run_cli("get", ODD_TOPIC, ODD_IDS[1], "--redis-url", redis_url, "--json").json()
    assert found["topic"] == ODD_TOPIC
    assert found["timer_id"] == ODD_IDS[1]
    assert found["payload"] == '{"text":"esc\\u001b[2Jid"}'
    assert found["running"] is False

    human = run_cli("get", ODD_TOPIC, ODD_IDS[1], "--redis-url", redis_url)
    assert human.code == 0
    assert "timer_id: esc\\x1b[2Jid" in human.stdout

    missing = run_cli("get", PLAIN, "no-such-timer", "--redis-url", redis_url, "--json")
    assert (missing.code, missing.stdout) == (1, "")
    assert "no timer cli-job/no-such-timer" in missing.stderr


# -- stats -----------------------------------------------------------------------------------------------------------


def test_stats_json_counts_per_topic_and_histograms(redis_url: str, timers_world: World) -> None:
    stats = run_cli("stats", "--redis-url", redis_url, "--json").json()

    plain = stats["topics"][PLAIN]
    assert (plain["pending"], plain["due_now"], plain["overdue"], plain["running"], plain["dead"]) == (4, 2, 2, 0, 0)
    assert stats["topics"][ODD_TOPIC]["due_now"] == 1
    assert stats["topics"][HELD]["running"] == len(timers_world.running)
    assert stats["topics"][FAILING]["dead"] == len(timers_world.dead)
    totals = stats["totals"]
    assert totals["pending"] == len(timers_world.pending)
    assert totals["due_now"] == len(timers_world.due_now)
    assert totals["running"] == len(timers_world.running)
    assert totals["dead"] == len(timers_world.dead)
    assert set(totals) == {"pending", "due_now", "overdue", "running", "dead", "next_due_at", "oldest_overdue_at"}
    hour, day = stats["histograms"]["next_hour"], stats["histograms"]["next_day"]
    assert (hour["bucket_seconds"], len(hour["counts"])) == (300, 12)
    assert (day["bucket_seconds"], len(day["counts"])) == (3600, 24)
    later = len(ODD_IDS)  # the odd topic's later ones and job-later, 22.5 minutes out
    # The first buckets may also hold the running timers (at their leases' ends): the later ones are what we placed.
    assert hour["counts"][4] == later
    assert sum(hour["counts"][1:]) == later
    assert day["counts"][5] == 1  # job-much-later, in its sixth hour
    assert sum(day["counts"][1:]) == 1
    assert hour["overdue"] == len(timers_world.due_now)


def test_stats_draws_the_histograms_in_the_terminal(redis_url: str, timers_world: World) -> None:
    shown = run_cli("stats", "--redis-url", redis_url)

    assert shown.code == 0, shown
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("server time ")
    assert any(line.split()[:2] == ["(all)", str(len(timers_world.pending))] for line in lines)
    hour = lines.index(next(line for line in lines if line.startswith("next hour: ")))
    assert re.match(r"next hour: \d+ due, by 5m from \d{4}-", lines[hour])
    bars = {line.split()[0]: line for line in lines[hour + 1 : hour + 14]}
    assert bars["+20m"].endswith(f" {len(ODD_IDS)}")
    assert "█" * 40 in bars["+20m"]
    assert bars["+10m"].split() == ["+10m", "0"]  # an empty bucket: no bar
    assert any(line.startswith("next day: ") for line in lines)


def test_stats_watch_redraws_in_place_until_sigint_then_exits_130(
    spawn: Spawn, redis_url: str, client: redis.Redis
) -> None:
    watch = spawn("stats", "--watch", "--interval", "0.2", "--redis-url", redis_url)
    for _ in range(3):
        frame = watch.wait_for("server time ")
        assert frame.startswith("\x1b[H\x1b[2Jserver time ")
    watch.process.send_signal(signal.SIGINT)

    assert watch.wait_exit() == 130, watch.output
    assert "Traceback" not in watch.output


def test_stats_watch_json_prints_one_object_per_line_per_refresh(
    spawn: Spawn, redis_url: str, client: redis.Redis
) -> None:
    watch = spawn("stats", "--watch", "--json", "--interval", "0.2", "--redis-url", redis_url)
    frames = [json.loads(watch.wait_for('"server_time"')) for _ in range(3)]
    watch.process.send_signal(signal.SIGINT)

    assert watch.wait_exit() == 130, watch.output
    assert all(set(frame) == {"server_time", "totals", "topics", "histograms"} for frame in frames)
    assert len({frame["server_time"] for frame in frames}) == 3


# -- cancel, requeue, purge: confirmation ----------------------------------------------------------------------------


def test_destructive_commands_refuse_without_yes_when_stdin_is_not_a_terminal(
    redis_url: str, timers_world: World
) -> None:
    for args in (["cancel", PLAIN, "job-later"], ["requeue", FAILING, timers_world.dead[0]], ["purge"]):
        refused = run_cli(*args, "--redis-url", redis_url)
        assert refused.code == 2, refused
        assert "without --yes: stdin is not a terminal" in refused.stderr

    assert timers_world.timers.get_timer(PLAIN, "job-later") is not None
    assert len(timers_world.timers.dead_letters()) == len(timers_world.dead)


def test_cancel_with_yes_removes_the_timer_and_a_missing_one_exits_1(redis_url: str, timers_world: World) -> None:
    cancelled = run_cli("cancel", ODD_TOPIC, ODD_IDS[2], "--redis-url", redis_url, "--yes", "--json").json()

    assert cancelled == {"topic": ODD_TOPIC, "timer_id": ODD_IDS[2], "cancelled": True}
    assert timers_world.timers.get_timer(ODD_TOPIC, ODD_IDS[2]) is None
    again = run_cli("cancel", ODD_TOPIC, ODD_IDS[2], "--redis-url", redis_url, "--yes")
    assert again.code == 1
    assert "no timer " in again.stderr


def answer_on_a_terminal(answer: str, *args: str) -> tuple[int, str]:
    """Run the command with a pseudo-terminal as stdin, typing `answer`; its exit code and stderr."""
    controller, terminal = pty.openpty()
    try:
        os.write(controller, answer.encode() + b"\n")
        done = subprocess.run(  # noqa: PLW1510 (the exit code is the result)
            [sys.executable, "-m", "redis_timers.cli", *args],
            cwd=ROOT,
            env=cli_environment(),
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    return done.returncode, done.stderr


def test_cancel_on_a_terminal_asks_and_does_it_only_on_yes(redis_url: str, timers_world: World) -> None:
    code, asked = answer_on_a_terminal("n", "cancel", PLAIN, "job-later", "--redis-url", redis_url)
    assert code == 1
    assert "cancel timer cli-job/job-later? [y/N] " in asked
    assert "nothing done" in asked
    assert timers_world.timers.get_timer(PLAIN, "job-later") is not None

    code, asked = answer_on_a_terminal("y", "cancel", PLAIN, "job-later", "--redis-url", redis_url)
    assert code == 0, asked
    assert timers_world.timers.get_timer(PLAIN, "job-later") is None


# -- dead, requeue, purge --------------------------------------------------------------------------------------------


def test_dead_lists_dead_letters_with_their_errors_paged(redis_url: str, timers_world: World) -> None:
    first = run_cli("dead", "--redis-url", redis_url, "--json", "--limit", "2").json()
    assert first["count"] == len(timers_world.dead)
    assert len(first["dead_letters"]) == 2
    rest = run_cli("dead", "--redis-url", redis_url, "--json", "--limit", "2", "--cursor", first["cursor"]).json()
    letters = first["dead_letters"] + rest["dead_letters"]

    assert rest["cursor"] is None
    assert sorted(letter["timer_id"] for letter in letters) == sorted(timers_world.dead)
    for letter in letters:
        assert set(letter) == {"topic", "timer_id", "payload", "attempts", "error", "failed_at"}
        assert letter["topic"] == FAILING
        assert letter["attempts"] == 1
        assert ERROR_TEXT in letter["error"]
    table = run_cli("dead", "--redis-url", redis_url, "--topic", FAILING)
    assert table.code == 0
    assert table.stdout.startswith(f"{len(timers_world.dead)} dead letter(s)\n")
    assert ERROR_TEXT in table.stdout


def test_requeue_with_yes_and_a_missing_dead_letter_exits_1(redis_url: str, timers_world: World) -> None:
    requeued = run_cli("requeue", FAILING, timers_world.dead[0], "--redis-url", redis_url, "--yes", "--json").json()
    assert requeued == {"topic": FAILING, "timer_id": timers_world.dead[0], "requeued": True}

    missing = run_cli("requeue", FAILING, "never-died", "--redis-url", redis_url, "--yes")
    assert missing.code == 1
    assert "no dead letter failing/never-died" in missing.stderr


def test_purge_with_yes_deletes_every_dead_letter(redis_url: str, timers_world: World) -> None:
    purged = run_cli("purge", "--redis-url", redis_url, "--yes", "--json").json()

    assert purged == {"purged": len(timers_world.dead)}
    assert timers_world.timers.dead_letters() == []


# -- bad input and no Redis ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ls", "--limit", "0"], "must be between 1 and 1000"),
        (["ls", "--due-before", "2026-01-02T03:04:05"], "has no UTC offset"),
        (["ls", "--due-before", "tomorrow"], "not a time"),
        (["ls", "--cursor", "x", "--all"], "not allowed with argument"),
        (["ls", "--cursor", "not-a-cursor"], "InvalidCursorError"),
        (["ls", "--topic", "has space"], "Error"),
        (["get", "bad topic", "x"], "must be printable and contain no whitespace"),
        (["stats", "--interval", "0"], "must be a number of seconds"),
    ],
)
def test_bad_input_exits_2_with_one_line(redis_url: str, args: list[str], message: str) -> None:
    failed = run_cli(*args, "--redis-url", redis_url)

    assert failed.code == 2, failed
    assert message in failed.stderr
    assert "Traceback" not in failed.stderr


def test_no_redis_exits_2_as_the_worker_does() -> None:
    nowhere = run_cli("stats", "--redis-url", f"redis://127.0.0.1:{free_port()}")
    assert nowhere.code == 2
    assert "cannot reach Redis at redis://127.0.0.1:" in nowhere.stderr

    unset = run_cli("ls")
    assert unset.code == 2
    assert "pass --redis-url (or set REDIS_URL)" in unset.stderr


def test_namespace_and_shards_from_flags_or_timers_variables(redis_url: str, client: redis.Redis) -> None:
    from redis_timers.settings import TimersSettings

    settings = TimersSettings.from_env(namespace="elsewhere", shards=3)
    with world(client, settings=settings, running=1, dead=1) as made:
        default = run_cli("stats", "--redis-url", redis_url, "--json").json()
        assert default["totals"]["pending"] == 0
        flags = run_cli("stats", "--redis-url", redis_url, "--json", "--namespace", "elsewhere", "--shards", "3")
        by_env = run_cli("stats", "--redis-url", redis_url, "--json", TIMERS_NAMESPACE="elsewhere", TIMERS_SHARDS="3")
        for stats in (flags.json(), by_env.json()):
            assert stats["totals"]["pending"] == len(made.pending)
            assert stats["totals"]["dead"] == 1


def test_iso_is_utc_to_the_millisecond() -> None:
    moment = datetime.datetime(2026, 1, 2, 4, 4, 5, 678901, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    assert iso(moment) == "2026-01-02T03:04:05.678Z"
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", iso(datetime.datetime.now(datetime.timezone.utc)) or ""
    )


# -- on a cluster ----------------------------------------------------------------------------------------------------


def test_ops_commands_on_a_cluster_read_every_shard(cluster_url: str) -> None:
    import redis.cluster

    from redis_timers.settings import TimersSettings
    from redis_timers.sync import Router
    from redis_timers.sync import Timers as SyncTimers
    from tests.cli.ops_world import Note

    router = Router()

    @router.handler(topic=PLAIN, schema=Note)
    def not_run(note: Note, context: dict[str, object]) -> None:
        raise AssertionError("no worker runs here")  # pragma: no cover

    cluster_client = redis.cluster.RedisCluster.from_url(cluster_url)
    try:
        settings = TimersSettings.from_env(shards=6)
        timers = SyncTimers(redis_client=cluster_client, routers=[router], settings=settings)
        ids = [f"job-{number}-{ODD_IDS[number % len(ODD_IDS)]}" for number in range(24)]
        for timer_id in ids:
            timers.set_timer(PLAIN, timer_id, Note(text=timer_id), datetime.timedelta(minutes=30))
        shards = len({timers.namespace.keyspace_for(PLAIN, timer_id).shard for timer_id in ids})
        assert shards > 1  # the ids spread over several shards, so over several primaries

        common = ("--redis-url", cluster_url, "--cluster", "--shards", "6", "--json")
        listed = run_cli("ls", *common, "--all", "--limit", "5").json()
        assert sorted(timer["timer_id"] for timer in listed["timers"]) == sorted(ids)
        stats = run_cli("stats", *common).json()
        assert stats["topics"][PLAIN]["pending"] == len(ids)
        assert run_cli("get", PLAIN, ids[3], *common).json()["timer_id"] == ids[3]
        assert run_cli("cancel", PLAIN, ids[3], *common, "--yes").json()["cancelled"] is True
        assert timers.get_timer(PLAIN, ids[3]) is None

        plain_client = run_cli("stats", "--redis-url", cluster_url)
        assert plain_client.code == 2
        assert "is a node of a Redis Cluster: run with --cluster" in plain_client.stderr
    finally:
        cluster_client.close()
