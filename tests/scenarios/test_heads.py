"""The heads index (`{ns}:heads`): kept by every write path, rebuilt for what processes of earlier versions wrote,
and what lets a worker's round trip cost O(log N + work done) rather than O(topics). Through both front ends.

Costs are counted on the server (INFO commandstats counts the commands run inside scripts too); no timing is
asserted.
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import Any, cast

import pytest

from redis_timers import TimerSpec, TimersSettings, scripts, wire
from tests.harness import Front, Recorder, running, spec, wait_until
from tests.scenarios.models import Job
from tests.scenarios.test_efficiency import command_counts, reset_stats, script_calls

NOW = datetime.timedelta(0)
PROTOCOL = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
HOUR = datetime.timedelta(hours=1)


def heads_drift(front: Front) -> dict[str, tuple[Any, Any]]:
    """Per shard and topic, (index entry, timeline head) where they differ: empty when the index is exact."""
    drift: dict[str, tuple[Any, Any]] = {}
    keys = front.all_keys()
    for keyspace in front.namespace.keyspaces:
        indexed: dict[str, float] = dict(cast(Any, front.raw.zrange(keyspace.heads, 0, -1, withscores=True)))
        prefix = keyspace.tag + ":timeline:"
        topics = {key[len(prefix) :] for key in keys if key.startswith(prefix)} | set(indexed)
        for topic in topics:
            head = front.raw.zrange(keyspace.timeline(topic), 0, 0, withscores=True)
            actual = head[0][1] if head else None
            if indexed.get(topic) != actual:
                drift[f"{keyspace.tag} {topic}"] = (indexed.get(topic), actual)
    return drift


def old_version_set_timer(front: Front, topic: str, timer_id: str, due_ms: int, payload: Job) -> None:
    """What `set_timer` of the release before the index writes: the timeline and the payload, no index entry.

    The payload first: that release wrote both in one script, and a worker that claimed the timeline's entry between
    two separate writes would find no payload and dead-letter the timer."""
    keyspace = front.keyspace_for(topic, timer_id)
    front.raw.hset(keyspace.payloads(topic), timer_id, payload.model_dump_json())
    front.raw.zadd(keyspace.timeline(topic), {timer_id: due_ms})


def server_ms(front: Front) -> int:
    seconds, micros = front.raw.time()
    return int(seconds) * 1000 + int(micros) // 1000


# -- every write path keeps the index ------------------------------------------------------------


@pytest.mark.cluster
def test_the_scheduling_paths_keep_the_index(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, lambda payload, context: None), spec("other", Job, lambda p, c: None))
    timers.set_timer("jobs", "a", Job(n=1), HOUR)
    assert heads_drift(front) == {}
    assert front.raw.zcard(front.keyspace_for("jobs", "a").heads) == 1
    timers.set_timer("jobs", "b", Job(n=2), datetime.timedelta(minutes=1))  # earlier: the head moves
    timers.set_timer("jobs", "b", Job(n=2), datetime.timedelta(hours=2))  # the head moves back later
    timers.call("set_timer", "jobs", "a", Job(n=1), NOW, mode="keep")  # kept: nothing written
    assert heads_drift(front) == {}
    timers.call(
        "set_timers", [TimerSpec("other", f"o{n}", Job(n=n), HOUR + datetime.timedelta(seconds=n)) for n in range(50)]
    )
    timers.call("set_timers", [TimerSpec("jobs", "c", Job(n=3), NOW)], mode="earlier")
    assert heads_drift(front) == {}
    assert timers.remove_timer("jobs", "c")
    assert heads_drift(front) == {}
    assert timers.call("remove_timers", [("other", f"o{n}") for n in range(50)]) == [True] * 50
    assert timers.remove_timer("jobs", "a")
    assert timers.remove_timer("jobs", "b")
    assert heads_drift(front) == {}
    # Emptied timelines leave the index.
    assert all(front.raw.zcard(keyspace.heads) == 0 for keyspace in front.namespace.keyspaces)


@pytest.mark.cluster
def test_the_worker_paths_keep_the_index(front: Front) -> None:
    """Ack, retry, dead letter, requeue, and the claim itself (a lease is a score)."""
    outcomes: Recorder[int] = Recorder()

    def handle(payload: Job, context: dict[str, Any]) -> None:
        outcomes.record(payload.n)
        if payload.note == "fail":
            raise RuntimeError("no")

    settings = TimersSettings(retry_backoff_seconds=3600, max_attempts=2)
    timers = front.timers(spec("jobs", Job, handle), settings=settings)
    timers.set_timer("jobs", "ok", Job(n=1), NOW)
    timers.set_timer("jobs", "retried", Job(n=2, note="fail"), NOW)
    timers.set_timer("jobs", "later", Job(n=3), HOUR)
    timers.handle_ready_timers()  # ack of "ok", retry of "retried" (an hour away)
    assert len(outcomes.items) == 2
    assert heads_drift(front) == {}

    dead_one = front.timers(spec("jobs", Job, handle, max_attempts=1))
    dead_one.set_timer("jobs", "doomed", Job(n=4, note="fail"), NOW)
    dead_one.handle_ready_timers()
    assert [letter.timer_id for letter in dead_one.dead_letters()] == ["doomed"]
    assert heads_drift(front) == {}
    assert dead_one.requeue_dead_letter("jobs", "doomed")
    assert heads_drift(front) == {}


@pytest.mark.cluster
def test_renewals_and_hand_backs_keep_the_index(front: Front) -> None:
    gate = front.gate()
    started: Recorder[int] = Recorder()

    def hold(payload: Job, context: dict[str, Any]) -> None:
        started.record(payload.n)
        gate.wait()

    timers = front.timers(
        spec("jobs", Job, hold, blocking=True),
        settings=TimersSettings(lease_seconds=1, shutdown_grace_seconds=0.1),
    )
    timers.set_timer("jobs", "held", Job(n=1), NOW)
    keyspace = front.keyspace_for("jobs", "held")
    timers.start_worker()
    try:
        started.wait_for(1)
        claimed_score = front.raw.zscore(keyspace.timeline("jobs"), "held")
        # Renewed a third of the way into its one-second lease: a later score, and the index follows.
        wait_until(lambda: front.raw.zscore(keyspace.timeline("jobs"), "held") != claimed_score)
        assert heads_drift(front) == {}
        timers.stop_worker()  # the grace period ends with the handler still held: its lease is handed back
    finally:
        gate.open()
    assert front.raw.zscore(keyspace.timeline("jobs"), "held") is not None
    assert heads_drift(front) == {}


def test_a_lease_that_ran_out_is_claimed_again_from_the_index(front: Front) -> None:
    """A lease's end is its timer's score, hence its topic's head: once it passes, the walk finds the timer."""
    calls: Recorder[int] = Recorder()
    timers = front.timers(spec("jobs", Job, lambda payload, context: calls.record(payload.n)))
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    keyspace = front.namespace.keyspaces[0]
    lease_end = server_ms(front) + 300
    # As a worker that died after its claim leaves it: leased to nobody until the lease ends.
    front.raw.zadd(keyspace.timeline("jobs"), {"a": lease_end})
    front.raw.zadd(keyspace.heads, {"jobs": lease_end})
    timers.handle_ready_timers()
    assert calls.items == []
    wait_until(lambda: server_ms(front) > lease_end)
    timers.handle_ready_timers()
    assert calls.items == [1]
    assert heads_drift(front) == {}


# -- timers written without the index -----------------------------------------------------------------


@pytest.mark.cluster
def test_timers_written_before_the_index_fire_at_once_when_a_worker_starts(front: Front) -> None:
    calls: Recorder[int] = Recorder()
    timers = front.timers(spec("jobs", Job, lambda payload, context: calls.record(payload.n)))
    for n in range(20):
        old_version_set_timer(front, "jobs", f"t{n}", server_ms(front) - 1, Job(n=n))
    with running(timers):
        calls.wait_for(20)
    assert sorted(calls.items) == list(range(20))


def test_a_timer_written_by_an_old_process_while_the_worker_runs_fires_within_one_safety_interval(
    front: Front,
) -> None:
    calls: Recorder[int] = Recorder()
    interval = 1.0
    timers = front.timers(
        spec("jobs", Job, lambda payload, context: calls.record(payload.n)),
        settings=TimersSettings(safety_wakeup_seconds=interval),
    )
    with running(timers):
        timers.set_timer("jobs", "new", Job(n=1), NOW)
        calls.wait_for(1)
        timers.set_timer("jobs", "far", Job(n=2), HOUR)  # the index says: nothing before an hour
        written_at = time.monotonic()
        old_version_set_timer(front, "jobs", "old", server_ms(front), Job(n=3))
        calls.wait_for(2, timeout=10 * interval)
        waited = time.monotonic() - written_at
    assert calls.items == [1, 3]
    # One interval for the repair, one for the safety claim's schedule to come round, and slack for a loaded machine.
    assert waited < interval + 0.5, waited


def test_the_index_is_rebuilt_for_a_topic_set_registered_anew(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, lambda payload, context: None))
    old_version_set_timer(front, "jobs", "a", server_ms(front) + 3_600_000, Job(n=1))
    assert heads_drift(front) != {}
    timers.handle_ready_timers()
    assert heads_drift(front) == {}


# -- the topic set: registered once, registered again when the server lost it -------------------------


@pytest.mark.parametrize("loss", ["flushall", "script flush", "topic set deleted"])
def test_a_worker_registers_its_topics_again_when_the_server_lost_them(front: Front, loss: str) -> None:
    calls: Recorder[int] = Recorder()
    timers = front.timers(spec("jobs", Job, lambda payload, context: calls.record(payload.n)))
    with running(timers):
        timers.set_timer("jobs", "before", Job(n=1), NOW)
        calls.wait_for(1)
        [topic_set] = [key for key in front.all_keys() if ":topics:" in key]
        if loss == "flushall":
            front.raw.flushall()
        elif loss == "script flush":
            front.raw.script_flush()
        else:
            front.raw.delete(topic_set)
        timers.set_timer("jobs", "after", Job(n=2), NOW)
        calls.wait_for(2)
        wait_until(lambda: front.raw.exists(topic_set) == 1)
    assert calls.items == [1, 2]
    assert front.raw.hget(topic_set, "jobs") == "1"


# -- fairness and cost ---------------------------------------------------------------------------------


def test_a_busy_topic_does_not_starve_the_others(front: Front) -> None:
    calls: Recorder[str] = Recorder()
    timers = front.timers(
        spec("busy", Job, lambda payload, context: calls.record("busy")),
        spec("quiet", Job, lambda payload, context: calls.record("quiet")),
    )
    long_ago = datetime.datetime.now(datetime.timezone.utc) - HOUR
    timers.call("set_timers", [TimerSpec("busy", f"b{n}", Job(n=n), activate_at=long_ago) for n in range(2000)])
    timers.set_timer("quiet", "q", Job(n=0), NOW)  # its head is later than every busy timer
    with running(timers, concurrency=10):
        calls.wait_until(lambda items: "quiet" in items, timeout=30)
    # The quiet topic's timer waits at most a round trip or two, not for the 2,000 earlier ones.
    assert calls.items.index("quiet") < 50


@pytest.mark.parametrize("topics", [1, 5000])
def test_a_round_trip_costs_the_same_with_5000_topics_as_with_one(front: Front, topics: int) -> None:
    """Each topic holds a timer an hour away; one topic has 200 due: a single pass fires them in one round trip."""
    names = [f"t{i}" for i in range(topics)]
    calls: Recorder[int] = Recorder()
    timers = front.timers(
        *(spec(name, Job, lambda payload, context: calls.record(payload.n)) for name in names),
        # Without the import of seed-era timers, which is another matter (it reads receipts per topic).
        settings=TimersSettings(concurrent_processing_limit=1000, legacy_import=False),
    )
    timers.call("set_timers", [TimerSpec(name, "future", Job(n=-1), HOUR) for name in names])
    timers.call("set_timers", [TimerSpec("t0", f"d{n}", Job(n=n), NOW) for n in range(200)])
    timers.handle_ready_timers()  # registers the topic set: a first call names every topic, once
    timers.call("set_timers", [TimerSpec("t0", f"e{n}", Job(n=n), NOW) for n in range(200)])

    reset_stats(front)
    timers.handle_ready_timers()
    counts = command_counts(front)

    assert len(calls.items) == 400
    # The claim, then the acks (a machine under load may split them over a few round trips); each round trip runs
    # a bounded number of commands whatever the topic count. The scan before the index ran a ZRANGEBYSCORE and a
    # ZRANGE per topic and call.
    round_trips = script_calls(counts)
    assert 1 <= round_trips <= 10, counts
    assert counts.get("zrangebyscore", 0) <= 2 * round_trips, counts
    assert counts.get("zrange", 0) <= 3 * round_trips, counts
    assert counts.get("hget", 0) <= 6 * round_trips, counts


# -- topics of other workers in the index ----------------------------------------------------------------


def cycle_reply(front: Front, topics: list[str], limit: int) -> list[Any]:
    """One `cycle.lua` call of a worker of `topics` (claim records of its own), registering the set."""
    keyspace = front.namespace.keyspaces[0]
    keys = (
        keyspace.dead_letters,
        keyspace.claim_record("test:now"),
        keyspace.claim_record("test:before"),
        keyspace.heads,
        keyspace.topic_set(topics),
    )
    args: tuple[Any, ...] = (
        30_000,
        limit,
        "",
        keyspace.channel_prefix,
        keyspace.tag,
        0,
        8000,
        b"",
        len(topics),
        *topics,
    )
    front.raw.delete(keys[1])
    reply: list[Any] = front.raw.eval(scripts.CYCLE.source, len(keys), *keys, *args)
    return reply


@pytest.mark.parametrize("foreign", [10, 1500])
def test_heads_of_topics_nobody_here_handles_are_stepped_over(front: Front, foreign: int) -> None:
    """Past 1,000 foreign heads in a walk, the call looks at its own topics one by one: slower, never wrong."""
    others = front.timers(*(spec(f"f{i}", Job, lambda payload, context: None) for i in range(foreign)))
    ours = front.timers(spec("mine", Job, lambda payload, context: None))
    others.call("set_timers", [TimerSpec(f"f{i}", "due", Job(n=i), NOW) for i in range(foreign)])
    ours.set_timer("mine", "later", Job(n=1), datetime.timedelta(hours=2))
    later = int(front.raw.zscore("{timers}:timeline:mine", "later") or 0)

    reply = cycle_reply(front, ["mine"], 10)
    assert reply[1] == later  # the next due time: every foreign head before it is stepped over
    assert not reply[4]

    ours.set_timer("mine", "now", Job(n=2), NOW)
    due = int(front.raw.zscore("{timers}:timeline:mine", "now") or 0)
    wait_until(lambda: server_ms(front) >= due)  # due from the next whole millisecond on
    reply = cycle_reply(front, ["mine"], 10)
    claims = reply[4]
    [claim] = wire.claims(claims.encode() if isinstance(claims, str) else claims)
    assert claim.timer_id == b"now"
    assert "past 1,000 of them in a walk, the call looks at each of its own topics instead" in PROTOCOL


def test_the_docs_say_what_the_index_costs_and_guarantees() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    operations = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text(encoding="utf-8")
    # test_a_round_trip_costs_the_same_with_5000_topics_as_with_one
    assert "so a round trip costs the server the same with 5,000 topics as with one" in " ".join(readme.split())
    assert "A call that fires 200 timers of one topic among 5,000 topics runs about as many commands" in " ".join(
        PROTOCOL.split()
    )
    # test_a_timer_written_by_an_old_process_while_the_worker_runs_fires_within_one_safety_interval
    assert "it fires at most about two safety intervals late" in " ".join(operations.split())
    # test_a_worker_registers_its_topics_again_when_the_server_lost_them
    assert "the call does nothing and answers a next due time of `-2`" in " ".join(PROTOCOL.split())
    assert "| `{ns}:heads` | ZSET |" in PROTOCOL
