"""A hostile review of both front ends on a real local cluster, a namespace of six shards (two per primary).

Each test uses the shared cluster (`cluster_front`) and leaves every node as it found it.
"""

from __future__ import annotations

import datetime
import functools
import signal
from collections.abc import Callable
from typing import Any, cast

import anyio
import pytest
import redis
import redis.cluster

from redis_timers import TimersConnectionError, TimersSettings, TimersUnavailableError
from redis_timers.cli.embedded import EmbeddedCluster, EmbeddedServer
from tests.conftest import skip_without_cluster_clients
from tests.harness import FRONT_KINDS, Front, FrontKind, Recorder, running, spec, wait_until
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
    skip_without_cluster_clients()
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
                # Cancelled once the write stands on the primary, so while its WAIT blocks: a fixed delay could end
                # it before the write was sent, on a busy machine.
                async with anyio.create_task_group() as group:
                    done = anyio.Event()

                    async def write() -> None:
                        await timers.timers.set_timer("jobs", "cancelled", Job(n=1), LATER, durable=True)
                        done.set()

                    group.start_soon(write)
                    await anyio.to_thread.run_sync(
                        wait_until, lambda: timers.get_timer("jobs", "cancelled") is not None
                    )
                    group.cancel_scope.cancel()
                return not done.is_set()

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


def cluster_command(node: EmbeddedServer, *args: str) -> Any:
    client = redis.Redis(host=node.host, port=node.port)
    try:
        return client.execute_command("CLUSTER", *args)  # type: ignore[no-untyped-call]
    finally:
        client.close()


def migrate_slot(slot: int, source: EmbeddedServer, target: EmbeddedServer, between: Callable[[], None]) -> None:
    """Move `slot` from `source` to `target` as `valkey-cli --cluster reshard` does, calling `between` while it
    is migrating (its keys partly moved)."""
    source_id, target_id = (str(cluster_command(node, "MYID").decode()) for node in (source, target))
    cluster_command(target, "SETSLOT", str(slot), "IMPORTING", source_id)
    cluster_command(source, "SETSLOT", str(slot), "MIGRATING", target_id)
    client = redis.Redis(host=source.host, port=source.port)
    try:
        keys = cluster_command(source, "GETKEYSINSLOT", str(slot), "1000")
        half = len(keys) // 2
        for batch in (keys[:half], keys[half:]):
            if batch:
                client.execute_command("MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", *batch)  # type: ignore[no-untyped-call]
            between()
    finally:
        client.close()
    for node in (target, source):
        cluster_command(node, "SETSLOT", str(slot), "NODE", target_id)


@pytest.mark.parametrize("kind", FRONT_KINDS)
def test_a_shards_slot_migrated_to_another_primary_while_a_worker_drains_loses_nothing_and_runs_nothing_twice(
    kind: FrontKind,
) -> None:
    skip_without_cluster_clients()
    with EmbeddedCluster(primaries=2, replicas=0) as cluster:
        front = Front(kind, cluster.nodes[0].url, cluster=True)
        try:
            fired: Recorder[str] = Recorder()
            worker = front.timers(
                spec("jobs", Job, lambda payload, context: fired.record(payload.note)), settings=SHARDS
            )
            writer = front.timers(spec("jobs", Job, lambda payload, context: None), settings=SHARDS)
            namespace = worker.timers.namespace
            raw = cast(redis.cluster.RedisCluster, front.raw)
            source, target = cluster.nodes[0], cluster.nodes[1]
            moved = next(
                keyspace
                for keyspace in namespace.keyspaces
                if raw.get_node_from_key(keyspace.tag).port == source.port  # type: ignore[no-untyped-call]
            )
            ids = [f"t{n}" for n in range(5000) if namespace.keyspace_for("jobs", f"t{n}").shard == moved.shard]
            written: list[str] = []

            refused: set[str] = set()

            def accepted(timer_id: str) -> bool:
                try:
                    writer.set_timer("jobs", timer_id, Job(n=0, note=timer_id), datetime.timedelta(milliseconds=300))
                except (TimersUnavailableError, TimersConnectionError) as error:
                    # The slot's keys split between the nodes (TRYAGAIN, which a cluster client retries until its
                    # redirection budget is spent: "TTL exhausted"): nothing written, a retry is safe.
                    refused.add(f"{type(error).__name__}: {error}")
                    return False
                written.append(timer_id)
                return True

            def write(count: int) -> None:
                for _ in range(count):
                    timer_id = ids[len(written)]
                    wait_until(functools.partial(accepted, timer_id), timeout=30.0, interval=0.05)

            def try_writing() -> None:
                for _ in range(3):
                    accepted(ids[len(written)])

            with running(worker):
                write(5)
                slot = int(cluster_command(source, "KEYSLOT", moved.tag))
                migrate_slot(slot, source, target, try_writing)
                write(5)
                fired.wait_until(lambda items: set(written) <= set(items), timeout=30.0)
            assert sorted(fired.items) == sorted(written)  # each once
            print(f"writes refused during the migration: {sorted(refused)}")
            raw.nodes_manager.initialize()  # the test's own client has not been told yet
            assert raw.get_node_from_key(moved.tag).port == target.port  # type: ignore[no-untyped-call]
        finally:
            front.close()
