"""A worker over a namespace of four shards on one server: it drains, wakes up and settles every shard.

Each shard is a hash tag of its own, so one server holds them all; the engine sends a call to each shard that
needs one, all in one pipeline.
"""

from __future__ import annotations

import datetime
import threading
import time
from pathlib import Path
from typing import Any

import pydantic
import pytest

from redis_timers import TimersServerError, TimersSettings
from redis_timers.keys import Namespace, shard_of
from tests.harness import Front, Recorder, running, spec, subscribers, wait_until
from tests.scenarios.models import Job

SHARDS = 4
TOPIC = "jobs"
NOW = datetime.timedelta(0)


class Earliest(pydantic.BaseModel):
    """Carries the earliest instant (the test's clock, us) its handler may start: the server shares that clock."""

    key: str
    earliest_us: int


def clock_us() -> int:
    return time.time_ns() // 1000


def sharded(**settings: Any) -> TimersSettings:
    return TimersSettings(shards=SHARDS, **settings)


def timers_left(front: Front) -> list[str]:
    """`timer_data`, but for the key that records the namespace's shard count, which stays."""
    layout_key = Namespace("timers", SHARDS).layout_key
    return [key for key in front.timer_data() if key != layout_key]


def ids_over_every_shard(count: int, topic: str = TOPIC) -> list[str]:
    ids = [f"t{n}" for n in range(count)]
    assert {shard_of(topic, timer_id, SHARDS) for timer_id in ids} == set(range(SHARDS))
    return ids


def test_timers_spread_over_four_shards_all_fire_and_never_early(front: Front) -> None:
    starts: Recorder[tuple[str, int, int]] = Recorder()

    def handler(payload: Earliest, context: dict[str, Any]) -> None:
        starts.record((payload.key, payload.earliest_us, clock_us()))

    timers = front.timers(spec(TOPIC, Earliest, handler), settings=sharded())
    ids = ids_over_every_shard(120)
    with running(timers):
        for n, timer_id in enumerate(ids):
            delay = datetime.timedelta(microseconds=(n * 7919) % 40_000)
            earliest_us = clock_us() + delay // datetime.timedelta(microseconds=1)
            timers.set_timer(TOPIC, timer_id, Earliest(key=timer_id, earliest_us=earliest_us), delay)
        handled = starts.wait_for(len(ids), timeout=60)

    early = [(key, earliest - started) for key, earliest, started in handled if started < earliest]
    assert early == [], f"handlers started early (us): {early}"
    assert sorted(key for key, _, _ in handled) == sorted(ids)


def test_a_worker_drains_every_shard(front: Front) -> None:
    done: Recorder[int] = Recorder()
    timers = front.timers(spec(TOPIC, Job, lambda payload, context: done.record(payload.n)), settings=sharded())
    ids = ids_over_every_shard(300)
    for n, timer_id in enumerate(ids):
        timers.set_timer(TOPIC, timer_id, Job(n=n), NOW)

    with running(timers, concurrency=8):
        done.wait_for(len(ids), timeout=60)
        wait_until(lambda: timers_left(front) == [])  # every shard's ack landed

    assert sorted(done.items) == list(range(len(ids)))


def test_a_reschedule_made_while_its_handler_runs_is_kept_in_every_shard(front: Front) -> None:
    gate, started = front.gate(), Recorder[Job]()

    def handler(payload: Job, context: dict[str, Any]) -> None:
        started.record(payload)
        if payload.note == "":
            assert gate.wait(), "the test never opened the gate"

    timers = front.timers(spec(TOPIC, Job, handler, blocking=True), settings=sharded())
    ids = ids_over_every_shard(12)
    with running(timers, concurrency=len(ids)):
        for n, timer_id in enumerate(ids):
            timers.set_timer(TOPIC, timer_id, Job(n=n), NOW)
        started.wait_for(len(ids))  # every first run holds its lease
        for n, timer_id in enumerate(ids):
            timers.set_timer(TOPIC, timer_id, Job(n=n, note="again"), NOW)
        gate.open()
        started.wait_for(2 * len(ids))  # each finished run's ack, in its shard, left the new schedule alone
        wait_until(lambda: timers_left(front) == [])

    assert sorted((job.n, job.note) for job in started.items) == sorted(
        (n, note) for n in range(len(ids)) for note in ("", "again")
    )


def test_wake_ups_reach_the_worker_from_every_shard(front: Front) -> None:
    """With a safety interval of a minute, only the wake-ups can make these timers fire within seconds.

    In rounds, each set once the last has fired: the re-claim after subscribing is long past by the second.
    """
    fired: Recorder[str] = Recorder()
    timers = front.timers(
        spec(TOPIC, Earliest, lambda payload, context: fired.record(payload.key)),
        settings=sharded(safety_wakeup_seconds=60),
    )
    ids = ids_over_every_shard(8)
    channels = [keyspace.channel(TOPIC) for keyspace in timers.timers.namespace.keyspaces]
    started_at = time.monotonic()
    with running(timers):
        wait_until(lambda: all(subscribers(front.raw, channel) == 1 for channel in channels))
        for round_number in range(3):
            for timer_id in ids:
                key = f"{timer_id}.{round_number}"
                timers.set_timer(TOPIC, timer_id, Earliest(key=key, earliest_us=0), datetime.timedelta(milliseconds=50))
            fired.wait_for(len(ids) * (round_number + 1), timeout=30)

    assert time.monotonic() - started_at < 30  # far sooner than a safety claim would find them
    assert sorted(fired.items) == sorted(f"{timer_id}.{n}" for timer_id in ids for n in range(3))


def test_handle_ready_timers_passes_over_every_shard(front: Front) -> None:
    done: Recorder[int] = Recorder()
    timers = front.timers(spec(TOPIC, Job, lambda payload, context: done.record(payload.n)), settings=sharded())
    ids = ids_over_every_shard(40)
    for n, timer_id in enumerate(ids):
        timers.set_timer(TOPIC, timer_id, Job(n=n), NOW)
    later = "later"
    timers.set_timer(TOPIC, later, Job(n=-1), datetime.timedelta(hours=1))

    timers.handle_ready_timers()

    assert sorted(done.items) == list(range(len(ids)))
    later_shard = timers.timers.namespace.keyspace_for(TOPIC, later)
    assert front.raw.zrange(later_shard.timeline(TOPIC), 0, -1) == [later]


def test_a_cycle_of_several_shards_reloads_its_script_after_a_flush(front: Front) -> None:
    done: Recorder[int] = Recorder()
    timers = front.timers(spec(TOPIC, Job, lambda payload, context: done.record(payload.n)), settings=sharded())
    ids = ids_over_every_shard(20)
    with running(timers):
        for n, timer_id in enumerate(ids[:10]):
            timers.set_timer(TOPIC, timer_id, Job(n=n), NOW)
        done.wait_for(10)
        front.raw.script_flush()
        for n, timer_id in enumerate(ids[10:], start=10):
            timers.set_timer(TOPIC, timer_id, Job(n=n), NOW)
        done.wait_for(20)

    assert sorted(done.items) == list(range(20))


@pytest.mark.parametrize("shards", [1, SHARDS])
def test_a_shard_whose_key_holds_another_type_stops_the_worker_with_that_error(front: Front, shards: int) -> None:
    timers = front.timers(spec(TOPIC, Job, lambda payload, context: None), settings=TimersSettings(shards=shards))
    front.raw.set(timers.timers.namespace.keyspaces[-1].timeline(TOPIC), "not a sorted set")

    timers.start_worker()

    with pytest.raises(TimersServerError, match="WRONGTYPE"):
        timers.wait_worker()


def test_an_idle_worker_sends_one_call_per_safety_interval_for_all_its_shards(front: Front) -> None:
    timers = front.timers(spec(TOPIC, Job, lambda payload, context: None), settings=sharded(safety_wakeup_seconds=1))
    channels = [keyspace.channel(TOPIC) for keyspace in timers.timers.namespace.keyspaces]
    with running(timers):
        wait_until(lambda: all(subscribers(front.raw, channel) == 1 for channel in channels))
        threading.Event().wait(0.5)  # a measurement window, not a synchronisation: the re-claim lands in it
        front.raw.config_resetstat()
        threading.Event().wait(3.2)  # a measurement window, not a synchronisation
        stats = front.raw.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(values["calls"]) for name, values in stats.items()}
    # Three safety intervals (a fourth may just begin): one probe per interval for every shard of the server, and
    # the notification connection's PING (commands inside the scripts are counted too: TIME, ZRANGE...).
    assert 3 <= calls.get("evalsha", 0) <= 4, calls
    assert calls.get("ping", 0) <= 4, calls


def test_a_shard_that_stops_the_worker_hands_back_what_the_other_shards_claimed_in_the_same_round_trip(
    front: Front,
) -> None:
    # The first round trip calls every shard: one claims a due timer while another meets WRONGTYPE. The claimed
    # timer never ran, so it must be handed back (its attempt uncounted), not left leased to count as an attempt.
    ran: Recorder[int] = Recorder()
    timers = front.timers(spec(TOPIC, Job, lambda payload, context: ran.record(payload.n)), settings=sharded())
    namespace = timers.timers.namespace
    healthy = next(f"t{n}" for n in range(100) if shard_of(TOPIC, f"t{n}", SHARDS) == 0)
    timers.set_timer(TOPIC, healthy, Job(n=1), NOW)
    front.raw.set(namespace.keyspaces[-1].timeline(TOPIC), "not a sorted set")

    timers.start_worker()
    with pytest.raises(TimersServerError, match="WRONGTYPE"):
        timers.wait_worker()

    info = timers.call("get_timer", TOPIC, healthy)
    assert info is not None
    assert (info.running, info.attempts) == (False, 0), info
    assert ran.items == []
    protocol = " ".join((Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text().split())
    assert (
        "Over several shards, what the other shards' calls of that round trip claimed has not run yet: the worker"
        " hands it back before it stops, so no attempt is counted for a run that never started."
    ) in protocol
