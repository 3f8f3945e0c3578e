"""A primary of a real local cluster SIGKILLed while workers drain and writers write, through both front ends.

Its replica is promoted (in about two to three seconds, `cluster-node-timeout 1000`). Each test starts a
cluster of its own (3 primaries, 3 replicas): it kills a node.

On one shard (the namespace's tag on the killed primary): every timer whose `durable=True` set returned fires;
the worker rides through the outage; its notification connection, which was on the killed node, re-homes on a
live node and hears the wake-ups again (the safety interval is a minute, so nothing here fires by the safety
claim).

Over three shards, one on each primary (`TIMERS_SHARDS=3`), with two workers and a writer setting timers due
within a few hundred milliseconds, every other one with `durable=True`, before, during and after the failover:
- every timer whose `durable=True` set returned fires (the write had reached the replica that was promoted);
- the workers ride through: they keep firing, on every shard, the timers written after the failover;
- a non-durable write that returned can be lost (it was acknowledged by the primary before it reached the
  replica); the test prints how many were, which docs/cluster.md reports.
"""

from __future__ import annotations

import dataclasses
import datetime
import threading
import time
from collections.abc import Iterator
from pathlib import Path
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
from redis_timers.keys import Namespace
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


def wait_failed_over(cluster: EmbeddedCluster, primaries: int = 3) -> None:
    """Wait until a replica has taken over from the killed primary and the cluster is whole again.

    `wait_healthy` alone may return at once after a kill: until the live nodes notice (the killed primary's
    replica sees its link drop, the others mark it failed after `cluster-node-timeout`) every live node still
    says `cluster_state:ok`. Counting the live primaries waits for the promotion itself.
    """
    wait_until(lambda: len(cluster.primaries) == primaries and cluster.healthy(), timeout=FAILOVER_WAIT)


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
    # A writer of its own for one durable write while the primary is down: its client sends nothing else after
    # the first timer, so its slot map still names the killed primary, whenever the promotion comes. (The
    # writer thread's first call after the kill may be a plain write, which its cluster client retries, with
    # backoff, for as long as the failover takes, so that thread may well never see the primary down.)
    stale = front.timers(spec("jobs", Job, lambda payload, context: None), settings=settings)

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
        stale.set_timer("jobs", "t0", Job(n=0), NOW)
        fired.wait_for(1)
        writing = threading.Thread(target=write, name="failover-writer", daemon=True)
        writing.start()
        wait_until(lambda: len(durable_ns) >= 20)
        cluster.kill(doomed)
        # A durable write goes on a connection of its shard's node, without the cluster client's retries: while
        # that node is down (as this client still sees it), a typed error, at once.
        with pytest.raises(TimersConnectionError):
            stale.set_timer("jobs", "stale", Job(n=-2), SOON, durable=True)
        assert (
            "a durable write goes on a connection of the shard's node, without the cluster client's retries, so it "
            "fails at once; a plain write first waits out the cluster client's own retries" in CLUSTER
        )
        wait_failed_over(cluster)
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
        wait_failed_over(cluster)
        wait_until(lambda: listening_node(cluster, channel) is not None, timeout=FAILOVER_WAIT)
        set_until_accepted(writer, 1, durable=False)
        fired.wait_for(2, timeout=SAFETY_SECONDS / 3)  # by its wake-up, long before the safety claim
        assert worker.worker_running


# -- over three shards, one on each primary --------------------------------------------------

SHARDS = 3
NAMESPACE = Namespace("timers", SHARDS)
SETTINGS = TimersSettings(shards=SHARDS, safety_wakeup_seconds=30.0, durable_timeout_seconds=0.5)
"""One shard per primary. A safety interval longer than the test's waits, so that a timer fired within them was
found by a wake-up (or a claim), not by the safety claim; a wake-up after the failover shows that the workers
listen again, to the node that serves the killed shard's channels now. A short durable
timeout: after the failover the killed shard's new primary has no replica, so each durable write to it waits
that long before it is refused."""
BEFORE_KILL = 60
"""Writes the writer has had acknowledged before the primary is killed."""
AFTER_FAILOVER = 40
"""Writes it has had acknowledged after the cluster is whole again, before it stops."""
CLUSTER = " ".join((Path(__file__).resolve().parents[2] / "docs" / "cluster.md").read_text(encoding="utf-8").split())
"""docs/cluster.md with line breaks as spaces, so that a sentence is found whatever its wrapping."""
WAIT = 60.0
WAKE_WAIT = 15.0
"""Half the safety interval: a timer that fired within it was woken for."""
"""Generous: promotion takes about 2-3 s, and the machine is shared."""


@dataclasses.dataclass
class Writes:
    """What the writer saw: acknowledged ids by durability, and the calls that raised."""

    durable: list[str] = dataclasses.field(default_factory=list)
    plain: list[str] = dataclasses.field(default_factory=list)
    failed: int = 0
    errors: set[str] = dataclasses.field(default_factory=set)
    """The types of the errors the writes raised."""
    after_failover: list[tuple[str, bool, str | None]] = dataclasses.field(default_factory=list)
    """(timer id, durable, the error's type or None) of each write begun once the cluster was whole again."""
    failed_over: threading.Event = dataclasses.field(default_factory=threading.Event)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @property
    def acknowledged(self) -> int:
        with self.lock:
            return len(self.durable) + len(self.plain)


def write_until(timers: TimersHarness, writes: Writes, stop: threading.Event) -> None:
    """Set timers `w0`, `w1`... due 0-250 ms later, odd ones durable, until `stop`; errors are counted, not fatal."""
    number = 0
    while not stop.is_set():
        timer_id, durable = f"w{number}", number % 2 == 1
        delay = datetime.timedelta(milliseconds=number % 250)
        after = writes.failed_over.is_set()
        error: str | None = None
        try:
            timers.set_timer("jobs", timer_id, Job(n=number), delay, durable=durable)
        except TimersError as refused:
            # Refused or unanswered while the shard's primary is down or being replaced: not acknowledged, so
            # not counted either way (it may still fire: the write may have landed before the reply was lost).
            error = type(refused).__name__
        with writes.lock:
            if error is not None:
                writes.failed += 1
                writes.errors.add(error)
            else:
                (writes.durable if durable else writes.plain).append(timer_id)
            if after:
                writes.after_failover.append((timer_id, durable, error))
        number += 1


def shard_primary(cluster: EmbeddedCluster, front: Front, shard: int) -> EmbeddedServer:
    """The node that serves `shard`'s keys now."""
    raw = cast(redis.cluster.RedisCluster, front.raw)
    node = raw.get_node_from_key(NAMESPACE.keyspaces[shard].tag)  # type: ignore[no-untyped-call]
    return next(server for server in cluster.nodes if server.port == int(node.port))


def subscriptions(cluster: EmbeddedCluster) -> dict[int, int]:
    """Port -> subscribers to the wake-up channels of the jobs topic, summed over the shards, of nodes that have
    any (PUBSUB NUMSUB counts a node's own clients only)."""
    channels = [keyspace.channel("jobs") for keyspace in NAMESPACE.keyspaces]
    found: dict[int, int] = {}
    for node in cluster.primaries:
        client = redis.Redis(host=node.host, port=node.port)
        try:
            count = sum(int(subscribers) for _, subscribers in client.pubsub_numsub(*channels))
        finally:
            client.close()
        if count:
            found[node.port] = count
    return found


def timelines_empty(cluster: EmbeddedCluster) -> bool:
    """No timer left on any primary (asked of each node: a cluster client's slot map may still be the old one)."""
    for node in cluster.primaries:
        client = redis.Redis(host=node.host, port=node.port)
        try:
            if client.keys("*:timeline:*"):
                return False
        finally:
            client.close()
    return True


def test_a_primary_killed_while_workers_drain_loses_no_durable_write(
    failing_over: tuple[Front, EmbeddedCluster],
) -> None:
    front, cluster = failing_over
    fired: Recorder[str] = Recorder()
    handler = spec("jobs", Job, lambda payload, context: fired.record(f"w{payload.n}"))
    workers = [front.timers(handler, settings=SETTINGS) for _ in range(2)]
    writer = front.timers(handler, settings=SETTINGS)
    writes, stop = Writes(), threading.Event()
    thread = threading.Thread(target=write_until, args=(writer, writes, stop), name="writer", daemon=True)
    with running(workers[0]), running(workers[1]):
        thread.start()
        try:
            wait_until(lambda: writes.acknowledged >= BEFORE_KILL, WAIT)
            # Each worker has one subscription, for every shard's channels, on one node: the primary killed is
            # that node, so the kill takes a shard and the wake-ups of every shard away at once.
            wait_until(lambda: sum(subscriptions(cluster).values()) == 2 * SHARDS, WAIT)
            (listening,) = subscriptions(cluster)
            victim = next(node for node in cluster.primaries if node.port == listening)
            killed = next(shard for shard in range(SHARDS) if shard_primary(cluster, front, shard) is victim)
            killed_at = time.monotonic()
            cluster.kill(victim)
            wait_failed_over(cluster)
            promoted_after = time.monotonic() - killed_at
            writes.failed_over.set()
            settled = writes.acknowledged
            wait_until(lambda: writes.acknowledged >= settled + AFTER_FAILOVER, WAIT)
        finally:
            stop.set()
            thread.join(WAIT)
        assert not thread.is_alive()
        with writes.lock:
            durable, plain = list(writes.durable), list(writes.plain)
        # Every timer whose durable set returned fires, with the same two workers (never restarted).
        fired.wait_until(lambda items: set(durable) <= set(items), WAIT)
        # The workers rode through: the writes made after the failover, on every shard, fire too; then
        # nothing is left due, so whatever has not fired by then is gone from the cluster, not late.
        late = durable[-AFTER_FAILOVER // 2 :] + plain[-AFTER_FAILOVER // 2 :]
        fired.wait_until(lambda items: set(late) <= set(items), WAIT)
        assert {NAMESPACE.keyspace_for("jobs", timer_id).shard for timer_id in late} == set(range(SHARDS))
        wait_until(lambda: timelines_empty(cluster), WAIT)
        # Both listeners subscribed again, elsewhere (the killed node is gone), for every shard's channels.
        wait_until(lambda: sum(subscriptions(cluster).values()) == 2 * SHARDS, WAIT)
        assert "a worker keeps one subscription connection, to one node, for the channels of every shard" in CLUSTER
        assert "when that node goes away the worker subscribes again on a live node" in CLUSTER
        # Idle now, with nothing due for the safety interval: a timer set on each shard fires by its wake-up.
        # (Numbered past every write, and recorded as `w<n>` like them.)
        numbers = range(10**6, 10**6 + 1000)
        wakers = [next(f"w{n}" for n in numbers if shard_of(f"w{n}") == shard) for shard in range(SHARDS)]
        for timer_id in wakers:
            writer.set_timer("jobs", timer_id, Job(n=int(timer_id[1:])), datetime.timedelta(0))
        fired.wait_until(lambda items: set(wakers) <= set(items), WAKE_WAIT)
        assert all(worker.worker_running for worker in workers)
    lost = sorted(set(plain) - set(fired.items))
    print(
        f"\n{front.kind}: replica promoted {promoted_after:.1f} s after the kill; {len(durable)} durable and "
        f"{len(plain)} non-durable writes acknowledged, {writes.failed} refused; non-durable writes lost: {len(lost)}"
    )
    assert set(durable) <= set(fired.items)
    assert "it survives the crash of its primary and the automatic failover to a replica that received it" in CLUSTER
    assert writes.errors <= {"TimersConnectionError", "TimersUnavailableError", "TimersDurabilityError"}
    assert (
        "a writer gets `TimersConnectionError`, `TimersUnavailableError` (`CLUSTERDOWN`, `TRYAGAIN`) or, for a "
        "durable write, `TimersDurabilityError`" in CLUSTER
    )
    assert "takes up the promoted replica without a restart" in CLUSTER
    # Once the replica has taken over, the killed shard's primary has no replica of its own: its durable writes
    # are refused (the write stands, as documented), its other writes and every other shard's go on.
    killed_shard = [
        (durable, error) for timer_id, durable, error in writes.after_failover if shard_of(timer_id) == killed
    ]
    refused_durable = [error for durable, error in killed_shard if durable]
    assert refused_durable
    assert None not in refused_durable
    assert "TimersDurabilityError" in refused_durable
    assert None in {error for durable, error in killed_shard if not durable}
    others = [(durable, error) for timer_id, durable, error in writes.after_failover if shard_of(timer_id) != killed]
    assert {error for durable, error in others if not durable} == {None}
    # (A durable write elsewhere may time out on a loaded machine; most are confirmed.)
    assert None in {error for durable, error in others if durable}
    assert (
        "meanwhile durable writes to its shards are refused, with `TimersDurabilityError` after "
        "`TIMERS_DURABLE_TIMEOUT_SECONDS` (the write standing on the primary), while its plain writes and every "
        "other shard's writes go on" in CLUSTER
    )


def shard_of(timer_id: str) -> int:
    return NAMESPACE.keyspace_for("jobs", timer_id).shard
