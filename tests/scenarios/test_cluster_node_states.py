"""A cluster node in the states a resharding or a failure puts it in: CLUSTERDOWN and TRYAGAIN are outages.

The node runs in cluster mode and serves every slot, so the plain clients of the front ends talk to
it as to any server. CLUSTERDOWN: the slot of `{timers}` is taken off the node (the cluster then
counts as down). TRYAGAIN: that slot is marked as migrating to a second node; a command naming
several keys of it, some there and some not, is then refused until the migration ends.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redis_timers import TimersSettings, TimersUnavailableError
from redis_timers.cli.embedded import EmbeddedServer, free_port
from tests.harness import FRONT_KINDS, Front, FrontKind, Recorder, spec, wait_until
from tests.scenarios.models import Job

NOW = datetime.timedelta(0)
SOON = datetime.timedelta(milliseconds=300)
CLUSTER_ARGS = ("--cluster-enabled", "yes", "--cluster-node-timeout", "1000")
FAST_RETRIES = TimersSettings(handling_sleep=0.01)


def cluster(client: redis.Redis, *args: str) -> Any:
    """One CLUSTER subcommand (redis-py's own wrappers differ between versions)."""
    return client.execute_command("CLUSTER", *args)  # type: ignore[no-untyped-call]


def cluster_node() -> tuple[EmbeddedServer, int]:
    """A node and its bus port, chosen too: the default, port + 10000, is past 65535 for a high free port.

    Each node writes its nodes file in its own directory (the server's working directory).
    """
    bus_port = free_port()
    return EmbeddedServer(extra_args=(*CLUSTER_ARGS, "--cluster-port", str(bus_port))), bus_port


@pytest.fixture(scope="module")
def nodes() -> Iterator[tuple[EmbeddedServer, EmbeddedServer]]:
    (serving, _), (other, other_bus_port) = cluster_node(), cluster_node()
    try:
        client = redis.Redis(host=serving.host, port=serving.port)
        cluster(client, "ADDSLOTSRANGE", "0", "16383")
        cluster(client, "MEET", other.host, str(other.port), str(other_bus_port))
        wait_until(lambda: b"cluster_state:ok" in cluster(client, "INFO"))
        wait_until(lambda: len(cluster(client, "NODES").splitlines()) == 2)
        client.close()
        yield serving, other
    finally:
        serving.close()
        other.close()


@pytest.fixture(params=FRONT_KINDS)
def front(request: pytest.FixtureRequest, nodes: tuple[EmbeddedServer, EmbeddedServer]) -> Iterator[Front]:
    kind: FrontKind = request.param
    serving, _ = nodes
    built = Front(kind, serving.url)
    try:
        yield built
    finally:
        built.close()


def timers_slot(client: redis.Redis) -> int:
    return int(cluster(client, "KEYSLOT", "{timers}"))


def node_id(server: EmbeddedServer) -> str:
    client = redis.Redis(host=server.host, port=server.port)
    try:
        return str(cluster(client, "MYID").decode())
    finally:
        client.close()


def serves(client: redis.Redis) -> bool:
    try:
        client.set("{timers}:probe", "1")
    except redis.exceptions.RedisError:
        return False
    client.delete("{timers}:probe")
    return True


@contextlib.contextmanager
def cluster_down(client: redis.Redis) -> Iterator[None]:
    slot = timers_slot(client)
    cluster(client, "DELSLOTS", str(slot))
    try:
        wait_until(lambda: not serves(client))
        yield
    finally:
        cluster(client, "ADDSLOTS", str(slot))
        wait_until(lambda: serves(client))


@contextlib.contextmanager
def migrating(client: redis.Redis, target: EmbeddedServer) -> Iterator[None]:
    slot = timers_slot(client)
    cluster(client, "SETSLOT", str(slot), "MIGRATING", node_id(target))
    try:
        yield
    finally:
        cluster(client, "SETSLOT", str(slot), "STABLE")


def warned(caplog: pytest.LogCaptureFixture, code: str) -> bool:
    return any(code in record.getMessage() for record in list(caplog.records))


@pytest.mark.parametrize("code", ["CLUSTERDOWN", "TRYAGAIN"])
def test_a_cluster_node_state_is_an_outage_the_worker_rides_out(
    front: Front, nodes: tuple[EmbeddedServer, EmbeddedServer], code: str, caplog: pytest.LogCaptureFixture
) -> None:
    _, other = nodes
    fired: Recorder[str] = Recorder()
    worker = front.timers(spec("jobs", Job, lambda payload, context: fired.record(payload.note)), settings=FAST_RETRIES)
    writer = front.timers(spec("jobs", Job, lambda payload, context: None), spec("other", Job, lambda p, c: None))
    # A topic whose timeline and payloads exist but whose state hash does not: during a migration, a
    # set_timer names keys that are there and one that is not, which is what TRYAGAIN refuses.
    writer.set_timer("other", "kept", Job(n=0), datetime.timedelta(hours=1))
    caplog.set_level(logging.WARNING, logger="redis_timers")
    state = cluster_down(front.raw) if code == "CLUSTERDOWN" else migrating(front.raw, other)

    with contextlib.ExitStack() as stack:
        stack.callback(worker.shutdown_worker)
        worker.start_worker()
        writer.set_timer("jobs", "before", Job(n=1, note="before"), NOW)
        fired.wait_for(1)
        writer.set_timer("jobs", "during", Job(n=2, note="during"), SOON)
        with state:
            with pytest.raises(TimersUnavailableError) as raised:
                writer.set_timer("other", "refused", Job(n=3), NOW)
            assert raised.value.code == code
            wait_until(lambda: warned(caplog, code))  # the worker met the state when "during" came due
            assert worker.worker_running
        fired.wait_for(2)
        writer.set_timer("jobs", "after", Job(n=4, note="after"), NOW)
        fired.wait_for(3)
        worker.stop_worker()

    assert fired.items == ["before", "during", "after"]
    assert writer.get_timer("other", "refused") is None
    front.raw.delete("{timers}:timeline:other", "{timers}:payloads:other")


def shard_serves(client: redis.Redis, tag: str) -> bool:
    try:
        client.set(f"{tag}:probe", "1")
    except redis.exceptions.RedisError:
        return False
    client.delete(f"{tag}:probe")
    return True


@contextlib.contextmanager
def slot_not_served(client: redis.Redis, tag: str) -> Iterator[None]:
    """The slot of `tag` taken off the node, which goes on serving the others'."""
    slot = str(cluster(client, "KEYSLOT", tag))
    client.config_set("cluster-require-full-coverage", "no")
    cluster(client, "DELSLOTS", slot)
    try:
        wait_until(lambda: not shard_serves(client, tag))
        yield
    finally:
        cluster(client, "ADDSLOTS", slot)
        client.config_set("cluster-require-full-coverage", "yes")
        wait_until(lambda: shard_serves(client, tag))


def test_a_shard_whose_slot_is_not_served_backs_off_alone_while_the_others_keep_firing(
    front: Front, caplog: pytest.LogCaptureFixture
) -> None:
    """Four shards on the node; one shard's slot is taken off it (CLUSTERDOWN for its keys alone)."""
    fired: Recorder[str] = Recorder()
    worker = front.timers(
        spec("jobs", Job, lambda payload, context: fired.record(payload.note)),
        settings=TimersSettings(shards=4, handling_sleep=0.01),
    )
    namespace = worker.timers.namespace
    ids = {namespace.keyspace_for("jobs", f"t{n}").shard: f"t{n}" for n in range(100)}
    caplog.set_level(logging.WARNING, logger="redis_timers")
    with contextlib.ExitStack() as stack:
        stack.callback(worker.shutdown_worker)
        worker.set_timer("jobs", ids[2], Job(n=2, note="down"), SOON)
        worker.start_worker()
        with slot_not_served(front.raw, namespace.keyspaces[2].tag):
            wait_until(lambda: warned(caplog, "for shard 2"))  # its call meets CLUSTERDOWN once its timer is due
            for shard in (0, 1, 3):
                worker.set_timer("jobs", ids[shard], Job(n=shard, note=f"shard {shard}"), NOW)
            fired.wait_for(3)
            assert sorted(fired.items) == ["shard 0", "shard 1", "shard 3"]
            assert worker.worker_running
        fired.wait_for(4)
        worker.stop_worker()

    assert fired.items[-1] == "down"
    assert not any("the worker stops" in record.getMessage() for record in caplog.records)
    for keyspace in namespace.keyspaces:
        front.raw.delete(keyspace.timeline("jobs"), keyspace.payloads("jobs"), keyspace.state("jobs"))
    front.raw.delete(namespace.layout_key)
