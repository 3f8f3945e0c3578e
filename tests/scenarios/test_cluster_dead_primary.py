"""A primary of a real local cluster SIGKILLed with no replica to take over, through both front ends.

The cluster is told to go on serving the slots it still covers (`cluster-require-full-coverage no`), so the dead
primary's shards stay down for good while the other primaries' shards are served: a worker over six shards must
back off the dead shards alone and keep firing the others' timers (a cluster pipeline fails as a whole when one
of its nodes refuses connections). Each test starts a cluster of its own: it kills a node.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
from collections.abc import Iterator

import pytest
import redis

from redis_timers import TimersError, TimersSettings
from redis_timers.cli.embedded import EmbeddedCluster, EmbeddedServer
from tests.conftest import skip_without_cluster_clients
from tests.harness import FRONT_KINDS, Front, FrontKind, Recorder, spec, wait_until
from tests.scenarios.models import Job

NOW = datetime.timedelta(0)
SHARDS = 6
OUTAGE_WAIT = 40.0
"""Generous: the cluster marks the dead node as failed after its node timeout, longer on a loaded machine."""


@pytest.fixture(params=FRONT_KINDS)
def partial_cluster(request: pytest.FixtureRequest) -> Iterator[tuple[Front, EmbeddedCluster]]:
    kind: FrontKind = request.param
    skip_without_cluster_clients()
    with EmbeddedCluster(primaries=3, replicas=0) as cluster:
        for node in cluster.nodes:
            client = redis.Redis(host=node.host, port=node.port)
            try:
                client.config_set("cluster-require-full-coverage", "no")
            finally:
                client.close()
        front = Front(kind, cluster.nodes[0].url, cluster=True)
        try:
            yield front, cluster
        finally:
            front.close()


def serves_slot_of(node: EmbeddedServer, tag: str) -> bool:
    client = redis.Redis(host=node.host, port=node.port)
    try:
        slot = int(client.execute_command("CLUSTER", "KEYSLOT", tag))  # type: ignore[no-untyped-call]
        return any(
            int(low) <= slot <= int(high) and int(info[1]) == node.port
            for low, high, *nodes in client.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
            for info in nodes[:1]
        )
    finally:
        client.close()


def test_the_shards_of_a_dead_primary_back_off_alone_while_the_others_keep_firing(
    partial_cluster: tuple[Front, EmbeddedCluster], caplog: pytest.LogCaptureFixture
) -> None:
    front, cluster = partial_cluster
    doomed = cluster.nodes[2]  # not the node the clients were made from
    fired: Recorder[str] = Recorder()
    worker = front.timers(
        spec("jobs", Job, lambda payload, context: fired.record(payload.note)),
        settings=TimersSettings(shards=SHARDS, handling_sleep=0.01),
    )
    namespace = worker.timers.namespace
    dead = {keyspace.shard for keyspace in namespace.keyspaces if serves_slot_of(doomed, keyspace.tag)}
    assert dead
    assert len(dead) < SHARDS
    ids: dict[int, str] = {}
    for n in range(1000):
        ids.setdefault(namespace.keyspace_for("jobs", f"t{n}").shard, f"t{n}")
    caplog.set_level(logging.WARNING, logger="redis_timers")

    with contextlib.ExitStack() as stack:
        stack.callback(worker.shutdown_worker)
        for shard in sorted(dead):  # due, so that the worker calls the dead shards in its every cycle
            worker.set_timer("jobs", ids[shard], Job(n=shard, note=f"dead {shard}"), NOW)
        cluster.kill(doomed)
        worker.start_worker()
        alive = sorted(set(range(SHARDS)) - dead)
        for shard in alive:

            def written(shard: int = shard) -> bool:
                try:
                    worker.set_timer("jobs", ids[shard], Job(n=shard, note=f"shard {shard}"), NOW)
                except TimersError:  # the client may still be learning that the node is gone
                    return False
                return True

            wait_until(written, timeout=OUTAGE_WAIT, interval=0.05)
        fired.wait_for(len(alive), timeout=OUTAGE_WAIT)
        assert sorted(fired.items) == [f"shard {shard}" for shard in alive]
        assert worker.worker_running
        worker.stop_worker()
