"""Scenario 16: the Redis server restarts in the middle of a drain; no timer is lost."""

from __future__ import annotations

import collections
import datetime
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redis_timers import TimersConnectionError, TimersSettings
from redis_timers.cli.embedded import EmbeddedServer
from tests.harness import Front, Recorder, spec
from tests.scenarios.models import Job

NOW = datetime.timedelta(0)
NO_RETRIES: dict[str, Any] = {"retry": Retry(NoBackoff(), 0)}


@pytest.fixture
def private_server() -> Iterator[EmbeddedServer]:
    server = EmbeddedServer()
    try:
        yield server
    finally:
        server.close()


def shut_down_keeping_data(server: EmbeddedServer) -> None:
    """Stop the server the way an operator restart does: SHUTDOWN SAVE writes the dataset, start() reloads it.

    (The embedded server runs without persistence; a bare kill would lose every key, which
    no client library can make up for.)
    """
    client = redis.Redis(host=server.host, port=server.port, **NO_RETRIES)
    try:
        client.shutdown(save=True)
    finally:
        client.close()
    server.stop()


def test_nothing_is_lost_when_the_server_restarts_mid_drain(front: Front, private_server: EmbeddedServer) -> None:
    started: Recorder[int] = Recorder()
    finished: Recorder[int] = Recorder()
    gate = front.gate()
    free_runs = 30

    def handler(payload: Job, context: dict[str, Any]) -> None:
        if started.record(payload.n) > free_runs:
            gate.wait()  # later runs are still in flight when the server goes down
        finished.record(payload.n)

    url = private_server.url
    settings = TimersSettings(lease_seconds=30, handling_sleep=0.02)
    worker = front.timers(spec("jobs", Job, handler, blocking=True), url=url, settings=settings)
    scheduler = front.timers(spec("jobs", Job, handler), url=url, settings=settings, client_kwargs=NO_RETRIES)
    total, concurrency = 200, 10
    for n in range(total):
        scheduler.set_timer("jobs", f"t{n}", Job(n=n), NOW)

    worker.start_worker(concurrency=concurrency)
    # free_runs runs finished and `concurrency` more are blocked: nothing else can start.
    started.wait_for(free_runs + concurrency)
    started_before = set(started.items)
    assert len(started_before) == free_runs + concurrency

    shut_down_keeping_data(private_server)
    with pytest.raises(TimersConnectionError):
        scheduler.set_timer("jobs", "while-down", Job(n=-1), NOW)
    # The blocked runs finish while Redis is away: their acks must wait for it, not get lost.
    gate.open()
    finished.wait_for(free_runs + concurrency)
    with pytest.raises(TimersConnectionError):
        scheduler.get_timer("jobs", "t0")
    private_server.start()

    everything = set(range(total))
    started.wait_until(lambda items: set(items) >= everything, timeout=60)
    # The worker listens for wake-ups again: a new timer fires promptly.
    scheduler.set_timer("jobs", "after", Job(n=total), NOW)
    after_set = time.monotonic()
    started.wait_until(lambda items: total in items, timeout=30)
    assert time.monotonic() - after_set < 5.0
    worker.stop_worker()

    counts = collections.Counter(started.items)
    assert set(counts) == everything | {total}
    duplicated = {n for n, count in counts.items() if count > 1}
    assert duplicated <= started_before, (
        f"run twice without being in flight at the restart: {duplicated - started_before}"
    )
    assert scheduler.get_timer("jobs", "while-down") is None
    inspect = redis.Redis.from_url(url, decode_responses=True)
    try:
        assert inspect.zcard("{timers}:timeline:jobs") == 0
        assert inspect.hlen("{timers}:payloads:jobs") == 0
    finally:
        inspect.close()
