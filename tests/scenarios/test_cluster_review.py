"""A hostile review of both front ends on a real local cluster, a namespace of six shards (two per primary).

Each test uses the shared cluster (`cluster_front`) and leaves every node as it found it.
"""

from __future__ import annotations

import datetime
import signal
from typing import cast

import anyio
import redis
import redis.cluster

from redis_timers import TimersSettings
from redis_timers.cli.embedded import EmbeddedCluster
from tests.harness import Front, Recorder, running, spec
from tests.scenarios.models import Job

NOW = datetime.timedelta(0)
LATER = datetime.timedelta(hours=1)
SHARDS = TimersSettings(shards=6, handling_sleep=0.01)


def one_id_per_shard(front: Front) -> dict[int, str]:
    namespace = front.timers(settings=SHARDS).timers.namespace
    ids: dict[int, str] = {}
    for n in range(1000):
        ids.setdefault(namespace.keyspace_for("jobs", f"t{n}").shard, f"t{n}")
    return dict(sorted(ids.items()))


def test_a_script_cache_flushed_on_one_primary_only_is_reloaded_there_while_a_worker_drains(
    cluster_front: Front,
) -> None:
    fired: Recorder[str] = Recorder()
    worker = cluster_front.timers(
        spec("jobs", Job, lambda payload, context: fired.record(payload.note)), settings=SHARDS
    )
    ids = one_id_per_shard(cluster_front)
    raw = cast(redis.cluster.RedisCluster, cluster_front.raw)
    with running(worker):
        for shard, timer_id in ids.items():
            worker.set_timer("jobs", timer_id, Job(n=shard, note=f"first {timer_id}"), NOW)
        fired.wait_for(len(ids))
        flushed = raw.get_primaries()[1]  # type: ignore[no-untyped-call]
        flushed.redis_connection.script_flush()
        for shard, timer_id in ids.items():  # set_timer meets NOSCRIPT on that node, and so do the worker's calls
            worker.set_timer("jobs", timer_id, Job(n=shard, note=f"second {timer_id}"), NOW)
        fired.wait_for(2 * len(ids))
    assert sorted(fired.items) == sorted(
        f"{round} {timer_id}" for round in ("first", "second") for timer_id in ids.values()
    )
    assert cluster_front.timer_data() == ["{timers}:shards"]  # every timer fired and settled: only the layout is left


def test_a_durable_write_cancelled_while_its_wait_blocks_leaves_no_stale_reply_on_the_nodes_connection() -> None:
    """Async only (cancellation): the write and its WAIT go on a connection of the node's own pool, which goes back
    to the pool when the call ends however it ends. The replica is stopped (SIGSTOP), so the WAIT blocks until the
    call is cancelled; the replica's late acknowledgement must not be read as the reply of a later command."""
    with EmbeddedCluster(primaries=1, replicas=1) as cluster:
        front = Front("async", cluster.nodes[0].url, cluster=True)
        try:
            timers = front.timers(
                spec("jobs", Job, lambda payload, context: None),
                settings=TimersSettings(durable_timeout_seconds=30.0),
            )
            replica = cluster.nodes[1]
            process = replica._process
            assert process is not None

            async def cancelled_durable_write() -> bool:
                with anyio.move_on_after(0.5) as scope:
                    await timers.timers.set_timer("jobs", "cancelled", Job(n=1), LATER, durable=True)
                return scope.cancelled_caught

            process.send_signal(signal.SIGSTOP)
            try:
                assert front.portal.call(cancelled_durable_write)
            finally:
                process.send_signal(signal.SIGCONT)
            cluster.wait_healthy()
            for n in range(5):
                due = timers.set_timer("jobs", f"after{n}", Job(n=n), LATER, durable=True)
                info = timers.get_timer("jobs", f"after{n}")
                assert info is not None
                assert info.due_at == due
                assert info.payload == Job(n=n)
            assert timers.get_timer("jobs", "cancelled") is not None  # the write stands (a retry is safe)
        finally:
            front.close()
