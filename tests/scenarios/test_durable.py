"""`durable=True` writes return once replicas confirmed them (WAIT), and raise a typed error otherwise.

A primary with one replica (two embedded servers, `--replicaof`) shows the confirmed case: the
replica has the write the moment the call returns. The session's server, which has no replica,
and a demand for more replicas than there are show the refusal: `TimersDurabilityError` within
the timeout, with the write standing on the primary. On the session cluster (each primary with one
replica, the namespace in six shards) every durable write is on the replica of its own shard's primary
when the call returns.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis
import redis.cluster

from redis_timers import TimersDurabilityError, TimersSettings
from redis_timers.cli.embedded import EmbeddedServer
from redis_timers.keys import dead_letter_field
from tests.harness import CLUSTER_VARIANTS, FRONT_KINDS, Front, FrontKind, datetime_to_ms, spec, wait_until
from tests.scenarios.models import Job

TIMELINE = "{timers}:timeline:jobs"
PAYLOADS = "{timers}:payloads:jobs"
LATER = datetime.timedelta(hours=1)
SHORT_WAIT = TimersSettings(durable_timeout_seconds=0.2)


def in_sync(primary: redis.Redis) -> bool:
    info = primary.info("replication")
    return int(info.get("connected_slaves", 0)) == 1 and info["slave0"]["state"] == "online"


@pytest.fixture(scope="module")
def replicated() -> Iterator[tuple[EmbeddedServer, EmbeddedServer]]:
    fast_sync = ("--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0")
    with EmbeddedServer(extra_args=fast_sync) as primary:
        replica_of = ("--replicaof", primary.host, str(primary.port))
        with EmbeddedServer(extra_args=(*fast_sync, *replica_of)) as replica:
            client = redis.Redis(host=primary.host, port=primary.port)
            try:
                wait_until(lambda: in_sync(client))
            finally:
                client.close()
            yield primary, replica


@pytest.fixture(params=FRONT_KINDS)
def replicated_front(
    request: pytest.FixtureRequest, replicated: tuple[EmbeddedServer, EmbeddedServer]
) -> Iterator[tuple[Front, redis.Redis]]:
    kind: FrontKind = request.param
    primary, replica = replicated
    front = Front(kind, primary.url)
    front.raw.flushall()
    front.raw.script_flush()  # the first durable call meets NOSCRIPT, as after a failover
    replica_client = redis.Redis(host=replica.host, port=replica.port, decode_responses=True)
    try:
        yield front, replica_client
    finally:
        replica_client.close()
        front.close()


def wait_calls(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))


@pytest.mark.parametrize(
    "client_kwargs",
    [{}, {"single_connection_client": True}],
    ids=["on-the-lane", "through-the-pool"],  # a single-connection client gets no lane
)
def test_a_durable_write_returns_once_the_replica_has_it(
    replicated_front: tuple[Front, redis.Redis], client_kwargs: dict[str, Any]
) -> None:
    front, replica = replicated_front
    timers = front.timers(spec("jobs", Job, lambda payload, context: None), client_kwargs=client_kwargs)

    due = timers.set_timer("jobs", "t1", Job(n=1), LATER, durable=True)

    assert replica.zscore(TIMELINE, "t1") == datetime_to_ms(due)  # read at once: WAIT said it arrived
    assert json.loads(replica.hget(PAYLOADS, "t1") or "") == {"n": 1, "note": ""}
    assert timers.remove_timer("jobs", "t1", durable=True) is True
    assert replica.zscore(TIMELINE, "t1") is None
    assert timers.remove_timer("jobs", "t1", durable=True) is False


def test_a_durable_requeue_returns_once_the_replica_has_it(replicated_front: tuple[Front, redis.Redis]) -> None:
    front, replica = replicated_front
    timers = front.timers(spec("jobs", Job, lambda payload, context: None))
    record = {"payload": '{"n":7,"note":""}', "attempts": 5, "error": "boom", "failed_at": 1}
    front.raw.hset("{timers}:dead", dead_letter_field("jobs", "t7"), json.dumps(record))

    assert timers.requeue_dead_letter("jobs", "t7", durable=True) is True

    assert replica.zscore(TIMELINE, "t7") is not None
    assert replica.hlen("{timers}:dead") == 0


def replica_of_shard(front: Front, key: str) -> redis.Redis:
    """A plain client of the replica of the primary that serves `key`'s slot, allowed to read there (READONLY)."""
    cluster = cast(redis.cluster.RedisCluster, front.raw)
    primary = cluster.get_node_from_key(key)  # type: ignore[no-untyped-call]
    first_replica = front.node(primary.host, primary.port).info("replication")["slave0"]
    replica = front.node(str(first_replica["ip"]), int(first_replica["port"]))
    replica.execute_command("READONLY")  # type: ignore[no-untyped-call]
    return replica


@pytest.mark.parametrize("front", CLUSTER_VARIANTS, indirect=True)
def test_a_durable_write_on_a_cluster_is_on_its_shards_replica_when_it_returns(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, lambda payload, context: None))
    ids = [f"t{n}" for n in range(12)]  # over every shard, so over every primary
    assert {front.keyspace_for("jobs", timer_id).shard for timer_id in ids} == set(range(front.shards))

    for n, timer_id in enumerate(ids):
        due = timers.set_timer("jobs", timer_id, Job(n=n), LATER, durable=True)
        timeline = front.keyspace_for("jobs", timer_id).timeline("jobs")
        assert replica_of_shard(front, timeline).zscore(timeline, timer_id) == datetime_to_ms(due)

    for timer_id in ids:
        assert timers.remove_timer("jobs", timer_id, durable=True) is True
        timeline = front.keyspace_for("jobs", timer_id).timeline("jobs")
        assert replica_of_shard(front, timeline).zscore(timeline, timer_id) is None


def test_only_durable_writes_wait(replicated_front: tuple[Front, redis.Redis]) -> None:
    # The hot path stays one EVALSHA: plain writes send no WAIT.
    front, _ = replicated_front
    timers = front.timers(spec("jobs", Job, lambda payload, context: None))
    timers.set_timer("jobs", "t0", Job(n=0), LATER)  # loads the script
    before = wait_calls(front.raw)

    timers.set_timer("jobs", "t1", Job(n=1), LATER)
    timers.remove_timer("jobs", "t1")
    assert wait_calls(front.raw) == before
    timers.set_timer("jobs", "t2", Job(n=2), LATER, durable=True)
    assert wait_calls(front.raw) == before + 1


def test_asking_for_more_replicas_than_confirm_raises_with_how_many_did(
    replicated_front: tuple[Front, redis.Redis],
) -> None:
    front, replica = replicated_front
    settings = TimersSettings(durable_replicas=2, durable_timeout_seconds=0.2)
    timers = front.timers(spec("jobs", Job, lambda payload, context: None), settings=settings)

    with pytest.raises(TimersDurabilityError, match="1 of the 2 replica") as caught:
        timers.set_timer("jobs", "t1", Job(n=1), LATER, durable=True)

    assert (caught.value.acknowledged, caught.value.required) == (1, 2)
    assert replica.zscore(TIMELINE, "t1") is not None  # the write stands


def test_without_a_replica_a_durable_write_raises_in_time_and_stands(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, lambda payload, context: None), settings=SHORT_WAIT)

    started = time.monotonic()
    with pytest.raises(TimersDurabilityError) as caught:
        timers.set_timer("jobs", "t1", Job(n=1), LATER, durable=True)
    elapsed = time.monotonic() - started

    assert (caught.value.acknowledged, caught.value.required) == (0, 1)
    assert 0.2 <= elapsed < 10
    assert front.raw.zscore(TIMELINE, "t1") is not None
    info = timers.get_timer("jobs", "t1")
    assert info is not None
    assert info.payload == Job(n=1)
    # A retry is safe: the same write again, refused again, and still one timer.
    with pytest.raises(TimersDurabilityError):
        timers.set_timer("jobs", "t1", Job(n=1), LATER, durable=True)
    assert front.raw.zcard(TIMELINE) == 1
    with pytest.raises(TimersDurabilityError):
        timers.remove_timer("jobs", "t1", durable=True)
    assert front.raw.zscore(TIMELINE, "t1") is None


def test_a_plain_write_without_a_replica_does_not_wait(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, lambda payload, context: None), settings=SHORT_WAIT)

    timers.set_timer("jobs", "t1", Job(n=1), LATER)
    assert timers.remove_timer("jobs", "t1") is True


def test_a_durable_write_loads_its_script_as_utf8_whatever_the_clients_encoding(front: Front) -> None:
    """After SCRIPT FLUSH the durable path loads the script itself: in UTF-8, or a utf-16 client loads garbage."""
    front.raw.script_flush()
    timers = front.timers(
        spec("jobs", Job, lambda payload, context: None),
        settings=SHORT_WAIT,
        decode_responses=False,
        client_kwargs={"encoding": "utf-16"},
    )

    with pytest.raises(TimersDurabilityError):  # no replica: the script ran, then WAIT found none
        timers.set_timer("jobs", "t1", Job(n=1), LATER, durable=True)

    assert front.raw.zscore(TIMELINE, "t1") is not None


def evalsha_calls(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


@pytest.mark.parametrize(
    "client_kwargs",
    [{}, {"single_connection_client": True}],
    ids=["on-the-lane", "through-the-pool"],
)
def test_a_socket_timeout_shorter_than_the_wait_still_gives_a_durability_error(
    front: Front, client_kwargs: dict[str, Any]
) -> None:
    # The WAIT reply may come only after TIMERS_DURABLE_TIMEOUT_SECONDS: a client whose socket timeout is shorter
    # must neither take that as an outage (TimersConnectionError) nor replay the write on the retries.
    # Each WAIT then waits 250 ms; the server may end one up to 1/hz (100 ms) late, still within the 500 ms.
    settings = TimersSettings(durable_timeout_seconds=0.8)
    timers = front.timers(
        spec("jobs", Job, lambda payload, context: None),
        settings=settings,
        client_kwargs={"socket_timeout": 0.5, **client_kwargs},
    )
    timers.set_timer("jobs", "t0", Job(n=0), LATER)  # loads the script
    before = evalsha_calls(front.raw)

    started = time.monotonic()
    with pytest.raises(TimersDurabilityError) as caught:
        timers.set_timer("jobs", "t1", Job(n=1), LATER, durable=True)

    assert (caught.value.acknowledged, caught.value.required) == (0, 1)
    assert 0.8 <= time.monotonic() - started < 10
    assert evalsha_calls(front.raw) == before + 1
    assert front.raw.zscore(TIMELINE, "t1") is not None


@pytest.mark.cluster
def test_a_wait_longer_than_the_clients_default_socket_timeout_still_gives_a_durability_error(front: Front) -> None:
    # A client made from a URL without `socket_timeout` (as the test fronts are) reads every reply within
    # redis-py's default of its connections (5 s in redis-py 8), though its pool's keyword arguments name none:
    # a longer wait must be split by that default too, not taken for an outage.
    # Two replicas asked for: the session server has none, each primary of the session cluster one.
    settings = TimersSettings(durable_replicas=2, durable_timeout_seconds=5.5)
    timers = front.timers(spec("jobs", Job, lambda payload, context: None), settings=settings)
    timers.set_timer("jobs", "t0", Job(n=0), LATER)  # loads the script

    started = time.monotonic()
    with pytest.raises(TimersDurabilityError) as caught:
        timers.set_timer("jobs", "t1", Job(n=1), LATER, durable=True)

    assert caught.value.required == 2
    assert 5.5 <= time.monotonic() - started < 15
    assert timers.get_timer("jobs", "t1") is not None  # the write stands


@pytest.mark.parametrize(
    "client_kwargs",
    [{}, {"single_connection_client": True}],
    ids=["on-the-lane", "through-the-pool"],
)
def test_a_durable_write_loads_its_script_on_a_client_of_another_encoding(
    front: Front, client_kwargs: dict[str, Any]
) -> None:
    # The script source goes as UTF-8 whatever the client's encoding, as for a plain write's NOSCRIPT.
    front.raw.script_flush()
    timers = front.timers(
        spec("jobs", Job, lambda payload, context: None),
        settings=SHORT_WAIT,
        decode_responses=False,
        client_kwargs={"encoding": "utf-16", **client_kwargs},
    )

    with pytest.raises(TimersDurabilityError):
        timers.set_timer("jobs", "t1", Job(n=1), LATER, durable=True)

    assert front.raw.zscore(TIMELINE, "t1") is not None


AOF_ALWAYS = ("--appendonly", "yes", "--appendfsync", "always")
"""Every write synced at once, so that WAITAOF answers as soon as the write arrives (everysec: within a second)."""


def has_waitaof(client: redis.Redis) -> bool:
    """WAITAOF came with Redis 7.2; Valkey forked from it (Debian's Redis 7.0 has none)."""
    info = client.info("server")
    version = tuple(int(part) for part in str(info["redis_version"]).split(".")[:2])
    return "valkey_version" in info or version >= (7, 2)


@contextlib.contextmanager
def replica_paused(replica: redis.Redis) -> Iterator[None]:
    """`replica` paused (`CLIENT PAUSE ... WRITE`: it applies and acknowledges nothing of its primary's stream
    meanwhile, and still takes the UNPAUSE) until the block ends; it then catches up at once."""
    replica.execute_command("CLIENT", "PAUSE", 30_000, "WRITE")  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        replica.execute_command("CLIENT", "UNPAUSE")  # type: ignore[no-untyped-call]


def first_replica(primary: redis.Redis) -> redis.Redis:
    first = primary.info("replication")["slave0"]
    return redis.Redis(host=str(first["ip"]), port=int(first["port"]))


def both_replicas_online(primary: redis.Redis) -> bool:
    info = primary.info("replication")
    online = [info.get(f"slave{index}", {}).get("state") for index in range(2)]
    return int(info.get("connected_slaves", 0)) == 2 and online == ["online", "online"]


def aof_ready(node: redis.Redis) -> bool:
    """AOF on and no rewrite under way: a replica rewrites its AOF after its first sync, and reports no sync
    offset until that is done."""
    persistence = node.info("persistence")
    return (
        int(persistence["aof_enabled"]) == 1
        and int(persistence["aof_rewrite_in_progress"]) == 0
        and int(persistence["aof_rewrite_scheduled"]) == 0
    )


@pytest.fixture(scope="module")
def aof_replicated() -> Iterator[EmbeddedServer]:
    """A primary with AOF on and two replicas: one with AOF on, one with it off. Yields the primary."""
    fast_sync = ("--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0")
    with EmbeddedServer(extra_args=(*fast_sync, *AOF_ALWAYS)) as primary:
        replica_of = ("--replicaof", primary.host, str(primary.port))
        with (
            EmbeddedServer(extra_args=(*fast_sync, *AOF_ALWAYS, *replica_of)) as aof_replica,
            EmbeddedServer(extra_args=(*fast_sync, *replica_of)),
        ):
            client = redis.Redis(host=primary.host, port=primary.port)
            replica = redis.Redis(host=aof_replica.host, port=aof_replica.port)
            try:
                if not has_waitaof(client):
                    pytest.skip("this server has no WAITAOF (Redis 7.0)")
                wait_until(lambda: both_replicas_online(client))
                # The first durable write of a test right after this timed out in CI (the AOF replica confirmed
                # it after 0.3 s): wait for the replica's rewrite after its first sync, as the cluster's do.
                wait_until(lambda: aof_ready(replica))
            finally:
                client.close()
                replica.close()
            yield primary


LONG_WAIT = TimersSettings(durable_timeout_seconds=5.0)


def waitaof_calls(client: redis.Redis) -> tuple[int, int]:
    """WAITAOF's calls and of them the refused ones, from INFO commandstats."""
    stats = client.info("commandstats").get("cmdstat_waitaof", {})
    return int(stats.get("calls", 0)), int(stats.get("rejected_calls", 0)) + int(stats.get("failed_calls", 0))


@pytest.mark.parametrize("kind", FRONT_KINDS)
def test_by_default_a_durable_write_to_a_primary_with_aof_waits_for_the_primary_and_a_replica_to_sync_it(
    aof_replicated: EmbeddedServer, kind: FrontKind
) -> None:
    front = Front(kind, aof_replicated.url)
    try:
        front.raw.flushall()
        timers = front.timers(spec("jobs", Job, lambda payload, context: None), settings=LONG_WAIT)
        calls, refused = waitaof_calls(front.raw)

        timers.set_timer("jobs", "t1", Job(n=1), LATER, durable=True)
        assert timers.remove_timer("jobs", "t1", durable=True) is True

        # A WAITAOF per write (a wait longer than half the socket timeout is split: see durability.steps_ms).
        assert waitaof_calls(front.raw) >= (calls + 2, refused)
    finally:
        front.close()


# Serial: the AOF replica must confirm within 0.3 s, which it failed to with three other pytest-xdist workers beside it.
@pytest.mark.serial
@pytest.mark.parametrize("kind", FRONT_KINDS)
def test_replicas_without_aof_are_learned_from_the_first_write_and_later_writes_wait_for_the_primary_only(
    aof_replicated: EmbeddedServer, kind: FrontKind
) -> None:
    # Two replicas asked for, one of them with AOF off: the WAITAOF of the first write counts one at its
    # timeout, the WAIT after it both. The write stands and returns; later ones send WAITAOF 1 0.
    front = Front(kind, aof_replicated.url)
    try:
        front.raw.flushall()
        settings = TimersSettings(durable_replicas=2, durable_timeout_seconds=0.3)
        timers = front.timers(spec("jobs", Job, lambda payload, context: None), settings=settings)

        # The first write learns the nodes. On a loaded machine the AOF replica may confirm it later than 0.3 s
        # (seen in CI's floors pass): such a write stands, and calling again is safe, so call again; the call that
        # returns is the one that learned.
        for _ in range(10):
            started = time.monotonic()
            try:
                timers.set_timer("jobs", "t1", Job(n=1), LATER, durable=True)
                break
            except TimersDurabilityError:
                continue
        else:
            pytest.fail("the AOF replica confirmed none of 10 learning writes within 0.3 s")
        first = time.monotonic() - started
        started = time.monotonic()
        for n in range(3):
            timers.set_timer("jobs", f"t{n + 2}", Job(n=n), LATER, durable=True)
        later = (time.monotonic() - started) / 3

        assert first >= 0.3  # the whole timeout, once
        assert later < first  # appendfsync always: the primary's sync is at once, no replica's awaited
        assert front.raw.zcard(TIMELINE) == 4
    finally:
        front.close()


@pytest.mark.parametrize("kind", FRONT_KINDS)
def test_a_durable_write_to_a_primary_with_aof_whose_replica_is_paused_raises_and_the_write_stands(
    aof_replicated: EmbeddedServer, kind: FrontKind
) -> None:
    front = Front(kind, aof_replicated.url)
    try:
        front.raw.flushall()
        settings = TimersSettings(durable_replicas=2, durable_timeout_seconds=0.5)
        timers = front.timers(spec("jobs", Job, lambda payload, context: None), settings=settings)
        # The first write learns the node (AOF on). Under a loaded CI machine a replica may confirm it later than
        # the 0.5 s this test gives a paused one; such a write stands, and calling again is safe, so call again.
        learned = False
        for _ in range(10):
            try:
                timers.set_timer("jobs", "t0", Job(n=0), LATER, durable=True)
                learned = True
                break
            except TimersDurabilityError:
                continue
        assert learned

        replica = first_replica(front.raw)
        try:
            with replica_paused(replica), pytest.raises(TimersDurabilityError, match="1 of the 2 replica") as raised:
                timers.set_timer("jobs", "t1", Job(n=1), LATER, durable=True)
            assert raised.value.fsync is False  # not received at all
            assert front.raw.zscore(TIMELINE, "t1") is not None  # the write stands
            wait_until(lambda: replica.zscore(TIMELINE, "t1") is not None)  # and reaches the replica once it wakes
        finally:
            replica.close()
    finally:
        front.close()


@pytest.mark.parametrize("kind", FRONT_KINDS)
def test_with_fsync_off_a_durable_write_to_a_primary_with_aof_sends_wait_alone(
    aof_replicated: EmbeddedServer, kind: FrontKind
) -> None:
    front = Front(kind, aof_replicated.url)
    try:
        front.raw.flushall()
        settings = TimersSettings(durable_fsync=False)
        timers = front.timers(spec("jobs", Job, lambda payload, context: None), settings=settings)
        aof_calls, waits = waitaof_calls(front.raw)[0], wait_calls(front.raw)

        timers.set_timer("jobs", "t1", Job(n=1), LATER, durable=True)

        assert waitaof_calls(front.raw)[0] == aof_calls
        assert wait_calls(front.raw) == waits + 1
    finally:
        front.close()


def test_a_primary_with_aof_off_or_without_waitaof_takes_durable_writes_with_wait_and_no_error(
    replicated_front: tuple[Front, redis.Redis],
) -> None:
    front, replica = replicated_front
    timers = front.timers(spec("jobs", Job, lambda payload, context: None))
    _, refused = waitaof_calls(front.raw)

    timers.set_timer("jobs", "t1", Job(n=1), LATER, durable=True)
    if has_waitaof(front.raw):  # refused (AOF off); Redis 7.0 counts no unknown command
        assert waitaof_calls(front.raw)[1] > refused
    waits = wait_calls(front.raw)
    started = time.monotonic()
    timers.set_timer("jobs", "t2", Job(n=2), LATER, durable=True)

    assert replica.zscore(TIMELINE, "t1") is not None
    assert replica.zscore(TIMELINE, "t2") is not None
    assert wait_calls(front.raw) == waits + 1
    assert time.monotonic() - started < TimersSettings().durable_timeout_seconds  # a refusal costs no wait


def aof_on(client: redis.Redis) -> bool:
    info = client.info("persistence")
    busy = int(info["aof_rewrite_in_progress"]) or int(info["aof_rewrite_scheduled"])
    return int(info["aof_enabled"]) == 1 and not busy


@pytest.mark.parametrize("kind", FRONT_KINDS)
def test_a_primary_whose_aof_is_switched_on_at_run_time_has_later_durable_writes_wait_for_it(kind: FrontKind) -> None:
    # Its first durable write met AOF off (WAITAOF refused): that is not kept, or the writes after
    # `CONFIG SET appendonly yes` would be reported durable without waiting for the AOF.
    fast_sync = ("--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0")
    with EmbeddedServer(extra_args=fast_sync) as primary:  # noqa: SIM117 (the replica needs the primary's port)
        with EmbeddedServer(extra_args=(*fast_sync, "--replicaof", primary.host, str(primary.port))) as replica:
            front = Front(kind, primary.url)
            replica_client = redis.Redis(host=replica.host, port=replica.port)
            try:
                if not has_waitaof(front.raw):
                    pytest.skip("this server has no WAITAOF (Redis 7.0)")
                wait_until(lambda: in_sync(front.raw))
                timers = front.timers(spec("jobs", Job, lambda payload, context: None), settings=LONG_WAIT)
                timers.set_timer("jobs", "t1", Job(n=1), LATER, durable=True)  # AOF off: WAIT decides
                for client in (front.raw, replica_client):
                    client.config_set("appendonly", "yes")
                    wait_until(lambda client=client: aof_on(client))  # type: ignore[misc]
                calls, refused = waitaof_calls(front.raw)

                timers.set_timer("jobs", "t2", Job(n=2), LATER, durable=True)

                assert waitaof_calls(front.raw) >= (calls + 1, refused)  # waited for the AOF, not refused
                assert waitaof_calls(front.raw)[1] == refused
            finally:
                replica_client.close()
                front.close()
