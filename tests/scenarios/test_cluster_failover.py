"""A primary of a real local cluster SIGKILLed while a worker drains and a writer writes, through both front ends.

Its replica is promoted (in about two to three seconds, `cluster-node-timeout 1000`). Every timer whose
`durable=True` set returned fires; the worker rides through the outage; its notification connection, which
was on the killed node, re-homes on a live node and hears the wake-ups again (the safety interval is a minute,
so nothing here fires by the safety claim). Each test starts a cluster of its own: it kills a node.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Iterator
from typing import cast

import pytest
import redis
import redis.cluster

from redis_timers import (
    TimersConnectionError,
    TimersDurabilityError,
    TimersError,
    TimersSettings,
    TimersUnavailableError,
)
from redis_timers.cli.embedded import EmbeddedCluster, EmbeddedServer
from redis_timers.routing import listener_node
from tests.conftest import skip_without_cluster_clients
from tests.harness import FRONT_KINDS, Front, FrontKind, Recorder, TimersHarness, running, spec, wait_until
from tests.scenarios.models import Job

NOW = datetime.timedelta(0)
SOON = datetime.timedelta(milliseconds=50)
SAFETY_SECONDS = 60.0
"""A minute's safety interval: within a test, only a wake-up or a re-claim after an outage fires a timer."""
FAILOVER_WAIT = 40.0
"""Generous: the promotion takes 2-3 s, and a loaded machine may take several times as long."""


@pytest.fixture(params=FRONT_KINDS)
def failing_over(request: pytest.FixtureRequest) -> Iterator[tuple[Front, EmbeddedCluster]]:
    kind: FrontKind = request.param
    skip_without_cluster_clients()
    with EmbeddedCluster(primaries=3, replicas=3) as cluster:
        # The clients are made from the URL of a replica, which stays up (the test kills a primary).
        front = Front(kind, cluster.replicas[0].url, cluster=True)
        try:
            yield front, cluster
        finally:
            front.close()


def listening_node(cluster: EmbeddedCluster, channel: str) -> EmbeddedServer | None:
    """The live node a connection subscribes to `channel` on, if any."""
    for node in cluster.live_nodes:
        client = redis.Redis(host=node.host, port=node.port)
        try:
            if int(client.pubsub_numsub(channel)[0][1]) > 0:
                return node
        finally:
            client.close()
    return None


def namespace_on(front: Front, node: EmbeddedServer) -> str:
    """A namespace whose hash tag's slot is served by `node`."""
    raw = cast(redis.cluster.RedisCluster, front.raw)
    for index in range(1000):
        name = f"fo{index}"
        if raw.get_node_from_key(f"{{{name}}}").port == node.port:  # type: ignore[no-untyped-call]
            return name
    raise AssertionError(f"no namespace found on {node.port}")


def set_until_accepted(timers: TimersHarness, n: int, *, durable: bool) -> None:
    """Retry a write the cluster refused while it failed over (a retry is always safe)."""

    def accepted() -> bool:
        try:
            timers.set_timer("jobs", f"t{n}", Job(n=n), SOON, durable=durable)
        except TimersError:
            return False
        return True

    wait_until(accepted, timeout=FAILOVER_WAIT, interval=0.05)


def test_a_primary_killed_while_a_worker_drains_loses_no_durable_timer(
    failing_over: tuple[Front, EmbeddedCluster],
) -> None:
    front, cluster = failing_over
    raw = cast(redis.cluster.RedisCluster, front.raw)
    # The primary the worker's notification connection starts on: the keys are put there too, so the kill takes
    # the worker's shard and its wake-ups at once.
    expected = listener_node(raw.get_nodes(), 0)  # type: ignore[no-untyped-call]
    doomed = next(node for node in cluster.primaries if node.port == expected.port)
    # Once its replica is promoted the shard has no replica left: durable writes are refused (quickly) from then.
    settings = TimersSettings(
        safety_wakeup_seconds=SAFETY_SECONDS,
        handling_sleep=0.01,
        durable_timeout_seconds=0.2,
        namespace=namespace_on(front, doomed),
    )
    channel = f"{{{settings.namespace}}}:wake:jobs"
    fired: Recorder[int] = Recorder()
    worker = front.timers(spec("jobs", Job, lambda payload, context: fired.record(payload.n)), settings=settings)
    writer = front.timers(spec("jobs", Job, lambda payload, context: None), settings=settings)

    durable_ns: list[int] = []
    plain_ns: list[int] = []
    refused: set[type[TimersError]] = set()
    unexpected: list[BaseException] = []  # anything else the writer met ends it: the waits below then say so
    stop_writing = threading.Event()

    def write() -> None:
        n = 0
        while not stop_writing.is_set():
            n += 1
            durable = n % 2 == 0
            try:
                writer.set_timer("jobs", f"t{n}", Job(n=n), SOON, durable=durable)
            except TimersError as error:
                refused.add(type(error))
                continue  # refused during the failover (or not confirmed by a replica): nothing is owed
            except BaseException as error:
                unexpected.append(error)
                raise
            (durable_ns if durable else plain_ns).append(n)

    with running(worker):
        wait_until(lambda: listening_node(cluster, channel) is not None)
        assert listening_node(cluster, channel) is doomed
        writer.set_timer("jobs", "t0", Job(n=0), NOW)
        fired.wait_for(1)
        writing = threading.Thread(target=write, name="failover-writer", daemon=True)
        writing.start()
        wait_until(lambda: len(durable_ns) >= 20)
        cluster.kill(doomed)
        cluster.wait_healthy(timeout=FAILOVER_WAIT)
        written = len(plain_ns)
        wait_until(lambda: len(plain_ns) > written, timeout=FAILOVER_WAIT)  # the cluster takes writes again
        fired.wait_until(lambda items: plain_ns[written] in items, timeout=FAILOVER_WAIT)
        # The promoted primary has no replica: durable writes to its slots are refused from now on.
        wait_until(lambda: bool(unexpected) or TimersDurabilityError in refused, timeout=FAILOVER_WAIT)
        assert not unexpected, f"set_timer raised {unexpected[0]!r}, not a TimersError"
        stop_writing.set()
        writing.join(FAILOVER_WAIT)
        fired.wait_until(lambda items: set(durable_ns) <= set(items), timeout=FAILOVER_WAIT)

        # The notification connection re-homed on a live node: a timer set now fires by its wake-up.
        wait_until(lambda: listening_node(cluster, channel) is not None, timeout=FAILOVER_WAIT)
        set_until_accepted(writer, -1, durable=False)
        fired.wait_until(lambda items: -1 in items)
        assert worker.worker_running

    lost = [n for n in plain_ns if n not in set(fired.items)]
    print(f"non-durable writes acknowledged then lost in the failover: {len(lost)} of {len(plain_ns)}")
    assert set(durable_ns) <= set(fired.items)
    assert TimersConnectionError in refused  # while the primary was down
    assert refused <= {TimersConnectionError, TimersUnavailableError, TimersDurabilityError}, refused


def test_an_idle_workers_notification_connection_re_homes_after_its_node_dies(
    failing_over: tuple[Front, EmbeddedCluster],
) -> None:
    """An idle worker sends nothing but its listener's PINGs, so its client never hears of the new slot map."""
    front, cluster = failing_over
    settings = TimersSettings(safety_wakeup_seconds=SAFETY_SECONDS, handling_sleep=0.01)
    channel = "{timers}:wake:jobs"
    fired: Recorder[int] = Recorder()
    worker = front.timers(spec("jobs", Job, lambda payload, context: fired.record(payload.n)), settings=settings)
    writer = front.timers(spec("jobs", Job, lambda payload, context: None), settings=settings)
    with running(worker):
        wait_until(lambda: listening_node(cluster, channel) is not None)
        writer.set_timer("jobs", "t0", Job(n=0), NOW)
        fired.wait_for(1)
        doomed = listening_node(cluster, channel)
        assert doomed is not None
        cluster.kill(doomed)
        cluster.wait_healthy(timeout=FAILOVER_WAIT)
        wait_until(lambda: listening_node(cluster, channel) is not None, timeout=FAILOVER_WAIT)
        set_until_accepted(writer, 1, durable=False)
        fired.wait_for(2, timeout=SAFETY_SECONDS / 3)  # by its wake-up, long before the safety claim
        assert worker.worker_running
