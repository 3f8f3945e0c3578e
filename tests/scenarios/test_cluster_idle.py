"""What an idle worker costs each server, per safety interval (docs/cluster.md, "Choosing N"), and that its safety
checks still find a timer whose wake-up was lost within one interval.

With several shards, an idle worker's safety check is one read-only probe per node for every shard it holds
(`redis_timers/probe.py`), so each primary of a cluster (and a single server holding several shards) gets one
script call per interval whatever N is, and the node of the worker's notification connection one `PING` more.
Counted from `INFO commandstats` of each primary over a window of several (shortened) intervals; the counts at
the window's edges may be off by one interval's worth.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redis_timers import TimersSettings, probe
from redis_timers.slots import key_slot
from tests.harness import FRONT_KINDS, Front, FrontKind, Recorder, running, spec, wait_until
from tests.scenarios.models import Job
from tests.scenarios.test_efficiency import command_counts, reset_stats
from tests.scenarios.test_heads import old_version_set_timer, server_ms

CLUSTER_SHARDS = 6
SERVER_SHARDS = 4
INTERVAL_SECONDS = 0.5
WINDOW_SECONDS = 3.0
SLACK_SECONDS = 1.0
"""How much later than one interval a lost wake-up's timer may fire: the claim's round trip on a loaded machine."""
LATE_SECONDS = 0.3
"""The bound a timer written without a wake-up or an index entry must beat past one interval (the claim after the
probe; measured 0.0-0.1 s on a loaded 2-core machine): a second interval's wait would exceed it."""


def settings(shards: int, interval: float = INTERVAL_SECONDS) -> TimersSettings:
    return TimersSettings(shards=shards, safety_wakeup_seconds=interval, legacy_import=False)


@pytest.fixture(params=[f"{kind}-{where}" for where in ("cluster", "server") for kind in FRONT_KINDS])
def idle_front(request: pytest.FixtureRequest) -> Iterator[Front]:
    """Both front ends, on the cluster (6 shards over 3 primaries) and on one server holding 4 shards."""
    kind_name, _, where = request.param.partition("-")
    kind: FrontKind = "sync" if kind_name == "sync" else "async"
    if where == "cluster":
        front = Front(kind, request.getfixturevalue("cluster_url"), cluster=True, shards=CLUSTER_SHARDS)
    else:
        front = Front(kind, request.getfixturevalue("redis_url"), shards=SERVER_SHARDS)
    try:
        yield front
    finally:
        front.close()


def listening(front: Front, topic: str = "jobs") -> None:
    wait_until(lambda: all(front.subscribers(channel) >= 1 for channel in front.wake_channels(topic)))


def test_an_idle_worker_sends_each_node_one_call_per_interval_whatever_its_shards(idle_front: Front) -> None:
    front = idle_front
    fired: Recorder[int] = Recorder()
    timers = front.timers(
        spec("jobs", Job, lambda payload, context: fired.record(payload.n)), settings=settings(front.shards)
    )
    timers.set_timer("jobs", "far", Job(n=0), datetime.timedelta(hours=1))
    with running(timers):
        listening(front)
        threading.Event().wait(INTERVAL_SECONDS * 2)  # the catch-up claim after subscribing lands first
        # A timer fired mid-interval: its shard's calls (claim, then ack) come at other times than the others'.
        timers.set_timer("jobs", "soon", Job(n=1), datetime.timedelta(seconds=INTERVAL_SECONDS / 3))
        fired.wait_for(1)
        threading.Event().wait(INTERVAL_SECONDS)  # the ack lands before the window
        for node in front.nodes():
            node.config_resetstat()
        threading.Event().wait(WINDOW_SECONDS)  # a measurement window, not a synchronisation
        counts = [node.info("commandstats") for node in front.nodes()]
    intervals = WINDOW_SECONDS / INTERVAL_SECONDS
    for stats in counts:
        script_calls = int(stats.get("cmdstat_evalsha", {}).get("calls", 0))
        # One call per interval per node, give or take an interval's worth at each edge of the window.
        assert abs(script_calls - intervals) <= 2, stats
    pings = sum(int(stats.get("cmdstat_ping", {}).get("calls", 0)) for stats in counts)
    assert pings <= intervals + 2  # the notification connection's, on one node
    # No node is asked for a call's keys: the driver routes each call to the node it knows holds them.
    assert sum(int(stats.get("cmdstat_command|getkeys", {}).get("calls", 0)) for stats in counts) == 0


def test_a_timer_whose_wake_up_was_lost_fires_within_one_interval(idle_front: Front) -> None:
    front = idle_front
    interval = 1.0
    fired: Recorder[int] = Recorder()
    timers = front.timers(
        spec("jobs", Job, lambda payload, context: fired.record(payload.n)), settings=settings(front.shards, interval)
    )
    with running(timers):
        listening(front)
        threading.Event().wait(interval)  # the worker's first claims are done: it sleeps on its safety interval
        # A timer of the same shard fired first: its claim put the shard's next rebuild of the index an interval on,
        # past the probe that comes next (the probes keep their own schedule).
        shard = front.keyspace_for("jobs", "lost").shard
        beside = next(f"b{n}" for n in range(10_000) if front.keyspace_for("jobs", f"b{n}").shard == shard)
        timers.set_timer("jobs", beside, Job(n=1), datetime.timedelta(0))
        fired.wait_for(1)
        # Written as a process of an earlier version writes it: no wake-up, no heads index entry.
        written_at = time.monotonic()
        old_version_set_timer(front, "jobs", "lost", server_ms(front), Job(n=7))
        fired.wait_for(2, timeout=3 * interval)
        waited = time.monotonic() - written_at
    assert fired.items == [1, 7]
    # The next probe (at most an interval on) finds it, and the claim it calls for fires it: not a second interval.
    assert waited < interval + LATE_SECONDS, waited


# -- a node that refuses the probe ---------------------------------------------------------------


def cluster_command(node: redis.Redis, *args: str | int) -> Any:
    return node.execute_command("CLUSTER", *args)  # type: ignore[no-untyped-call]


def primary_of_slot(front: Front, slot: int) -> tuple[int, str]:
    """The index (in `front.nodes()`) and the node id of the primary that serves `slot`."""
    for index, node in enumerate(front.nodes()):
        for line in str(cluster_command(node, "NODES")).splitlines():
            fields = line.split()
            if "myself" not in fields[2]:
                continue
            for part in fields[8:]:
                low, _, high = part.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return index, fields[0]
    raise AssertionError(f"no primary serves slot {slot}")


@pytest.mark.parametrize("kind", FRONT_KINDS)
def test_the_shards_of_a_node_that_refuses_the_probe_are_claimed_from_one_by_one(
    cluster_url: str, kind: FrontKind
) -> None:
    # A slot being moved away: its node answers a call naming its keys that are not there with ASK (or TRYAGAIN),
    # so it refuses the probe of all of its shards. Their own claim calls still find a lost wake-up's timer.
    front = Front(kind, cluster_url, cluster=True, shards=CLUSTER_SHARDS)
    interval = 1.0
    fired: Recorder[int] = Recorder()
    keyspaces = front.namespace.keyspaces
    slots = [key_slot(keyspace.tag[1:-1]) for keyspace in keyspaces]
    owners = [primary_of_slot(front, slot) for slot in slots]
    moving = 0
    [beside] = [shard for shard in range(1, CLUSTER_SHARDS) if owners[shard][0] == owners[moving][0]]
    source = front.nodes()[owners[moving][0]]
    target_index, target_id = next(owner for owner in owners if owner[0] != owners[moving][0])
    target = front.nodes()[target_index]
    timer_id = next(f"lost-{n}" for n in range(10_000) if front.keyspace_for("jobs", f"lost-{n}").shard == beside)
    try:
        timers = front.timers(
            spec("jobs", Job, lambda payload, context: fired.record(payload.n)),
            settings=settings(CLUSTER_SHARDS, interval),
        )
        with running(timers):
            listening(front)
            threading.Event().wait(interval)  # the first claims are done
            source_id = str(cluster_command(source, "MYID"))
            cluster_command(target, "SETSLOT", slots[moving], "IMPORTING", source_id)
            cluster_command(source, "SETSLOT", slots[moving], "MIGRATING", target_id)
            source.config_resetstat()
            old_version_set_timer(front, "jobs", timer_id, server_ms(front), Job(n=3))
            assert fired.arrives(1, timeout=interval + SLACK_SECONDS)
            refused = source.info("errorstats")
        assert any(name in refused for name in ("errorstat_ASK", "errorstat_TRYAGAIN")), refused
    finally:
        for node in (source, target):
            cluster_command(node, "SETSLOT", slots[moving], "STABLE")
        front.close()
    assert fired.items == [3]


@pytest.mark.parametrize("kind", FRONT_KINDS)
def test_a_busy_workers_calls_ask_no_node_for_their_keys(cluster_url: str, kind: FrontKind) -> None:
    # A cycle of several shards' calls goes as one cluster pipeline; the driver names each call's node, which it
    # knows, so that redis-py's pipeline does not ask a node for the keys of each EVALSHA (COMMAND GETKEYS).
    front = Front(kind, cluster_url, cluster=True, shards=CLUSTER_SHARDS)
    fired: Recorder[int] = Recorder()
    try:
        timers = front.timers(
            spec("jobs", Job, lambda payload, context: fired.record(payload.n)), settings=settings(CLUSTER_SHARDS)
        )
        for n in range(30):
            timers.set_timer("jobs", f"job-{n}", Job(n=n), datetime.timedelta(0))
        for node in front.nodes():
            node.config_resetstat()
        with running(timers):
            fired.wait_for(30)
        counts = [node.info("commandstats") for node in front.nodes()]
    finally:
        front.close()
    assert sum(int(stats.get("cmdstat_evalsha", {}).get("calls", 0)) for stats in counts) >= CLUSTER_SHARDS
    assert sum(int(stats.get("cmdstat_command|getkeys", {}).get("calls", 0)) for stats in counts) == 0


# -- what a probe costs with many topics ---------------------------------------------------------


@pytest.mark.parametrize("kind", FRONT_KINDS)
def test_a_probe_costs_a_bounded_number_of_commands_with_5000_topics(redis_url: str, kind: FrontKind) -> None:
    # 4 shards on one server: one probe call for all of them, sent as the worker sends it once its topics are
    # registered (a single pass registers them on every shard), and counted on the server, inside the script.
    names = [f"t{n}" for n in range(5000)]
    front = Front(kind, redis_url, shards=SERVER_SHARDS)
    try:
        timers = front.timers(*(spec(name, Job, lambda payload, context: None) for name in names))
        timers.handle_ready_timers()
        keyspaces = front.namespace.keyspaces
        calls = [
            probe.shard_call(keyspace, keyspace.topic_set(names), probe.scanned(names, 0)) for keyspace in keyspaces
        ]
        call = probe.node_call(calls)
        reset_stats(front)
        reply = front.raw.eval(call.script.source, len(call.keys), *call.keys, *call.args)
        counts = command_counts(front)
    finally:
        front.close()
    assert [str(part) for part in reply[1:]] == ["", "0"] * SERVER_SHARDS  # nothing due, nothing to rebuild
    # Per shard: the index's first page and the batch's timelines (`probe.SCAN_TOPICS`); it was one per topic.
    assert counts.get("zrange", 0) <= SERVER_SHARDS * (probe.SCAN_TOPICS + 1), counts


@pytest.mark.parametrize("kind", FRONT_KINDS)
def test_a_slot_moved_for_good_under_a_stale_slot_map_does_not_stop_the_probe(
    cluster_url: str, kind: FrontKind
) -> None:
    # The worker's slot map still names the old node, which answers its probe that a key is not its own: that
    # interval its shards get claim calls, the slot map is read again, and the intervals after are probes again.
    front = Front(kind, cluster_url, cluster=True, shards=CLUSTER_SHARDS)
    interval = INTERVAL_SECONDS
    keyspaces = front.namespace.keyspaces
    slots = [key_slot(keyspace.tag[1:-1]) for keyspace in keyspaces]
    owners = [primary_of_slot(front, slot) for slot in slots]
    # Not the first shard of its node: that one's timeline is the key the probe declares, which gets MOVED.
    moving = next(shard for shard in range(1, CLUSTER_SHARDS) if owners[shard][0] in {o[0] for o in owners[:shard]})
    source_index = owners[moving][0]
    source = front.nodes()[source_index]
    target_index, target_id = next(owner for owner in owners if owner[0] != source_index)
    target = front.nodes()[target_index]
    source_id = str(cluster_command(source, "MYID"))
    target_port = int(str(target.connection_pool.connection_kwargs["port"]))

    def move(slot: int, frm: redis.Redis, to: redis.Redis, frm_id: str, to_id: str, port: int) -> None:
        cluster_command(to, "SETSLOT", slot, "IMPORTING", frm_id)
        cluster_command(frm, "SETSLOT", slot, "MIGRATING", to_id)
        while keys := frm.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):  # type: ignore[no-untyped-call]
            frm.execute_command("MIGRATE", "127.0.0.1", port, "", 0, 5000, "KEYS", *keys)  # type: ignore[no-untyped-call]
        for node in front.nodes():
            cluster_command(node, "SETSLOT", slot, "NODE", to_id)

    source_port = int(str(source.connection_pool.connection_kwargs["port"]))
    try:
        timers = front.timers(spec("jobs", Job, lambda payload, context: None), settings=settings(CLUSTER_SHARDS))
        with running(timers):
            listening(front)
            threading.Event().wait(interval)  # the first claims are done: the worker probes each interval
            move(slots[moving], source, target, source_id, target_id, target_port)
            threading.Event().wait(2 * interval)  # the interval whose probe is refused, and its claims
            for node in front.nodes():
                node.config_resetstat()
            threading.Event().wait(WINDOW_SECONDS)
            counts = [node.info("commandstats") for node in front.nodes()]
    finally:
        move(slots[moving], target, source, target_id, source_id, source_port)
        front.close()
    intervals = WINDOW_SECONDS / interval
    for stats in counts:
        script_calls = int(stats.get("cmdstat_evalsha", {}).get("calls", 0))
        # Still one probe per interval per node: a claim call per shard would be 2 or 3 per interval on some.
        assert script_calls <= intervals + 2, counts


# -- topics of every kind, more than one batch of them -------------------------------------------

ODD_TOPICS = ["a{b}c", "x}:timeline:y", "{jobs}", "é€中", "w}", "{", "z" * 250]
"""Topics that name keys oddly: braces (a hash tag's), the probe's own `}:timeline:` marker, non-ASCII, 250 bytes."""


def test_timers_written_without_the_index_fire_within_one_interval_per_batch_of_topics(idle_front: Front) -> None:
    # More topics than a probe reads the timelines of (`probe.SCAN_TOPICS`): the batch moves on at each probe, so
    # a timer written without a wake-up or an index entry is found within ceil(topics / SCAN_TOPICS) probes.
    front = idle_front
    names = [f"t{n}" for n in range(probe.SCAN_TOPICS + 40)] + ODD_TOPICS
    batches = -(-len(names) // probe.SCAN_TOPICS)
    fired: Recorder[str] = Recorder()
    timers = front.timers(
        *(spec(name, Job, lambda payload, context: fired.record(payload.note)) for name in names),
        settings=settings(front.shards),
    )
    chosen = [*ODD_TOPICS, names[0], names[probe.SCAN_TOPICS], names[-len(ODD_TOPICS) - 1]]
    timer_id = "an id {with} }:timeline: é and spaces"
    with running(timers):
        listening(front, names[0])
        threading.Event().wait(INTERVAL_SECONDS * 2)  # the first claims are done: the worker probes each interval
        written_at = time.monotonic()
        for topic in chosen:
            old_version_set_timer(front, topic, timer_id, server_ms(front), Job(n=0, note=topic))
        fired.wait_for(len(chosen), timeout=batches * INTERVAL_SECONDS + 3 * SLACK_SECONDS)
        waited = time.monotonic() - written_at
    assert sorted(fired.items) == sorted(chosen)
    assert waited < batches * INTERVAL_SECONDS + SLACK_SECONDS, waited
