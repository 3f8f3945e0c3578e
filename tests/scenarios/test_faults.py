"""Faults beyond the numbered scenarios: killed connections, and edge cases of a pass or a worker."""

from __future__ import annotations

import collections
import datetime
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from redis_timers import TimersSettings
from redis_timers.keys import shard_of
from tests.harness import Front, Recorder, ms_to_datetime, running, server_time_ms, spec, subscribers, wait_until
from tests.scenarios.models import Job, Stamp
from tests.scenarios.proxy import ReplyLosingProxy

NOW = datetime.timedelta(0)
CHANNEL = "{timers}:wake:stamps"


WORKER_NAME = "scenario-worker"


def kill_worker_connections(front: Front, *, pubsub: bool, commands: bool) -> int:
    """CLIENT KILL the worker's connections only (by name), as a proxy or a server-side timeout would."""
    killed = 0
    for client in front.raw.client_list():
        if client["name"] != WORKER_NAME:
            continue
        listening = int(client.get("sub", 0)) + int(client.get("psub", 0)) > 0
        if (listening and pubsub) or (not listening and commands):
            killed += int(front.raw.client_kill_filter(_id=client["id"]))
    return killed


def test_a_worker_survives_its_connections_being_killed(front: Front) -> None:
    calls: Recorder[tuple[str, int, int]] = Recorder()

    def handler(payload: Stamp, context: dict[str, Any]) -> None:
        calls.record((payload.key, payload.due_ms, server_time_ms(front.raw)))

    worker = front.timers(spec("stamps", Stamp, handler), client_kwargs={"client_name": WORKER_NAME})
    scheduler = front.timers(spec("stamps", Stamp, handler))
    far = server_time_ms(front.raw) + 3_600_000
    worker.set_timer("stamps", "far", Stamp(key="far", due_ms=far), activate_at=ms_to_datetime(far))

    def schedule_soon(key: str) -> None:
        due = server_time_ms(front.raw) + 200
        scheduler.set_timer("stamps", key, Stamp(key=key, due_ms=due), activate_at=ms_to_datetime(due))
        fired_key, fired_due, started = calls.wait_for(len(calls) + 1, timeout=15)[-1]
        assert (fired_key, fired_due) == (key, due)
        assert 0 <= started - due < 1000, f"{key} fired {started - due} ms late"

    with running(worker):
        wait_until(lambda: subscribers(front.raw, CHANNEL) >= 1)
        assert kill_worker_connections(front, pubsub=True, commands=False) == 1
        schedule_soon("right-after-kill")  # a wake-up sent while nobody listens is caught up on resubscribe
        wait_until(lambda: subscribers(front.raw, CHANNEL) >= 1)
        schedule_soon("resubscribed")
        assert kill_worker_connections(front, pubsub=False, commands=True) >= 1
        schedule_soon("commands-killed")
        wait_until(lambda: subscribers(front.raw, CHANNEL) >= 1)
        assert kill_worker_connections(front, pubsub=True, commands=True) >= 2
        schedule_soon("all-killed")
    assert [key for key, _, _ in calls.items] == ["right-after-kill", "resubscribed", "commands-killed", "all-killed"]


def test_a_single_pass_drains_a_backlog_larger_than_the_concurrency_limit(front: Front) -> None:
    calls: Recorder[int] = Recorder()
    timers = front.timers(
        spec("jobs", Job, lambda payload, context: calls.record(payload.n)),
        settings=TimersSettings(concurrent_processing_limit=7),
    )
    total = 250
    for n in range(total):
        timers.set_timer("jobs", f"t{n}", Job(n=n), NOW)
    timers.handle_ready_timers()
    assert sorted(calls.items) == list(range(total))
    assert front.timer_data() == []


def test_a_single_pass_with_failures_and_successes_mixed(front: Front) -> None:
    calls: Recorder[int] = Recorder()

    def handler(payload: Job, context: dict[str, Any]) -> None:
        calls.record(payload.n)
        if payload.n % 3 == 0:
            raise RuntimeError(f"fails {payload.n}")

    timers = front.timers(spec("jobs", Job, handler), settings=TimersSettings(concurrent_processing_limit=5))
    for n in range(30):
        timers.set_timer("jobs", f"t{n}", Job(n=n), NOW)
    timers.handle_ready_timers()  # retries are due later than the pass: each timer runs once
    assert collections.Counter(calls.items) == collections.Counter(range(30))
    for n in range(30):
        info = timers.get_timer("jobs", f"t{n}")
        if n % 3 == 0:
            assert info is not None
            assert info.attempts == 1
            assert info.last_error == f"RuntimeError: fails {n}"
        else:
            assert info is None


def test_instances_without_handlers(front: Front) -> None:
    calls: Recorder[int] = Recorder()
    other = front.timers(spec("jobs", Job, lambda payload, context: calls.record(payload.n)))
    other.set_timer("jobs", "a", Job(n=1), NOW)
    idle = front.timers()
    idle.handle_ready_timers()
    idle.start_worker()
    assert idle.stop_worker() < 1.0
    assert calls.items == []
    info = other.get_timer("jobs", "a")
    assert info is not None
    assert info.attempts == 0


def test_many_topics_in_one_worker(front: Front) -> None:
    calls: Recorder[str] = Recorder()
    topics = [f"topic-{index}" for index in range(60)]
    timers = front.timers(*(spec(topic, Job, lambda payload, context: calls.record(payload.note)) for topic in topics))
    for topic in topics:
        timers.set_timer(topic, "x", Job(n=0, note=topic), NOW)
    timers.handle_ready_timers()
    assert sorted(calls.items) == sorted(topics)
    with running(timers):
        for topic in topics[::7]:
            timers.set_timer(topic, "y", Job(n=1, note=topic), NOW)
        calls.wait_for(len(topics) + len(topics[::7]))
    assert front.timer_data() == []


def test_dead_letter_ids_with_nul_and_separator_characters(front: Front) -> None:
    def fails(payload: Job, context: dict[str, Any]) -> None:
        raise RuntimeError("no")

    timers = front.timers(spec("jobs", Job, fails), settings=TimersSettings(max_attempts=1))
    ids = ["a\x00b", "\x00", "x--y", "日本\x00語"]
    for n, timer_id in enumerate(ids):
        timers.set_timer("jobs", timer_id, Job(n=n), NOW)
    timers.handle_ready_timers()
    letters = {letter.timer_id: letter for letter in timers.dead_letters()}
    assert sorted(letters) == sorted(ids)
    assert {letter.topic for letter in letters.values()} == {"jobs"}
    for n, timer_id in enumerate(ids):
        assert letters[timer_id].payload_as(Job) == Job(n=n)
    assert timers.requeue_dead_letter("jobs", "a\x00b") is True
    info = timers.get_timer("jobs", "a\x00b")
    assert info is not None
    assert info.payload == Job(n=0)


@pytest.fixture
def proxy(front: Front) -> Iterator[ReplyLosingProxy]:
    url = urllib.parse.urlsplit(front.url)
    assert url.hostname is not None
    assert url.port is not None
    losing_proxy = ReplyLosingProxy(url.hostname, url.port)
    try:
        yield losing_proxy
    finally:
        losing_proxy.close()


def test_a_lost_claim_reply_does_not_hold_the_timer_for_a_lease(front: Front, proxy: ReplyLosingProxy) -> None:
    calls: Recorder[tuple[str, int, int]] = Recorder()

    def handler(payload: Stamp, context: dict[str, Any]) -> None:
        calls.record((payload.key, payload.due_ms, server_time_ms(front.raw)))

    lease_seconds = 3
    worker = front.timers(
        spec("stamps", Stamp, handler), url=proxy.url, settings=TimersSettings(lease_seconds=lease_seconds)
    )
    scheduler = front.timers(spec("stamps", Stamp, handler))  # straight to Redis
    marker = "claim-reply-lost-here"
    proxy.lose_reply_containing(marker.encode())
    with running(worker):
        due = server_time_ms(front.raw) + 200
        scheduler.set_timer("stamps", "x", Stamp(key=marker, due_ms=due), activate_at=ms_to_datetime(due))
        assert proxy.lost_reply.wait(10), "the claim's reply went through"
        ((key, fired_due, started),) = calls.wait_for(1, timeout=3 * lease_seconds)
    assert (key, fired_due) == (marker, due)
    assert started - due < 1000, f"fired {started - due} ms late: the lost claim held it for a lease"
    assert len(calls) == 1


def test_a_lost_reply_of_a_pipeline_over_shards_holds_no_timer_for_a_lease(
    front: Front, proxy: ReplyLosingProxy
) -> None:
    calls: Recorder[tuple[str, int, int]] = Recorder()

    def handler(payload: Stamp, context: dict[str, Any]) -> None:
        calls.record((payload.key, payload.due_ms, server_time_ms(front.raw)))

    lease_seconds = 3
    settings = TimersSettings(shards=4, lease_seconds=lease_seconds)
    worker = front.timers(spec("stamps", Stamp, handler), url=proxy.url, settings=settings)
    scheduler = front.timers(spec("stamps", Stamp, handler), settings=settings)  # straight to Redis
    x, z = "x", next(f"z{n}" for n in range(100) if shard_of("stamps", f"z{n}", 4) != shard_of("stamps", "x", 4))
    marker = "claim-reply-lost-here"
    proxy.lose_reply_containing(marker.encode())
    with running(worker):
        due = server_time_ms(front.raw) + 300
        # Two shards due at once: one round trip, a call to each, whose replies come back together.
        scheduler.set_timer("stamps", z, Stamp(key="other", due_ms=due), activate_at=ms_to_datetime(due))
        scheduler.set_timer("stamps", x, Stamp(key=marker, due_ms=due), activate_at=ms_to_datetime(due))
        assert proxy.lost_reply.wait(10), "the claim's reply went through"
        fired = calls.wait_for(2, timeout=3 * lease_seconds)
    assert sorted((key, fired_due) for key, fired_due, _ in fired) == [(marker, due), ("other", due)]
    for key, fired_due, started in fired:
        assert started - fired_due < 1000, f"{key} fired {started - fired_due} ms late: held for a lease"
    assert len(calls) == 2


def test_a_bulk_call_whose_first_batch_reply_is_lost_is_sent_again_and_every_timer_stands(
    front: Front, proxy: ReplyLosingProxy
) -> None:
    """The lane writes each batch as soon as it is framed: a connection lost after the first batch ran (its reply
    never came) sends the call again through the pool, and the call's results are each timer's."""
    timers = front.timers(spec("jobs", Job, lambda payload, context: None), url=proxy.url)
    later = datetime.timedelta(hours=1)
    timers.call("set_timers", [("jobs", "warm-up", Job(n=0), later)])  # scripts loaded, layout checked
    items = [("jobs", f"j{n}", Job(n=n), later) for n in range(1200)]  # three batches
    proxy.lose_reply_containing(b"*1\r\n:")  # a batch's reply: its now, and no timer kept

    results = timers.call("set_timers", items)

    assert proxy.lost_reply.is_set()
    assert [(result.timer_id, result.written) for result in results] == [(f"j{n}", True) for n in range(1200)]
    assert front.raw.zcard("{timers}:timeline:jobs") == 1201
    assert front.raw.hlen("{timers}:payloads:jobs") == 1201
