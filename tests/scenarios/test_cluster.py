"""Both front ends over cluster clients (`redis.cluster.RedisCluster`, `redis.asyncio.cluster.RedisCluster`)
of a real local cluster: 3 primaries and 3 replicas (the `redis_cluster` fixture).

A namespace of one shard keeps every key under `{timers}`, in one slot of one primary; the clients route each
script call by its keys.
"""

from __future__ import annotations

import datetime

import pydantic

from redis_timers import TimersSettings
from redis_timers.cli.embedded import EmbeddedCluster
from tests.harness import Front, Recorder, running, spec
from tests.scenarios.models import Job

NOW = datetime.timedelta(0)
LATER = datetime.timedelta(hours=1)
ONE_ATTEMPT = TimersSettings(handling_sleep=0.01)


def test_the_cluster_fixture_is_three_primaries_each_with_a_replica_in_sync(redis_cluster: EmbeddedCluster) -> None:
    assert len(redis_cluster.primaries) == 3
    assert len(redis_cluster.replicas) == 3
    assert redis_cluster.healthy()


def test_set_get_remove_through_a_cluster_client(cluster_front: Front) -> None:
    timers = cluster_front.timers(spec("jobs", Job, lambda payload, context: None))
    due = timers.set_timer("jobs", "a", Job(n=1), LATER)
    info = timers.get_timer("jobs", "a")
    assert info is not None and info.activation_time == due and info.payload == Job(n=1)
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
