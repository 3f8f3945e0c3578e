"""Both front ends over cluster clients (`redis.cluster.RedisCluster`, `redis.asyncio.cluster.RedisCluster`)
of a real local cluster: 3 primaries and 3 replicas (the `redis_cluster` fixture).

A namespace of one shard keeps every key under `{timers}`, in one slot of one primary; the clients route each
script call by its keys.
"""

from __future__ import annotations

import datetime
from typing import cast

import anyio
import pydantic
import pytest
import redis
import redis.asyncio.cluster
import redis.cluster

from redis_timers import TimersDurabilityError, TimersSettings, TimersUnavailableError
from redis_timers.aio.driver import AsyncDriver
from redis_timers.aio.lane import Lane as AsyncLane
from redis_timers.cli.embedded import EmbeddedCluster, EmbeddedServer
from redis_timers.scripts import SET_TIMER
from redis_timers.sync.lane import Lane as SyncLane
from tests.harness import DEFAULT_WAIT, Front, Recorder, running, spec
from tests.scenarios.models import Job

NOW = datetime.timedelta(0)
LATER = datetime.timedelta(hours=1)
ONE_ATTEMPT = TimersSettings(handling_sleep=0.01)
TIMELINE = "{timers}:timeline:jobs"


def test_the_cluster_fixture_is_three_primaries_each_with_a_replica_in_sync(redis_cluster: EmbeddedCluster) -> None:
    assert len(redis_cluster.primaries) == 3
    assert len(redis_cluster.replicas) == 3
    assert redis_cluster.healthy()


def test_set_get_remove_through_a_cluster_client(cluster_front: Front) -> None:
    timers = cluster_front.timers(spec("jobs", Job, lambda payload, context: None))
    due = timers.set_timer("jobs", "a", Job(n=1), LATER)
    info = timers.get_timer("jobs", "a")
    assert info is not None
    assert info.due_at == due
    assert info.payload == Job(n=1)
    assert timers.remove_timer("jobs", "a")
    assert not timers.remove_timer("jobs", "a")
    assert timers.get_timer("jobs", "a") is None
    assert all(key.startswith("{timers}") for key in cluster_front.all_keys())


def test_handle_ready_timers_and_run_forever_through_a_cluster_client(cluster_front: Front) -> None:
    fired: Recorder[int] = Recorder()
    timers = cluster_front.timers(spec("jobs", Job, lambda payload, context: fired.record(payload.n)))
    timers.set_timer("jobs", "first", Job(n=1), NOW)
    timers.handle_ready_timers()
    assert fired.items == [1]
    with running(timers):
        timers.set_timer("jobs", "second", Job(n=2), NOW)
        fired.wait_for(2)
        timers.set_timer("jobs", "third", Job(n=3), datetime.timedelta(milliseconds=200))
        fired.wait_for(3)
    assert fired.items == [1, 2, 3]
    assert cluster_front.timer_data() == []


class Strict(pydantic.BaseModel):
    n: int


def test_dead_letters_requeue_and_purge_through_a_cluster_client(cluster_front: Front) -> None:
    failures: Recorder[int] = Recorder()

    def fail(payload: Job, context: object) -> None:
        failures.record(payload.n)
        raise RuntimeError("handler failed")

    timers = cluster_front.timers(spec("jobs", Job, fail, max_attempts=1), settings=ONE_ATTEMPT)
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    timers.set_timer("jobs", "b", Job(n=2), NOW)
    timers.handle_ready_timers()
    assert sorted(letter.timer_id for letter in timers.dead_letters()) == ["a", "b"]
    assert timers.requeue_dead_letter("jobs", "a")
    assert [letter.timer_id for letter in timers.dead_letters()] == ["b"]
    assert timers.get_timer("jobs", "a") is not None
    assert timers.purge_dead_letters() == 1
    assert timers.dead_letters() == []


def primary_of(front: Front, key: str) -> int:
    """The port of the primary that serves `key`'s slot."""
    return int(cast(redis.cluster.RedisCluster, front.raw).get_node_from_key(key).port)  # type: ignore[no-untyped-call]


def command_calls(node: EmbeddedServer, command: str) -> int:
    client = redis.Redis(host=node.host, port=node.port)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def reset_stats(cluster: EmbeddedCluster) -> None:
    for node in cluster.primaries:
        client = redis.Redis(host=node.host, port=node.port)
        try:
            client.config_resetstat()
        finally:
            client.close()


def test_lanes_stay_off_for_cluster_clients(cluster_front: Front) -> None:
    client = cluster_front.client()
    lane_type = AsyncLane if cluster_front.is_async else SyncLane
    assert lane_type.for_client(client) is None
    cluster_front.close_client(client)


def test_a_durable_write_waits_on_the_connection_of_its_own_node(
    cluster_front: Front, redis_cluster: EmbeddedCluster
) -> None:
    """WAIT counts only the writes before it on its own connection: it must go where the write went.

    A namespace whose slot is not on the cluster client's default node, where a keyless command would go.
    """
    home = primary_of(cluster_front, "{other}")
    default_node = cast(redis.cluster.RedisCluster, cluster_front.raw).get_default_node()  # type: ignore[no-untyped-call]
    assert default_node is not None
    assert default_node.port != home
    settings = TimersSettings(namespace="other")
    timers = cluster_front.timers(spec("jobs", Job, lambda payload, context: None), settings=settings)
    timers.set_timer("jobs", "warm", Job(n=0), LATER)  # the script is cached on the node
    reset_stats(redis_cluster)
    writes = 6
    for n in range(writes):
        timers.set_timer("jobs", f"t{n}", Job(n=n), LATER, durable=True)
    assert timers.remove_timer("jobs", "t0", durable=True)
    waits = {node.port: command_calls(node, "wait") for node in redis_cluster.primaries}
    # One more WAIT on the home node when remove_timer's first call met NOSCRIPT there and was sent again.
    assert waits[home] >= writes + 1, waits
    assert all(count == 0 for port, count in waits.items() if port != home), waits


def test_a_durable_write_no_replica_confirms_raises_and_the_write_stands(cluster_front: Front) -> None:
    settings = TimersSettings(durable_replicas=2, durable_timeout_seconds=0.2)  # each primary has one replica
    timers = cluster_front.timers(spec("jobs", Job, lambda payload, context: None), settings=settings)
    with pytest.raises(TimersDurabilityError):
        timers.set_timer("jobs", "a", Job(n=1), LATER, durable=True)
    assert timers.get_timer("jobs", "a") is not None


def test_scripts_are_loaded_onto_the_keys_node_only(cluster_front: Front, redis_cluster: EmbeddedCluster) -> None:
    """After NOSCRIPT (a flushed cache, as on a promoted replica) the call carries its source to its own node."""
    for node in redis_cluster.primaries:
        client = redis.Redis(host=node.host, port=node.port)
        client.script_flush()
        client.close()
    timers = cluster_front.timers(spec("jobs", Job, lambda payload, context: None))
    timers.set_timer("jobs", "a", Job(n=1), LATER)
    home = primary_of(cluster_front, TIMELINE)
    for node in redis_cluster.primaries:
        client = redis.Redis(host=node.host, port=node.port)
        (cached,) = client.script_exists(SET_TIMER.sha)
        client.close()
        assert cached == (node.port == home), node.port
    assert timers.get_timer("jobs", "a") is not None


def test_an_async_driver_subscribes_through_a_cluster_client_that_sent_nothing_yet(cluster_url: str) -> None:
    """An async cluster client that has sent no command yet knows no node (and its own pub/sub, where redis-py has
    one, raises KeyError: redis-py #4296); the driver's pub/sub works on it, on every supported redis-py."""

    async def subscribe() -> object:
        client = redis.asyncio.cluster.RedisCluster.from_url(cluster_url)
        try:
            pubsub = await AsyncDriver(client).pubsub(0)
            await pubsub.subscribe(b"{timers}:wake:jobs")
            message = await pubsub.get_message(timeout=DEFAULT_WAIT)
            await pubsub.aclose()
            return message["type"] if message else None
        finally:
            await client.aclose()

    assert anyio.run(subscribe) in ("subscribe", b"subscribe")


def test_a_durable_write_whose_slot_is_migrating_raises_a_typed_outage_and_is_not_confirmed(
    cluster_front: Front, redis_cluster: EmbeddedCluster
) -> None:
    """The write meets ASK (its keys are being moved to another node): the cluster's own pipeline would send the
    write again alone, elsewhere, with the WAIT's reply from the first node. It is an outage instead."""
    raw = cast(redis.cluster.RedisCluster, cluster_front.raw)
    home = primary_of(cluster_front, "{other}")
    slot = int(raw.keyslot("{other}"))  # type: ignore[no-untyped-call]
    source = next(node for node in redis_cluster.primaries if node.port == home)
    target = next(node for node in redis_cluster.primaries if node.port != home)
    target_client = redis.Redis(host=target.host, port=target.port, decode_responses=True)
    source_client = redis.Redis(host=source.host, port=source.port, decode_responses=True)
    target_id = target_client.execute_command("CLUSTER", "MYID")  # type: ignore[no-untyped-call]
    settings = TimersSettings(namespace="other")
    timers = cluster_front.timers(spec("jobs", Job, lambda payload, context: None), settings=settings)
    timers.get_timer("jobs", "warm")  # the client has read the slot map
    source_client.execute_command("CLUSTER", "SETSLOT", str(slot), "MIGRATING", target_id)  # type: ignore[no-untyped-call]
    try:
        with pytest.raises(TimersUnavailableError) as raised:
            timers.set_timer("jobs", "moving", Job(n=1), LATER, durable=True)
        assert raised.value.code == "ASK"
    finally:
        source_client.execute_command("CLUSTER", "SETSLOT", str(slot), "STABLE")  # type: ignore[no-untyped-call]
        source_client.close()
        target_client.close()
    assert timers.get_timer("jobs", "moving") is None  # refused before it was written: a retry is safe
    timers.set_timer("jobs", "moving", Job(n=1), LATER, durable=True)
    assert timers.get_timer("jobs", "moving") is not None
