"""Keeping every promise under hostile conditions: huge concurrency, several loops on one instance,
cancellation mid round trip, odd client encodings, unreadable dead letters, dead workers' leases."""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import logging
import signal
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
import redis

from redis_timers import Router, TimersSettings, scripts, wire
from redis_timers.keys import Keyspace
from redis_timers.ops import ScriptCall
from redis_timers.sync.driver import SyncDriver
from tests.harness import (
    Front,
    Recorder,
    datetime_to_ms,
    running,
    server_time_ms,
    spec,
    subscribers,
    wait_until,
)
from tests.scenarios.models import Job

NOW = datetime.timedelta(0)
LATER = datetime.timedelta(hours=1)


ASYNC_ONLY = pytest.mark.parametrize("front", ["async"], indirect=True)
SYNC_ONLY = pytest.mark.parametrize("front", ["sync"], indirect=True)
KEYSPACE = Keyspace("timers")
PAUSE_MS = 30_000


@contextlib.contextmanager
def writes_paused(front: Front) -> Iterator[None]:
    """The server holds back every write command (scripts included) until the block ends."""
    front.raw.client_pause(PAUSE_MS, all=False)
    try:
        yield
    finally:
        front.raw.client_unpause()


def held_back(front: Front) -> int:
    """Commands the server holds back during a pause (it counts them as blocked clients)."""
    return int(front.raw.info("clients")["blocked_clients"])


def bulk_load(front: Front, topic: str, count: int, due_ms: int) -> None:
    """`count` fresh timers due at `due_ms`, written as `set_timer` stores them (without its per-call cost)."""
    load(front.raw, topic, count, due_ms)


def load(client: redis.Redis, topic: str, count: int, due_ms: int) -> None:
    pipe = client.pipeline(transaction=False)
    ids = [f"t{n}" for n in range(count)]
    pipe.zadd(f"{{timers}}:timeline:{topic}", dict.fromkeys(ids, due_ms))
    pipe.hset(f"{{timers}}:payloads:{topic}", mapping={f"t{n}": Job(n=n).model_dump_json() for n in range(count)})
    pipe.execute()


# -- point 9: more settlements than one script can unpack ------------------------------------


def test_a_worker_with_concurrency_9000_acks_9000_quick_timers(front: Front) -> None:
    total = 9000
    calls: Recorder[int] = Recorder()
    timers = front.timers(spec("jobs", Job, lambda payload, context: calls.record(payload.n)))
    bulk_load(front, "jobs", total, server_time_ms(front.raw))
    with running(timers, concurrency=total):
        calls.wait_for(total, timeout=60)
        wait_until(lambda: front.raw.zcard("{timers}:timeline:jobs") == 0 or not timers.worker_running, timeout=30)
        assert timers.worker_running, "the worker crashed"
    assert sorted(calls.items) == list(range(total))
    assert front.timer_data() == []


@ASYNC_ONLY
def test_9000_runs_finishing_at_once_are_all_acked(front: Front) -> None:
    """All 9,000 handlers wait on one event, so their acks are all pending when it is set."""
    total = 9000
    started: Recorder[int] = Recorder()
    release = front.portal.call(anyio.Event)

    async def handler(payload: Job, context: dict[str, Any]) -> None:
        started.record(payload.n)
        await release.wait()

    router = Router()
    router.handler(topic="jobs", schema=Job)(handler)
    timers = front.timers(routers=[router])
    bulk_load(front, "jobs", total, server_time_ms(front.raw))
    with running(timers, concurrency=total):
        started.wait_for(total, timeout=60)
        front.portal.call(release.set)
        wait_until(lambda: front.raw.zcard("{timers}:timeline:jobs") == 0 or not timers.worker_running, timeout=30)
        assert timers.worker_running, "the worker crashed"
    assert front.timer_data() == []


def cycle_call(
    limit: int, record: str, previous: str, settlements: bytes = b"", *, lease_ms: int = 30_000
) -> ScriptCall:
    """One worker round trip over topic `jobs`, as the engine builds it (see `WorkerEngine._cycle_call`)."""
    keys = (
        KEYSPACE.dead_letters,
        KEYSPACE.claim_record(record),
        KEYSPACE.claim_record(previous),
        KEYSPACE.heads,
        KEYSPACE.topic_set(["jobs"]),
    )
    # Every call registers the topic set (as a worker's first call does).
    args = (lease_ms, limit, "", KEYSPACE.channel_prefix, KEYSPACE.tag, 0, 8000, settlements, 1, "jobs")
    return ScriptCall(scripts.CYCLE, keys, args)


def test_one_round_trip_claims_and_acks_more_timers_than_lua_can_unpack(redis_url: str) -> None:
    """The script itself slices its commands: 9,000 claims (18,000 ZADD values) and 9,000 acks in one call each."""
    total = 9000
    client = redis.Redis.from_url(redis_url)
    try:
        load(client, "jobs", total, server_time_ms(client))
        driver = SyncDriver(client)
        claimed = wire.claims(driver.execute(cycle_call(total, "w:1", "w:0"))[4])
        assert len(claimed) == total
        acks = b"".join(wire.ACK + claim.key for claim in claimed)
        reply = driver.execute(cycle_call(0, "w:2", "w:1", acks))
        assert int(reply[2]) == 0, "every ack held its lease"
        assert client.zcard("{timers}:timeline:jobs") == 0
        assert client.hlen("{timers}:payloads:jobs") == 0
    finally:
        client.close()


# -- point 10: several run_forever loops on one Timers ------------------------------------------


def test_stop_ends_every_run_forever_of_one_timers(front: Front) -> None:
    """One loop returns at once; the other is mid round trip and must still see the stop afterwards."""
    gate, started = front.gate(), Recorder[int]()

    def handler(payload: Job, context: dict[str, Any]) -> None:
        started.record(payload.n)
        gate.wait()

    timers = front.timers(spec("jobs", Job, handler, blocking=True))
    loops = [timers.background("run_forever") for _ in range(2)]
    wait_until(lambda: subscribers(front.raw, "{timers}:wake:jobs") == 2)
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    started.wait_for(1)
    with writes_paused(front):
        gate.open()  # the loop that ran it sends its ack, and the server holds that round trip back
        wait_until(lambda: held_back(front) >= 1)
        timers.request_stop()
        # The idle loop returns while the other waits for its reply. (Under load the idle one may still be
        # finishing the claim its notification of "a" asked for, and wait too: then both go on below.)
        concurrent.futures.wait(loops, timeout=10, return_when=concurrent.futures.FIRST_COMPLETED)
    concurrent.futures.wait(loops, timeout=10)
    assert all(loop.done() for loop in loops), "a run_forever missed the stop"
    for loop in loops:
        loop.result()
    assert timers.get_timer("jobs", "a") is None


# -- point 11: cancelling run_forever mid round trip --------------------------------------------


@ASYNC_ONLY
def test_cancelling_run_forever_mid_round_trip_keeps_its_acks_and_hands_its_claims_back(front: Front) -> None:
    gate, started = front.gate(), Recorder[str]()

    def handler(payload: Job, context: dict[str, Any]) -> None:
        started.record(f"n{payload.n}")
        if payload.n == 1:
            gate.wait()

    timers = front.timers(spec("jobs", Job, handler, blocking=True))
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    timers.start_worker(concurrency=1)
    started.wait_for(1)
    timers.set_timer("jobs", "b", Job(n=2), NOW)  # due, but the worker's only slot is taken
    with writes_paused(front):
        gate.open()  # the worker's next round trip acks "a" and claims "b": the server holds it back
        wait_until(lambda: held_back(front) >= 1)
        timers.request_cancel()
    timers.wait_worker(cancelled_ok=True)
    assert timers.get_timer("jobs", "a") is None, "the ack of the interrupted round trip was lost"
    info = timers.get_timer("jobs", "b")
    assert info is not None
    assert not info.running
    score = front.raw.zscore("{timers}:timeline:jobs", "b")
    assert score is not None
    assert score <= server_time_ms(front.raw), "b is still leased to the cancelled worker"
    assert started.items == ["n1"]


@SYNC_ONLY
def test_ctrl_c_in_sync_run_forever_mid_round_trip_keeps_its_acks_and_hands_its_claims_back(front: Front) -> None:
    """The sync twin: KeyboardInterrupt in the thread running the loop, while a round trip is in flight."""
    gate, started = front.gate(), Recorder[str]()

    def handler(payload: Job, context: dict[str, Any]) -> None:
        started.record(f"n{payload.n}")
        if payload.n == 1:
            gate.wait()

    timers = front.timers(spec("jobs", Job, handler, blocking=True))
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    interrupted = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        interrupted.set()
        raise KeyboardInterrupt

    def interrupt_mid_round_trip() -> None:
        started.wait_for(1)
        timers.set_timer("jobs", "b", Job(n=2), NOW)  # due, but the worker's only slot is taken
        with writes_paused(front):
            gate.open()  # the loop's next round trip acks "a" and claims "b": the server holds it back
            wait_until(lambda: held_back(front) >= 1)
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
            assert interrupted.wait(10)

    previous = signal.signal(signal.SIGINT, on_sigint)
    helper = threading.Thread(target=interrupt_mid_round_trip)
    helper.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            timers.timers.run_forever(concurrency=1)  # in the main thread, where Ctrl-C lands
    finally:
        signal.signal(signal.SIGINT, previous)
        helper.join(30)
    assert timers.get_timer("jobs", "a") is None, "the ack of the interrupted round trip was lost"
    info = timers.get_timer("jobs", "b")
    assert info is not None
    assert not info.running
    score = front.raw.zscore("{timers}:timeline:jobs", "b")
    assert score is not None
    assert score <= server_time_ms(front.raw), "b is still leased to the interrupted worker"
    assert started.items == ["n1"]


# -- point 15: unreadable dead letters -----------------------------------------------------------


def test_one_unreadable_dead_letter_does_not_hide_the_others(front: Front) -> None:
    def fail(payload: Job, context: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    timers = front.timers(spec("jobs", Job, fail, max_attempts=1))
    timers.set_timer("jobs", "good", Job(n=1), NOW)
    timers.handle_ready_timers()
    raw = redis.Redis.from_url(front.url)  # bytes in, bytes out
    try:
        # A record whose payload is not UTF-8 (written by another client), and one that is not JSON at all.
        raw.hset(
            "{timers}:dead",
            mapping={
                b"jobs\0latin": b'{"payload":"{\\"n\\":1,\\"note\\":\\"caf\xe9\\"}",'
                b'"attempts":2,"error":"x","failed_at":5}',
                b"jobs\0garbage": b"written by hand",
            },
        )
    finally:
        raw.close()

    letters = {letter.timer_id: letter for letter in timers.dead_letters()}
    assert sorted(letters) == ["garbage", "good", "latin"]
    assert letters["good"].error == "RuntimeError: boom"
    assert letters["good"].payload_as(Job) == Job(n=1)
    assert letters["latin"].attempts == 2
    assert letters["latin"].payload.encode("utf-8", "surrogateescape") == b'{"n":1,"note":"caf\xe9"}'
    assert letters["garbage"].payload == "written by hand"
    assert letters["garbage"].error.startswith("unreadable dead letter record")
    assert timers.requeue_dead_letter("jobs", "good")


# -- point 16 and "say only what is true" 7: get_timer of a leased timer -------------------------


def test_get_timer_of_a_running_timer_shows_its_due_time_and_its_lease_apart(front: Front) -> None:
    gate, started = front.gate(), Recorder[str]()

    def handler(payload: Job, context: dict[str, Any]) -> None:
        started.record("run")
        gate.wait()

    timers = front.timers(spec("jobs", Job, handler, blocking=True))
    due_at = timers.set_timer("jobs", "a", Job(n=1), NOW)
    with running(timers):
        started.wait_for(1)
        info = timers.get_timer("jobs", "a")
        assert info is not None
        assert info.running
        assert info.due_at == due_at, "due_at is the due time, not the lease's end"
        assert info.lease_expires_at is not None
        lease_ms = datetime_to_ms(info.lease_expires_at) - server_time_ms(front.raw)
        assert 0 < lease_ms <= 30_000
        assert info.attempts == 1
        gate.open()
        wait_until(lambda: timers.get_timer("jobs", "a") is None)


def test_get_timer_of_a_timer_whose_worker_died_is_not_running_once_the_lease_ran_out(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, lambda payload, context: None))
    due_at = timers.set_timer("jobs", "a", Job(n=1), NOW)
    # A delay of 0 is due from the server's next whole millisecond: claim once it is due, not in the same one.
    wait_until(lambda: server_time_ms(front.raw) >= datetime_to_ms(due_at))
    client = redis.Redis.from_url(front.url)
    try:
        # A worker claims it with a short lease, then dies: nothing renews or settles its run.
        [claimed] = wire.claims(SyncDriver(client).execute(cycle_call(1, "dead:1", "dead:0", lease_ms=300))[4])
    finally:
        client.close()
    assert claimed.timer_id == b"a"
    leased = timers.get_timer("jobs", "a")
    assert leased is not None
    assert leased.running
    assert leased.due_at == due_at
    assert leased.lease_expires_at is not None
    lease_end = datetime_to_ms(leased.lease_expires_at)

    wait_until(lambda: server_time_ms(front.raw) >= lease_end)
    expired = timers.get_timer("jobs", "a")
    assert expired is not None
    assert not expired.running, "the lease ran out with its worker"
    assert expired.lease_expires_at is None
    assert expired.due_at == due_at
    assert expired.attempts == 1


# -- point 14: odd client encodings, lost notifications ------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "decode_responses"),
    [("latin-1", True), ("latin-1", False), ("utf-16", False)],
    ids=["latin-1-decoded", "latin-1-raw", "utf-16-raw"],
)
def test_a_client_with_another_encoding_loads_the_scripts_and_hears_wake_ups(
    front: Front, encoding: str, decode_responses: bool
) -> None:
    """A non-ASCII topic's wake-ups arrive at once: the idle worker's safety claim is a minute away."""
    front.raw.script_flush()  # so that this client is the one loading every script
    calls: Recorder[int] = Recorder()
    topic = "tâches-été"
    timers = front.timers(
        spec(topic, Job, lambda payload, context: calls.record(payload.n)),
        settings=TimersSettings(safety_wakeup_seconds=60),
        decode_responses=decode_responses,
        client_kwargs={"encoding": encoding},
    )
    with running(timers):
        wait_until(lambda: subscribers(front.raw, f"{{timers}}:wake:{topic}") == 1)
        timers.set_timer(topic, "a", Job(n=1), NOW)
        calls.wait_for(1, timeout=10)
    info_after = timers.get_timer(topic, "a")
    assert info_after is None
    assert front.raw.zcard(f"{{timers}}:timeline:{topic}") == 0


def test_a_client_that_cannot_decode_a_topics_channel_still_hears_the_others(
    front: Front, caplog: pytest.LogCaptureFixture
) -> None:
    """`ascii` with decode_responses cannot read a non-ASCII channel: that one is left out, with a warning."""
    calls: Recorder[str] = Recorder()
    timers = front.timers(
        spec("tâches", Job, lambda payload, context: calls.record("tâches")),
        spec("jobs", Job, lambda payload, context: calls.record("jobs")),
        settings=TimersSettings(safety_wakeup_seconds=60),
        decode_responses=True,
        client_kwargs={"encoding": "ascii"},
    )
    with caplog.at_level(logging.WARNING, logger="redis_timers"), running(timers):
        wait_until(lambda: subscribers(front.raw, "{timers}:wake:jobs") == 1)
        timers.set_timer("jobs", "a", Job(n=1), NOW)
        calls.wait_for(1, timeout=10)  # woken: the safety claim is a minute away
    assert calls.items == ["jobs"]
    assert subscribers(front.raw, "{timers}:wake:tâches") == 0
    assert any("cannot read the wake-ups" in record.getMessage() for record in caplog.records)


def test_a_lost_notification_costs_at_most_one_safety_interval(front: Front) -> None:
    calls: Recorder[int] = Recorder()
    timers = front.timers(
        spec("jobs", Job, lambda payload, context: calls.record(payload.n)),
        settings=TimersSettings(safety_wakeup_seconds=0.5),
    )
    timers.set_timer("jobs", "far", Job(n=-1), LATER)
    with running(timers):
        wait_until(lambda: subscribers(front.raw, "{timers}:wake:jobs") == 1)
        # Heard, handled and acked: the claims the worker makes once subscribed and with that ack are behind it.
        timers.set_timer("jobs", "probe", Job(n=1), NOW)
        calls.wait_for(1)
        wait_until(lambda: front.raw.zscore("{timers}:timeline:jobs", "probe") is None)
        # Due now, and written without a notification: the worker sleeps until "far" unless it checks.
        bulk_load(front, "jobs", 1, server_time_ms(front.raw))
        calls.wait_for(2, timeout=10)
    assert calls.items == [1, 0]


def test_an_idle_worker_sends_one_claim_and_one_ping_per_safety_interval(front: Front) -> None:
    interval, window = 0.5, 2.0
    timers = front.timers(
        spec("jobs", Job, lambda payload, context: None), settings=TimersSettings(safety_wakeup_seconds=interval)
    )
    timers.set_timer("jobs", "far", Job(n=0), LATER)
    with running(timers):
        wait_until(lambda: subscribers(front.raw, "{timers}:wake:jobs") == 1)
        threading.Event().wait(interval)  # a measurement window, not a synchronisation: start-up claims land
        front.raw.config_resetstat()
        threading.Event().wait(window)  # a measurement window, not a synchronisation
        stats = front.raw.info("commandstats")
    counts = {name.removeprefix("cmdstat_"): int(values["calls"]) for name, values in stats.items()}
    most = window / interval + 1
    assert 1 <= counts.get("evalsha", 0) <= most, counts
    assert counts.get("ping", 0) <= most, counts
    # Inside each claim: TIME, HMGETs (and HGETs) of the topic set, DEL, GET, ZRANGEBYSCORE and ZRANGE of the heads
    # index, and once per interval the rebuild of the topic's head (HSET, HGETALL, ZRANGE, ZADD or ZREM); nothing else.
    inside = {"time", "hget", "hmget", "hset", "hgetall", "del", "get", "zrangebyscore", "zrange", "zadd", "zrem"}
    assert set(counts) - inside - {"evalsha", "ping", "config|resetstat", "info"} == set(), counts


def test_a_timer_scored_minus_infinity_by_hand_is_claimed_with_a_valid_token(front: Front) -> None:
    calls: Recorder[int] = Recorder()
    timers = front.timers(spec("jobs", Job, lambda payload, context: calls.record(payload.n)))
    front.raw.zadd("{timers}:timeline:jobs", {"a": float("-inf")})
    front.raw.hset("{timers}:payloads:jobs", "a", Job(n=1).model_dump_json())
    timers.handle_ready_timers()
    assert calls.items == [1]
    assert front.timer_data() == []
