"""Contracts 6 and 7, checked on the server: a backlog drains in batches, an idle worker sends next to nothing,
and every key shares one hash tag.

Counts come from INFO commandstats (commands inside scripts are counted too, so round trips are
counted as EVALSHA/EVAL calls); no timing is asserted.
"""

from __future__ import annotations

import datetime
import threading
from typing import Any

import pytest

from redis_timers import TimersSettings
from tests.harness import Front, Recorder, running, spec, wait_until
from tests.scenarios.models import Job

NOW = datetime.timedelta(0)
TIMELINE = "{timers}:timeline:jobs"


def command_counts(front: Front) -> dict[str, int]:
    """Calls of each command, added up over every server (each primary of a cluster)."""
    counts: dict[str, int] = {}
    for node in front.nodes():
        for name, values in node.info("commandstats").items():
            command = name.removeprefix("cmdstat_")
            counts[command] = counts.get(command, 0) + int(values["calls"])
    return counts


def reset_stats(front: Front) -> None:
    for node in front.nodes():
        node.config_resetstat()


def timers_left(front: Front, topic: str) -> int:
    return sum(front.raw.zcard(keyspace.timeline(topic)) for keyspace in front.namespace.keyspaces)


def script_calls(counts: dict[str, int]) -> int:
    return counts.get("evalsha", 0) + counts.get("eval", 0)


@pytest.mark.parametrize("how", ["run_forever", "handle_ready_timers"])
@pytest.mark.cluster
def test_a_backlog_drains_in_batches(front: Front, how: str) -> None:
    calls: Recorder[int] = Recorder()
    timers = front.timers(spec("jobs", Job, lambda payload, context: calls.record(payload.n)))
    timers.handle_ready_timers()  # scripts loaded, connection made: not part of the count
    total = 1000
    for n in range(total):
        timers.set_timer("jobs", f"t{n}", Job(n=n), NOW)

    reset_stats(front)
    if how == "run_forever":
        with running(timers):
            calls.wait_for(total)
            wait_until(lambda: timers_left(front, "jobs") == 0)  # the last acks
    else:
        timers.handle_ready_timers()
    counts = command_counts(front)
    assert sorted(calls.items) == list(range(total))
    # One round trip per timer would be >= 1000; claims and acks go in batches of up to the concurrency limit.
    assert script_calls(counts) <= 300, counts


@pytest.mark.cluster
def test_an_idle_worker_sends_next_to_nothing(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, lambda payload, context: None))
    timers.set_timer("jobs", "far", Job(n=0), datetime.timedelta(hours=1))
    with running(timers):
        wait_until(lambda: all(front.subscribers(channel) >= 1 for channel in front.wake_channels("jobs")))
        # Once subscribed, the worker claims once more to catch up; nothing marks when that round trip
        # lands, so a first window absorbs it and only the second one is counted.
        threading.Event().wait(1.0)  # a measurement window, not a synchronisation
        reset_stats(front)
        threading.Event().wait(1.5)  # a measurement window, not a synchronisation
        counts = command_counts(front)
    counts.pop("config|resetstat", None)
    counts.pop("info", None)
    counts.pop("replconf", None)  # a cluster's replicas acknowledge replication to their primaries every second
    assert sum(counts.values()) <= 2, counts


def test_every_key_the_library_writes_shares_the_namespace_hash_tag(front: Front) -> None:
    """Contract 7: each script touches one hash slot, so the same code runs on Redis Cluster."""
    gate, started = front.gate(), Recorder[int]()

    def handler(payload: Job, context: dict[str, Any]) -> None:
        started.record(payload.n)
        if payload.n == 0:
            raise RuntimeError("to the dead letters")
        assert gate.wait()

    timers = front.timers(
        spec("jobs", Job, handler, blocking=True),
        spec("other", Job, handler, blocking=True),
        settings=TimersSettings(namespace="shop", max_attempts=1),
    )
    front.raw.zadd("timers_timeline", {"jobs--legacy": 1})
    front.raw.hset("timers_payloads", "jobs--legacy", Job(n=9).model_dump_json())
    timers.set_timer("jobs", "dead", Job(n=0), NOW)
    for n in range(1, 6):
        timers.set_timer("jobs" if n % 2 else "other", f"t{n}", Job(n=n), NOW)
    with running(timers):
        started.wait_for(7)  # every run in flight: leases, claim records and dead letters all exist now
        seen_in_flight = set(front.all_keys())
        gate.open()
    # The original library's keys are only read and deleted from (the import keeps their payloads until done).
    seen = (seen_in_flight | set(front.all_keys())) - {"timers_timeline", "timers_payloads"}
    assert seen, "nothing was written"
    assert sorted(key for key in seen if not key.startswith("{shop}:")) == []
