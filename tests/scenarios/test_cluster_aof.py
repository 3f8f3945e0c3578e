"""Durable writes on a cluster whose every node runs with `appendonly yes` from its first start.

Each primary is learned on its own (`redis_timers/durability.py`): the first durable write to it finds that
the primary and its replica sync their append-only file, and every durable write then returns only once both
did (`WAITAOF 1 1`). With the replica of one shard's primary paused, a durable write to that shard raises
`TimersDurabilityError` and stands, while the other shards' durable writes go on. One cluster for the module,
formed once, both front ends.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import cast

import pytest
import redis
import redis.cluster

from redis_timers import TimersDurabilityError, TimersSettings
from redis_timers.cli.embedded import EmbeddedCluster
from redis_timers.durability import AofSync
from redis_timers.keys import shard_of
from tests.conftest import skip_without_cluster_clients
from tests.harness import FRONT_KINDS, Front, FrontKind, spec, wait_until
from tests.scenarios.models import Job
from tests.scenarios.test_durable import aof_ready, has_waitaof, replica_paused

LATER = datetime.timedelta(hours=1)
AOF_ALWAYS = ("--appendonly", "yes", "--appendfsync", "always")
SHARDS = 6
SETTINGS = TimersSettings(shards=SHARDS, durable_timeout_seconds=5.0)


@pytest.fixture(scope="module")
def aof_cluster() -> Iterator[EmbeddedCluster]:
    skip_without_cluster_clients()
    with EmbeddedCluster(primaries=3, replicas=3, extra_args=AOF_ALWAYS) as cluster:
        nodes = [redis.Redis(host=node.host, port=node.port) for node in cluster.nodes]
        try:
            if not has_waitaof(nodes[0]):
                pytest.skip("this server has no WAITAOF (Redis 7.0)")
            wait_until(lambda: all(aof_ready(node) for node in nodes), timeout=30)
        finally:
            for node in nodes:
                node.close()
        yield cluster


@pytest.fixture(params=FRONT_KINDS)
def aof_front(request: pytest.FixtureRequest, aof_cluster: EmbeddedCluster) -> Iterator[Front]:
    kind: FrontKind = request.param
    front = Front(kind, aof_cluster.url, cluster=True, shards=SHARDS)
    try:
        for node in front.nodes():
            node.flushall()
            node.config_resetstat()
        yield front
    finally:
        front.close()


def ids_on_every_shard(front: Front) -> list[str]:
    """One timer id per shard of topic "jobs"."""
    by_shard: dict[int, str] = {}
    for n in range(1000):
        by_shard.setdefault(shard_of("jobs", f"t{n}", SHARDS), f"t{n}")
        if len(by_shard) == SHARDS:
            return [by_shard[shard] for shard in range(SHARDS)]
    raise AssertionError("some shard holds none of 1000 ids")


def waitaof_stats(node: redis.Redis) -> tuple[int, int]:
    stats = node.info("commandstats").get("cmdstat_waitaof", {})
    return int(stats.get("calls", 0)), int(stats.get("rejected_calls", 0)) + int(stats.get("failed_calls", 0))


def test_a_durable_set_and_remove_on_every_shard_return_once_primary_and_replica_synced_it(aof_front: Front) -> None:
    timers = aof_front.timers(spec("jobs", Job, lambda payload, context: None), settings=SETTINGS)
    ids = ids_on_every_shard(aof_front)

    for timer_id in ids:
        timers.set_timer("jobs", timer_id, Job(n=1), LATER, durable=True)
        assert timers.remove_timer("jobs", timer_id, durable=True) is True

    learned = timers.timers._aof_sync.states
    assert sorted(learned.values(), key=str) == [AofSync.EVERYWHERE] * 3  # each primary, learned on its own
    for node in aof_front.nodes():
        calls, refused = waitaof_stats(node)
        assert calls >= 4  # 2 shards per primary, a set and a remove each
        assert refused == 0


def primary_of(front: Front, timer_id: str) -> redis.cluster.ClusterNode:
    cluster = cast(redis.cluster.RedisCluster, front.raw)
    return cluster.get_node_from_key(front.keyspace_for("jobs", timer_id).timeline("jobs"))  # type: ignore[no-untyped-call,no-any-return]


def test_with_a_shard_s_replica_paused_its_durable_write_raises_and_stands_while_the_others_go_on(
    aof_front: Front,
) -> None:
    settings = TimersSettings(shards=SHARDS, durable_timeout_seconds=0.5)
    timers = aof_front.timers(spec("jobs", Job, lambda payload, context: None), settings=settings)
    ids = ids_on_every_shard(aof_front)
    for timer_id in ids:
        timers.set_timer("jobs", timer_id, Job(n=0), LATER, durable=True)  # learns every primary
    paused_id = ids[0]
    timeline = aof_front.keyspace_for("jobs", paused_id).timeline("jobs")
    primary = primary_of(aof_front, paused_id)
    first = aof_front.node(primary.host, primary.port).info("replication")["slave0"]
    replica = aof_front.node(str(first["ip"]), int(first["port"]))
    others = [timer_id for timer_id in ids if primary_of(aof_front, timer_id).name != primary.name]
    assert len(others) == 4  # the shards of the two other primaries

    with replica_paused(replica):
        with pytest.raises(TimersDurabilityError) as raised:
            timers.set_timer("jobs", paused_id, Job(n=1), LATER, durable=True)
        assert raised.value.fsync is False  # the replica did not even receive it
        assert aof_front.raw.zscore(timeline, paused_id) is not None  # the write stands on the primary

    for timer_id in others:
        timers.set_timer("jobs", timer_id, Job(n=2), LATER, durable=True)
    replica.execute_command("READONLY")  # type: ignore[no-untyped-call]
    wait_until(lambda: replica.zscore(timeline, paused_id) is not None)  # it catches up once unpaused
