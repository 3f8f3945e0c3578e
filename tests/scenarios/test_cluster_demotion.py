"""A primary demoted to a replica by a manual failover (`CLUSTER FAILOVER` on its replica), under cluster clients
that may read from replicas (`load_balancing_strategy`, or the older `read_from_replicas=True`: redis-py then sends
`READONLY` on every connection, primaries' too).

On such a connection the demoted node serves what it may as a replica: the probe, a read-only script, is answered
from its copy of the data, and a claim or a write is refused with `READONLY` rather than redirected with `MOVED`.
The worker and the writer must still move to the promoted node: a timer written without a wake-up (as a process of
an earlier version writes it) fires within the safety interval and a claim's round trip, and `set_timer` succeeds.
Through both front ends, with one shard (no probe) and with 6 (probes). Each test starts a cluster of its own.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.cluster import LoadBalancingStrategy

from redis_timers import TimersError, TimersSettings
from redis_timers.cli.embedded import EmbeddedCluster, EmbeddedServer
from redis_timers.slots import key_slot
from tests.conftest import skip_without_cluster_clients
from tests.harness import FRONT_KINDS, Front, FrontKind, Recorder, running, spec, wait_until
from tests.scenarios.models import Job
from tests.scenarios.test_heads import old_version_set_timer, server_ms

INTERVAL_SECONDS = 0.5
SLACK_SECONDS = 1.5
"""How much later than one interval the timer may fire: the slot map's reading again and a claim, on a loaded
machine (measured 0.2-0.5 s in all after the promotion)."""
FAILOVER_WAIT = 30.0


def serves_slot(node: EmbeddedServer, slot: int) -> bool:
    client = redis.Redis(host=node.host, port=node.port, decode_responses=True)
    try:
        for line in str(client.execute_command("CLUSTER", "NODES")).splitlines():  # type: ignore[no-untyped-call]
            fields = line.split()
            if "myself" in fields[2]:
                for part in fields[8:]:
                    low, _, high = part.partition("-")
                    if low.isdigit() and int(low) <= slot <= int(high or low):
                        return True
        return False
    finally:
        client.close()


def replication(node: EmbeddedServer) -> dict[str, Any]:
    client = redis.Redis(host=node.host, port=node.port, decode_responses=True)
    try:
        return client.info("replication")
    finally:
        client.close()


@pytest.fixture(params=[f"{kind}-{shards}" for shards in (1, 6) for kind in FRONT_KINDS])
def demoting(request: pytest.FixtureRequest) -> Iterator[tuple[Front, EmbeddedCluster]]:
    kind_name, _, shards = request.param.partition("-")
    kind: FrontKind = "sync" if kind_name == "sync" else "async"
    skip_without_cluster_clients()
    with EmbeddedCluster(primaries=3, replicas=3) as cluster:
        front = Front(kind, cluster.url, cluster=True, shards=int(shards))
        try:
            yield front, cluster
        finally:
            front.close()


def test_a_demoted_primary_under_clients_that_read_from_replicas(demoting: tuple[Front, EmbeddedCluster]) -> None:
    front, cluster = demoting
    last_shard = front.shards - 1
    slot = key_slot(front.namespace.keyspaces[last_shard].tag[1:-1])
    old_primary = next(node for node in cluster.primaries if serves_slot(node, slot))
    replica = next(node for node in cluster.replicas if int(replication(node)["master_port"]) == old_primary.port)
    timer_id = next(f"lost-{n}" for n in range(10_000) if front.keyspace_for("jobs", f"lost-{n}").shard == last_shard)
    written_id = next(f"set-{n}" for n in range(10_000) if front.keyspace_for("jobs", f"set-{n}").shard == last_shard)
    fired: Recorder[int] = Recorder()
    settings = TimersSettings(safety_wakeup_seconds=INTERVAL_SECONDS, legacy_import=False)
    reading_replicas = {"load_balancing_strategy": LoadBalancingStrategy.ROUND_ROBIN}
    worker = front.timers(
        spec("jobs", Job, lambda payload, context: fired.record(payload.n)),
        settings=settings,
        client_kwargs=reading_replicas,
    )
    writer = front.timers(
        spec("jobs", Job, lambda payload, context: None), settings=settings, client_kwargs=reading_replicas
    )
    writer.set_timer("jobs", written_id, Job(n=0), datetime.timedelta(hours=1))  # its slot map names the old primary
    promoted = redis.Redis(host=replica.host, port=replica.port, decode_responses=True)
    try:
        with running(worker):
            wait_until(lambda: all(front.subscribers(channel) >= 1 for channel in front.wake_channels("jobs")))
            promoted.execute_command("CLUSTER", "FAILOVER")  # type: ignore[no-untyped-call]
            wait_until(
                lambda: replication(replica)["role"] == "master" and replication(old_primary)["role"] != "master",
                timeout=FAILOVER_WAIT,
            )
            cluster.wait_healthy(FAILOVER_WAIT)
            # Written by a client that follows MOVED itself: it lands on the promoted node, and reaches the demoted
            # one by replication. No wake-up: the worker's safety check must find it, then claim it where it is.
            old_version_set_timer(front, "jobs", timer_id, server_ms(front), Job(n=1))
            arrived = fired.arrives(1, timeout=INTERVAL_SECONDS + SLACK_SECONDS)
            assert arrived, "the worker did not move to the promoted node"

            def written() -> bool:
                try:
                    writer.set_timer("jobs", written_id, Job(n=2), datetime.timedelta(0))
                except TimersError:
                    return False  # the first try may meet the demoted node; the one after must not
                return True

            wait_until(written, timeout=SLACK_SECONDS)
            fired.wait_for(2)
    finally:
        promoted.close()
    assert fired.items == [1, 2]
