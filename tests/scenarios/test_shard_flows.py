"""Every public operation over a namespace of several shards (`TIMERS_SHARDS`), on one server: each shard has a
hash tag of its own, so the routing and the recorded shard count are checked here without a cluster."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from redis_timers import InvalidTimerIdError, SettingsError, ShardLayoutError, TimersSettings
from redis_timers.keys import Namespace
from tests.harness import Front, datetime_to_ms, spec
from tests.scenarios.models import Job, Other

SHARDS = 4
FOUR = TimersSettings(shards=SHARDS)
NAMESPACE = Namespace("timers", SHARDS)
LAYOUT_KEY = "{timers}:shards"
LATER = datetime.timedelta(hours=1)
UTC = datetime.timezone.utc
IDS = [f"t{n}" for n in range(24)]
ROOT = Path(__file__).resolve().parents[2]
README = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
PROTOCOL = " ".join((ROOT / "docs" / "protocol.md").read_text(encoding="utf-8").split())
OPERATIONS = " ".join((ROOT / "docs" / "operations.md").read_text(encoding="utf-8").split())
"""The docs with line breaks as spaces, so that a sentence is found whatever its wrapping."""


def shard_timeline(topic: str, timer_id: str) -> str:
    return NAMESPACE.keyspace_for(topic, timer_id).timeline(topic)


def spread_over_every_shard(topic: str, ids: list[str]) -> None:
    """The test's ids must exercise every shard, or routing to shard 0 only would pass too."""
    assert {NAMESPACE.keyspace_for(topic, timer_id).shard for timer_id in ids} == set(range(SHARDS))


def no_op(payload: Any, context: dict[str, Any]) -> None:
    pass


def jobs_timers(front: Front, settings: TimersSettings = FOUR) -> Any:
    return front.timers(spec("jobs", Job, no_op), spec("others", Other, no_op), settings=settings)


def test_each_timer_is_written_read_and_removed_in_its_own_shard(front: Front) -> None:
    spread_over_every_shard("jobs", IDS)
    timers = jobs_timers(front)

    for n, timer_id in enumerate(IDS):
        timers.set_timer("jobs", timer_id, Job(n=n), LATER)

    for timer_id in IDS:
        tag = NAMESPACE.keyspace_for("jobs", timer_id).tag
        assert front.raw.zscore(f"{tag}:timeline:jobs", timer_id) is not None
        assert front.raw.hexists(f"{tag}:payloads:jobs", timer_id)
    # No key under the one-shard tag but the recorded count, and no timer in a shard other than its own.
    assert [key for key in front.all_keys() if key.startswith("{timers}")] == [LAYOUT_KEY]
    assert sum(front.raw.zcard(keyspace.timeline("jobs")) for keyspace in NAMESPACE.keyspaces) == len(IDS)

    for n, timer_id in enumerate(IDS):
        info = timers.call("get_timer", "jobs", timer_id)
        assert info is not None
        assert info.payload == Job(n=n)
    removed = [timers.call("remove_timer", "jobs", timer_id) for timer_id in IDS]
    assert removed == [True] * len(IDS)
    assert all(front.raw.zcard(keyspace.timeline("jobs")) == 0 for keyspace in NAMESPACE.keyspaces)
    assert timers.call("get_timer", "jobs", IDS[0]) is None
    assert "so `set_timer`, `remove_timer`, `get_timer` and `requeue_dead_letter` stay one call, to that shard" in (
        README
    )


def test_the_seed_listings_cover_every_shard_earliest_first(front: Front) -> None:
    spread_over_every_shard("jobs", IDS)
    timers = jobs_timers(front)
    base = datetime.datetime(2100, 1, 1, tzinfo=UTC)
    # Due in the reverse order of the ids, so that earliest first interleaves the shards.
    for n, timer_id in enumerate(IDS):
        timers.set_timer("jobs", timer_id, Job(n=n), activate_at=base + datetime.timedelta(seconds=len(IDS) - n))
    timers.set_timer("others", "o", Other(text="x"), activate_at=base)

    members, payloads = timers.call("fetch_all_timers")

    assert members == ["others--o", *(f"jobs--{timer_id}" for timer_id in reversed(IDS))]
    assert payloads["jobs--t3"] == Job(n=3).model_dump_json()
    ready = timers.call("fetch_ready_timers", base + datetime.timedelta(seconds=3))
    assert ready == ["others--o", f"jobs--{IDS[-1]}", f"jobs--{IDS[-2]}", f"jobs--{IDS[-3]}"]
    assert "`fetch_all_timers()` and `fetch_ready_timers()` read every shard" in README


def bury_by_hand(front: Front, topic: str, timer_id: str, payload: str, failed_at_ms: int) -> str:
    """A dead letter as the worker writes it (`bury` in prelude.lua), in its timer's shard's hash."""
    key = NAMESPACE.keyspace_for(topic, timer_id).dead_letters
    record = {"payload": payload, "attempts": 3, "error": "boom", "failed_at": failed_at_ms}
    front.raw.hset(key, f"{topic}\0{timer_id}", json.dumps(record))
    return key


def test_dead_letters_are_listed_requeued_and_purged_across_shards(front: Front) -> None:
    spread_over_every_shard("jobs", IDS)
    timers = jobs_timers(front)
    for n, timer_id in enumerate(IDS):
        bury_by_hand(front, "jobs", timer_id, Job(n=n).model_dump_json(), 1_700_000_000_000 + n)

    letters = timers.call("dead_letters")

    assert [(letter.topic, letter.timer_id) for letter in letters] == [("jobs", timer_id) for timer_id in IDS]
    assert letters[5].payload_as(Job) == Job(n=5)

    # The requeue finds the dead letter in its shard and schedules it there.
    for timer_id in IDS[: SHARDS * 2]:
        assert timers.call("requeue_dead_letter", "jobs", timer_id) is True
        keyspace = NAMESPACE.keyspace_for("jobs", timer_id)
        assert front.raw.zscore(keyspace.timeline("jobs"), timer_id) is not None
        assert not front.raw.hexists(keyspace.dead_letters, f"jobs\0{timer_id}")
    assert timers.call("requeue_dead_letter", "jobs", IDS[0]) is False  # gone from the dead letters

    assert timers.call("purge_dead_letters") == len(IDS) - SHARDS * 2
    assert timers.call("dead_letters") == []
    assert timers.call("purge_dead_letters") == 0
    assert "a timer's dead letter is kept in its shard's `:dead` hash" in README


def test_the_legacy_import_writes_each_timer_into_its_own_shard(front: Front) -> None:
    spread_over_every_shard("jobs", IDS)
    due_second = int(time.time()) + 3600
    for n, timer_id in enumerate(IDS):
        front.raw.zadd("timers_timeline", {f"jobs--{timer_id}": due_second})
        front.raw.hset("timers_payloads", f"jobs--{timer_id}", Job(n=n).model_dump_json())
    timers = jobs_timers(front)

    timers.call("handle_ready_timers")  # imports, and finds nothing due

    assert front.raw.zcard("timers_timeline") == 0
    for n, timer_id in enumerate(IDS):
        keyspace = NAMESPACE.keyspace_for("jobs", timer_id)
        assert front.raw.zscore(keyspace.timeline("jobs"), timer_id) == due_second * 1000
        assert front.raw.hexists(keyspace.legacy_receipts("jobs"), timer_id)  # its receipt, in its shard
        info = timers.call("get_timer", "jobs", timer_id)
        assert info is not None
        assert info.payload == Job(n=n)
    assert [key for key in front.all_keys() if key.startswith("{timers}")] == [LAYOUT_KEY]

    # Cancelled by a process of the original library: the next pass follows each receipt in its own shard.
    for timer_id in IDS:
        front.raw.hdel("timers_payloads", f"jobs--{timer_id}")
    timers.call("handle_ready_timers")
    assert all(front.raw.zcard(keyspace.timeline("jobs")) == 0 for keyspace in NAMESPACE.keyspaces)
    assert all(front.raw.hlen(keyspace.legacy_receipts("jobs")) == 0 for keyspace in NAMESPACE.keyspaces)
    assert "the import of the original library's timers writes each timer into its own shard" in README
    assert "Each timer goes to its own shard: `import_legacy` is one call per shard and topic." in PROTOCOL


# -- the recorded shard count -----------------------------------------------------------


def test_the_first_process_records_the_shard_count_and_one_shard_writes_nothing(front: Front) -> None:
    one = jobs_timers(front, TimersSettings())
    one.set_timer("jobs", "a", Job(n=1), LATER)
    # As every earlier version, and the heads index.
    assert front.all_keys() == ["{timers}:heads", "{timers}:payloads:jobs", "{timers}:timeline:jobs"]

    other = jobs_timers(front, TimersSettings(namespace="sharded", shards=SHARDS))
    assert other.call("dead_letters") == []  # a read is the first call: it records the count all the same
    assert front.raw.get("{sharded}:shards") == str(SHARDS)
    assert "One shard, the default, keeps every key and call as it was." in README
    assert "The first process to run on a namespace of N > 1 shards records N at `{timers}:shards`." in README
    assert "A process with one shard writes nothing there." in README
    assert "| `{timers}:shards` | STRING | N, the namespace's shard count" in PROTOCOL


FIRST_CALLS: dict[str, Callable[[Any], object]] = {
    "set_timer": lambda timers: timers.set_timer("jobs", "b", Job(n=2), LATER),
    "get_timer": lambda timers: timers.call("get_timer", "jobs", "a"),
    "handle_ready_timers": lambda timers: timers.call("handle_ready_timers"),
    "run_forever": lambda timers: timers.background("run_forever").result(timeout=30),
}


@pytest.mark.parametrize("method", FIRST_CALLS)
def test_a_process_with_another_shard_count_refuses_to_run(front: Front, method: str) -> None:
    jobs_timers(front).set_timer("jobs", "a", Job(n=1), LATER)
    assert front.raw.get(LAYOUT_KEY) == str(SHARDS)
    before = front.all_keys()

    for shards in (1, 2):
        timers = jobs_timers(front, TimersSettings(shards=shards))
        with pytest.raises(ShardLayoutError) as refused:
            FIRST_CALLS[method](timers)
        message = str(refused.value)
        assert f"records {SHARDS} shard(s) at '{LAYOUT_KEY}'" in message
        assert f"this process has TIMERS_SHARDS={shards}" in message
        assert "new namespace (TIMERS_NAMESPACE)" in message
        assert "until it is drained" in message
        assert isinstance(refused.value, SettingsError)
    assert "`ShardLayoutError` (a `SettingsError`) refuses a process whose `TIMERS_SHARDS` is not its namespace's" in (
        README
    )

    assert front.all_keys() == before  # nothing written, the count unchanged
    assert "when the namespace records another count, when it has one shard and the namespace records several" in (
        README
    )
    assert "start the new processes with the new `TIMERS_SHARDS` and a new `TIMERS_NAMESPACE`" in OPERATIONS


@pytest.mark.parametrize("one_shard_key", ["timeline", "dead"])
def test_several_shards_refuse_a_namespace_holding_one_shard_timers(front: Front, one_shard_key: str) -> None:
    one = jobs_timers(front, TimersSettings())
    one.set_timer("jobs", "a", Job(n=1), LATER)
    if one_shard_key == "dead":
        one.call("remove_timer", "jobs", "a")
        front.raw.hset("{timers}:dead", "jobs\0a", json.dumps({"payload": "{}", "attempts": 1, "error": "x"}))
    before = front.all_keys()

    sharded = jobs_timers(front)
    with pytest.raises(ShardLayoutError) as refused:
        sharded.set_timer("jobs", "b", Job(n=2), LATER)

    key = "{timers}:timeline:jobs" if one_shard_key == "timeline" else "{timers}:dead"
    assert f"holds data written with one shard ('{key}')" in str(refused.value)
    assert f"TIMERS_SHARDS={SHARDS}" in str(refused.value)
    assert front.all_keys() == before  # no count recorded: the one-shard processes keep working
    one.set_timer("jobs", "c", Job(n=3), LATER)
    assert "or when it has several and the namespace holds one-shard timers or dead letters of its topics" in README


def evalsha_calls(front: Front) -> int:
    return int(front.raw.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def test_the_count_is_checked_once_per_timers_so_set_timer_stays_one_call(front: Front) -> None:
    jobs_timers(front).set_timer("jobs", "warm", Job(n=0), LATER)  # both scripts loaded: no NOSCRIPT counted below
    timers = jobs_timers(front)
    front.raw.config_resetstat()
    timers.set_timer("jobs", "a", Job(n=1), LATER)
    assert evalsha_calls(front) == 2  # the check, then the write
    front.raw.set(LAYOUT_KEY, "7")  # by hand: only a Timers that has not checked yet sees it

    front.raw.config_resetstat()
    timers.set_timer("jobs", "b", Job(n=2), LATER)
    assert evalsha_calls(front) == 1
    assert timers.call("get_timer", "jobs", "b") is not None

    with pytest.raises(ShardLayoutError, match="records 7 shard"):
        jobs_timers(front).set_timer("jobs", "c", Job(n=3), LATER)
    assert "before its first call to Redis (its first `set_timer`, any other method, or a worker's first" in README
    assert "round trip), and again after `include_router` adds topics (their one-shard data is checked too), never" in (
        README
    )
    assert "otherwise, so later calls cost what they did." in README
    assert "The check costs each `Timers` one script call, before its first call to Redis" in OPERATIONS


def test_processes_starting_together_on_an_empty_namespace_are_not_kept_apart(front: Front) -> None:
    one = jobs_timers(front, TimersSettings())
    assert one.call("get_timer", "jobs", "a") is None  # checked: nothing recorded, nothing one-shard yet
    jobs_timers(front).set_timer("jobs", "b", Job(n=2), LATER)  # records 4

    one.set_timer("jobs", "a", Job(n=1), LATER)  # checked already: not refused

    assert front.raw.zscore("{timers}:timeline:jobs", "a") is not None
    assert "two processes that start at the same moment on an empty namespace, one with one shard and one" in README


def test_bad_input_is_refused_before_anything_reaches_redis(front: Front) -> None:
    timers = jobs_timers(front)
    for bad_id in ("", 5, "\ud800"):
        with pytest.raises(InvalidTimerIdError):
            timers.set_timer("jobs", bad_id, Job(n=1), LATER)
        with pytest.raises(InvalidTimerIdError):
            timers.call("get_timer", "jobs", bad_id)
        with pytest.raises(InvalidTimerIdError):
            timers.call("remove_timer", "jobs", bad_id)
        with pytest.raises(InvalidTimerIdError):
            timers.call("requeue_dead_letter", "jobs", bad_id)
    assert front.all_keys() == []  # not even the shard count


def test_due_times_are_on_the_server_clock_in_every_shard(front: Front) -> None:
    timers = jobs_timers(front)
    at = datetime.datetime(2100, 1, 1, tzinfo=UTC)
    for timer_id in IDS:
        assert timers.set_timer("jobs", timer_id, Job(n=0), activate_at=at) == at
        assert front.raw.zscore(shard_timeline("jobs", timer_id), timer_id) == datetime_to_ms(at)


def test_a_router_included_after_the_check_has_its_topics_checked_too(front: Front) -> None:
    # One-shard timers of `others`, then a Timers of four shards that first handles `jobs` alone (the check
    # passes and records 4), then takes on `others`: those one-shard timers would never fire under it.
    jobs_timers(front, TimersSettings()).set_timer("others", "x", Other(text="left"), LATER)
    sharded = front.timers(spec("jobs", Job, no_op), settings=FOUR)
    sharded.set_timer("jobs", "a", Job(n=1), LATER)

    sharded.include_router(front.router(spec("others", Other, no_op)))
    with pytest.raises(ShardLayoutError, match=r"holds data written with one shard \('\{timers\}:timeline:others'\)"):
        sharded.set_timer("others", "y", Other(text="new"), LATER)
    with pytest.raises(ShardLayoutError, match="one shard"):
        sharded.call("handle_ready_timers")
    assert front.raw.zscore("{timers}:timeline:others", "x") is not None
    assert "and again after `include_router` adds topics (their one-shard data is checked too)" in README
