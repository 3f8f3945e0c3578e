"""Workers and writers under a least-privilege ACL user: the exact line of docs/operations.md.

Everything the library does works under it (set, fire with wake-ups, retry, dead letters,
requeue, purge, the seed-era import); what an application's timers need no more of
(FLUSHALL, KEYS, CONFIG, DEBUG, SCRIPT FLUSH) is refused; and a user without the key
pattern gets a typed error at once from every call and from the worker, not a hang.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from redis_timers import TimersDurabilityError, TimersPermissionError, TimersSettings
from redis_timers.cli.embedded import EmbeddedCluster, EmbeddedServer
from tests.harness import CLUSTER_VARIANTS, FRONT_KINDS, Front, FrontKind, Recorder, spec, subscribers, wait_until
from tests.scenarios import servers
from tests.scenarios.models import Job

NOW = datetime.timedelta(0)
OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
PASSWORD = "timers-secret"  # noqa: S105 - a test server's


CLIENT_SETINFO_SINCE = (7, 2)
"""Servers before Redis 7.2 have no CLIENT SETINFO: docs/operations.md says to leave its rule out there."""


def documented_acl_rules(server_version: tuple[int, ...]) -> list[str]:
    """The rules of the `ACL SETUSER timers ...` line in docs/operations.md, without the user name."""
    match = re.search(r"^ACL SETUSER timers (.+)$", OPERATIONS.read_text(encoding="utf-8"), re.MULTILINE)
    assert match, "docs/operations.md has no ACL SETUSER line"
    rules = match.group(1).replace("<password>", PASSWORD).split()
    if server_version < CLIENT_SETINFO_SINCE:
        assert "+client|setinfo" in rules
        rules.remove("+client|setinfo")
    return rules


def documented_extra_rules(condition: str) -> list[str]:
    """The rules docs/operations.md says to add under `condition` (a bullet "With ... add `RULES`...")."""
    text = OPERATIONS.read_text(encoding="utf-8")
    match = re.search(re.escape(condition) + r"[^`]*?add\s+`([^`]+)`", text)
    assert match, f"docs/operations.md says nothing to add {condition}"
    return match.group(1).split()


@pytest.fixture(scope="module")
def acl_server() -> Iterator[EmbeddedServer]:
    with servers.state_server() as server:  # DEBUG enabled: refused below by the ACL, not by the server
        admin = redis.Redis(host=server.host, port=server.port)
        version = tuple(int(part) for part in str(admin.info("server")["redis_version"]).split(".")[:2])
        rules = documented_acl_rules(version)
        admin.acl_setuser("timers", reset=True)
        admin.execute_command("ACL", "SETUSER", "timers", *rules)  # type: ignore[no-untyped-call]
        # The same commands, but keys and channels of another namespace only.
        other = [rule for rule in rules if not rule.startswith(("~", "&"))] + ["~other:*"]
        admin.execute_command("ACL", "SETUSER", "nokeys", *other, "&other:*")  # type: ignore[no-untyped-call]
        admin.close()
        yield server


@pytest.fixture(params=FRONT_KINDS)
def acl_front(request: pytest.FixtureRequest, acl_server: EmbeddedServer) -> Iterator[Front]:
    kind: FrontKind = request.param
    admin = redis.Redis(host=acl_server.host, port=acl_server.port)
    admin.flushall()
    admin.acl_log_reset()
    admin.close()
    front = Front(kind, acl_server.url)  # `raw` is the default user: it arranges and inspects
    try:
        yield front
    finally:
        front.close()


def user_url(server: EmbeddedServer, user: str) -> str:
    return f"redis://{user}:{PASSWORD}@{server.host}:{server.port}/0"


def test_everything_works_under_the_documented_user(acl_front: Front, acl_server: EmbeddedServer) -> None:
    url = user_url(acl_server, "timers")
    fired: Recorder[str] = Recorder()
    failures: Recorder[str] = Recorder()

    def handle(payload: Job, context: dict[str, Any]) -> None:
        fired.record(payload.note)

    def fail_once(payload: Job, context: dict[str, Any]) -> None:
        if failures.record(payload.note) == 1:
            raise RuntimeError("first attempt fails")
        fired.record(payload.note)

    def always_fail(payload: Job, context: dict[str, Any]) -> None:
        raise RuntimeError("never works")

    settings = TimersSettings(retry_backoff_seconds=0.05)
    handlers = (
        spec("jobs", Job, handle),
        spec("flaky", Job, fail_once),
        spec("doomed", Job, always_fail, max_attempts=1),
    )
    worker = acl_front.timers(*handlers, url=url, settings=settings)
    writer = acl_front.timers(*handlers, url=url, settings=settings)
    # A timer the original library wrote: the worker imports it under this user too.
    acl_front.raw.zadd("timers_timeline", {"jobs--seed": int(time.time()) - 1})
    acl_front.raw.hset("timers_payloads", "jobs--seed", Job(n=0, note="seed").model_dump_json())

    with contextlib.ExitStack() as stack:
        stack.callback(worker.shutdown_worker)
        worker.start_worker()
        fired.wait_for(1)
        wait_until(lambda: subscribers(acl_front.raw, "{timers}:wake:jobs") == 1)
        writer.set_timer("jobs", "far", Job(n=1), datetime.timedelta(hours=1))
        assert writer.get_timer("jobs", "far") is not None
        assert writer.remove_timer("jobs", "far") is True
        writer.set_timer("jobs", "woken", Job(n=2, note="woken"), NOW)  # a wake-up reaches the sleeping worker
        writer.set_timer("flaky", "retried", Job(n=3, note="retried"), NOW)
        writer.set_timer("doomed", "parked", Job(n=4, note="parked"), NOW)
        fired.wait_until(lambda items: {"woken", "retried"} <= set(items))
        wait_until(lambda: len(writer.dead_letters()) == 1)
        [letter] = writer.dead_letters()
        assert (letter.topic, letter.timer_id) == ("doomed", "parked")
        assert writer.requeue_dead_letter("doomed", "parked") is True
        wait_until(lambda: len(writer.dead_letters()) == 1)
        assert writer.purge_dead_letters() == 1
        worker.stop_worker()

    assert sorted(fired.items) == ["retried", "seed", "woken"]
    assert failures.items == ["retried", "retried"]
    writer.handle_ready_timers()
    assert acl_front.raw.zcard("timers_timeline") == 0
    # Nothing was refused along the way, not even what redis-py ignores a refusal of (CLIENT SETINFO).
    assert [entry for entry in acl_front.raw.acl_log() if entry["username"] == "timers"] == []


def test_the_documented_user_may_make_durable_writes(acl_front: Front, acl_server: EmbeddedServer) -> None:
    # The ACL server has no replica: WAIT runs (not NOPERM) and confirms nothing.
    writer = acl_front.timers(
        spec("jobs", Job, lambda payload, context: None),
        url=user_url(acl_server, "timers"),
        settings=TimersSettings(durable_timeout_seconds=0.05),
    )

    with pytest.raises(TimersDurabilityError):
        writer.set_timer("jobs", "durable", Job(n=1), datetime.timedelta(hours=1), durable=True)
    assert acl_front.raw.zscore("{timers}:timeline:jobs", "durable") is not None


@pytest.mark.parametrize("front", CLUSTER_VARIANTS, indirect=True)
def test_everything_works_under_the_documented_user_on_a_cluster(front: Front, redis_cluster: EmbeddedCluster) -> None:
    """The documented line, with what docs/operations.md adds for shards and for a cluster, on every node."""
    version = server_version(front.nodes()[0])
    rules = [
        *documented_acl_rules(version),
        *documented_extra_rules("With `TIMERS_SHARDS` > 1"),
        *documented_extra_rules("On Redis Cluster"),
    ]
    nodes = [front.node(node.host, node.port) for node in redis_cluster.live_nodes]
    for node in nodes:
        node.execute_command("ACL", "SETUSER", "timers", "reset", *rules)  # type: ignore[no-untyped-call]
        node.acl_log_reset()
    url = f"redis://timers:{PASSWORD}@{redis_cluster.url.removeprefix('redis://')}"
    fired: Recorder[int] = Recorder()

    def handle(payload: Job, context: dict[str, Any]) -> None:
        if payload.note == "doomed":
            raise RuntimeError("never works")
        fired.record(payload.n)

    try:
        worker = front.timers(spec("jobs", Job, handle, max_attempts=1), url=url)
        writer = front.timers(spec("jobs", Job, handle, max_attempts=1), url=url)
        writer.set_timer("jobs", "doomed", Job(n=-1, note="doomed"), NOW)
        ids = [f"t{n}" for n in range(12)]  # over every shard, so over every primary
        for n, timer_id in enumerate(ids):
            writer.set_timer("jobs", timer_id, Job(n=n), NOW)
        with contextlib.ExitStack() as stack:
            stack.callback(worker.shutdown_worker)
            worker.start_worker()
            fired.wait_for(len(ids))
            wait_until(lambda: len(writer.dead_letters()) == 1)
            writer.set_timer("jobs", "woken", Job(n=99), NOW)  # a wake-up reaches the sleeping worker
            assert fired.wait_for(len(ids) + 1)[-1] == 99
            assert writer.requeue_dead_letter("jobs", "doomed") is True
            wait_until(lambda: len(writer.dead_letters()) == 1)
            assert writer.purge_dead_letters() == 1
            worker.stop_worker()
        assert sorted(fired.items) == [*range(len(ids)), 99]
        # Nothing was refused on any node, not even what redis-py ignores a refusal of.
        assert [entry for node in nodes for entry in node.acl_log() if entry["username"] == "timers"] == []
    finally:
        for node in nodes:
            node.acl_deluser("timers")


@pytest.mark.parametrize(
    "command",
    [("FLUSHALL",), ("KEYS", "*"), ("CONFIG", "GET", "maxmemory"), ("DEBUG", "SLEEP", "0"), ("SCRIPT", "FLUSH")],
    ids=lambda command: " ".join(command[:2]),
)
def test_the_documented_user_cannot_run_what_timers_do_not_need(
    acl_server: EmbeddedServer, command: tuple[str, ...]
) -> None:
    client = redis.Redis.from_url(user_url(acl_server, "timers"))
    try:
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)  # type: ignore[no-untyped-call]
    finally:
        client.close()


def test_a_user_without_the_key_pattern_gets_a_typed_error_at_once(
    acl_front: Front, acl_server: EmbeddedServer
) -> None:
    timers = acl_front.timers(spec("jobs", Job, lambda payload, context: None), url=user_url(acl_server, "nokeys"))
    calls = [
        lambda: timers.set_timer("jobs", "a", Job(n=1), NOW),
        lambda: timers.remove_timer("jobs", "a"),
        lambda: timers.get_timer("jobs", "a"),
        timers.dead_letters,
        timers.handle_ready_timers,
    ]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(TimersPermissionError) as raised:
            call()
        assert raised.value.code == "NOPERM"
        assert time.monotonic() - started < 2

    timers.start_worker()
    started = time.monotonic()
    with pytest.raises(TimersPermissionError):
        timers.wait_worker()
    assert time.monotonic() - started < 5
    assert acl_front.all_keys() == []


def test_a_user_without_the_wake_up_channels_backs_off_and_says_so_once(
    acl_front: Front, acl_server: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The documented rules but the wake-up channels: every SUBSCRIBE is refused (NOPERM), for good.
    rules = [rule for rule in documented_acl_rules(server_version(acl_front.raw)) if not rule.startswith("&")]
    acl_front.raw.execute_command("ACL", "SETUSER", "nochannels", "reset", *rules)  # type: ignore[no-untyped-call]
    # No jitter: the pauses are exactly 0.05 s, then doubling.
    settings = TimersSettings(handling_sleep=0.05, handling_jitter_min_value=1, handling_jitter_max_value=1)
    worker = acl_front.timers(
        spec("jobs", Job, lambda payload, context: None), url=user_url(acl_server, "nochannels"), settings=settings
    )
    caplog.set_level(logging.DEBUG, logger="redis_timers")

    def refusals() -> list[logging.LogRecord]:
        return [record for record in list(caplog.records) if "notification connection" in record.getMessage()]

    with contextlib.ExitStack() as stack:
        stack.callback(worker.shutdown_worker)
        worker.start_worker()
        wait_until(lambda: len(refusals()) >= 4)
        assert worker.worker_running  # it claims without wake-ups
        worker.stop_worker()
    first, *rest = refusals()[:4]
    assert "NOPERM" in first.getMessage()
    assert first.levelno == logging.ERROR
    assert [record.levelno for record in rest] == [logging.DEBUG] * 3  # said once, not on every retry
    # Backoff: each refused subscription waits twice as long as the one before, not the first pause again.
    pauses = [float(re.search(r"in (\d+\.\d+)s", record.getMessage()).group(1)) for record in [first, *rest]]  # type: ignore[union-attr]
    assert pauses == [0.05, 0.1, 0.2, 0.4]


def server_version(client: redis.Redis) -> tuple[int, ...]:
    return tuple(int(part) for part in str(client.info("server")["redis_version"]).split(".")[:2])


def test_a_user_without_the_original_librarys_keys_needs_the_import_switched_off(
    acl_front: Front, acl_server: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    seed_keys = ("~timers_timeline", "~timers_payloads")
    rules = [rule for rule in documented_acl_rules(server_version(acl_front.raw)) if rule not in seed_keys]
    acl_front.raw.execute_command("ACL", "SETUSER", "noseed", "reset", *rules)  # type: ignore[no-untyped-call]
    url = user_url(acl_server, "noseed")
    fired: Recorder[str] = Recorder()
    handler = spec("jobs", Job, lambda payload, context: fired.record(payload.note))
    caplog.set_level(logging.ERROR, logger="redis_timers")

    importing = acl_front.timers(handler, url=url)
    importing.set_timer("jobs", "now", Job(n=1, note="now"), NOW)
    importing.start_worker()
    with pytest.raises(TimersPermissionError):
        importing.wait_worker()
    [refusal] = [record.getMessage() for record in caplog.records if "import" in record.getMessage()]
    assert "NOPERM" in refusal
    assert "TIMERS_LEGACY_IMPORT=0" in refusal

    not_importing = acl_front.timers(handler, url=url, settings=TimersSettings(legacy_import=False))
    with contextlib.ExitStack() as stack:
        stack.callback(not_importing.shutdown_worker)
        not_importing.start_worker()
        fired.wait_for(1)
        not_importing.stop_worker()
    assert fired.items == ["now"]


def documented_shard_rules() -> list[str]:
    """The rules docs/operations.md says to add for a namespace of several shards."""
    text = " ".join(OPERATIONS.read_text(encoding="utf-8").split())
    match = re.search(
        r"With `TIMERS_SHARDS` > 1 the shards' keys and channels carry tags of their own: add `([^`]+)`", text
    )
    assert match, "docs/operations.md says nothing of the ACL rules of several shards"
    return match.group(1).split()


def test_the_documented_user_with_the_shard_rules_runs_every_call_over_shards(
    acl_front: Front, acl_server: EmbeddedServer
) -> None:
    admin = redis.Redis(host=acl_server.host, port=acl_server.port)
    version = tuple(int(part) for part in str(admin.info("server")["redis_version"]).split(".")[:2])
    rules = documented_acl_rules(version)
    admin.execute_command("ACL", "SETUSER", "sharded", "reset", *rules, *documented_shard_rules())  # type: ignore[no-untyped-call]
    admin.close()
    settings = TimersSettings(shards=4)
    ids = [f"t{n}" for n in range(16)]

    # The documented user alone is refused the shards' keys, with a typed error.
    plain = acl_front.timers(
        spec("jobs", Job, lambda payload, context: None), url=user_url(acl_server, "timers"), settings=settings
    )
    with pytest.raises(TimersPermissionError):
        plain.set_timer("jobs", ids[0], Job(n=0), datetime.timedelta(hours=1))

    timers = acl_front.timers(
        spec("jobs", Job, lambda payload, context: None), url=user_url(acl_server, "sharded"), settings=settings
    )
    for n, timer_id in enumerate(ids):
        timers.set_timer("jobs", timer_id, Job(n=n), datetime.timedelta(hours=1))
    assert all(timers.get_timer("jobs", timer_id) is not None for timer_id in ids)
    assert len(timers.call("fetch_all_timers")[0]) == len(ids)
    assert timers.remove_timer("jobs", ids[0]) is True
    timers.handle_ready_timers()
    assert timers.dead_letters() == []
    assert timers.requeue_dead_letter("jobs", ids[1]) is False
    assert timers.purge_dead_letters() == 0
    assert [entry for entry in acl_front.raw.acl_log() if entry["username"] == "sharded"] == []


def test_inspection_works_under_the_documented_user_with_its_rules(
    acl_front: Front, acl_server: EmbeddedServer
) -> None:
    admin = redis.Redis(host=acl_server.host, port=acl_server.port)
    version = server_version(admin)
    rules = [
        *documented_acl_rules(version),
        *documented_extra_rules("With `TIMERS_SHARDS` > 1"),
        *documented_extra_rules("For the inspection calls"),
    ]
    admin.execute_command("ACL", "SETUSER", "inspector", "reset", *rules)  # type: ignore[no-untyped-call]
    try:
        settings = TimersSettings(shards=4)
        writer = acl_front.timers(
            spec("jobs", Job, lambda payload, context: None),
            spec("doomed", Job, lambda payload, context: 1 / 0, max_attempts=1),
            url=user_url(acl_server, "inspector"),
            settings=settings,
        )
        for n in range(10):
            writer.set_timer("jobs", f"t{n}", Job(n=n), datetime.timedelta(hours=1))
        writer.set_timer("doomed", "d", Job(n=0), NOW)
        writer.handle_ready_timers()
        inspector = acl_front.timers(url=user_url(acl_server, "inspector"), settings=settings)

        assert inspector.call("topics") == ["jobs"]
        assert inspector.call("count_timers") == 10
        assert len(inspector.call("list_timers", limit=20).items) == 10
        assert inspector.call("running_timers").items == []
        assert inspector.call("stats").dead == 1
        assert sum(inspector.call("due_histogram", datetime.timedelta(hours=2), buckets=2).counts) == 10
        assert len(inspector.call("dead_letter_page").items) == 1
        assert inspector.call("count_dead_letters", "doomed") == 1
        assert inspector.purge_dead_letters() == 1
        assert [entry for entry in admin.acl_log() if entry["username"] == "inspector"] == []
    finally:
        admin.acl_deluser("inspector")
        admin.close()
