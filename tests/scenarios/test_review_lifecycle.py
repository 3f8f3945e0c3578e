"""A hostile review of the lifecycle change: hand-written scores and dead-letter records that the change now
shows (get_timer's due time, dead_letters' unreadable records) must not turn into untyped errors or half-written
state when read or requeued; a cancelled worker's replay must not outlast its stop."""

from __future__ import annotations

import datetime
import time
from typing import Any

import pytest
import redis

from redis_timers import TimersSettings
from redis_timers.engine import STOP_FLUSH_SECONDS
from redis_timers.errors import StoredPayloadError
from tests.harness import Front, Recorder, spec, wait_until
from tests.scenarios.models import Job
from tests.scenarios.test_lifecycle_hostile import held_back, writes_paused

NOW = datetime.timedelta(0)
TIMELINE, PAYLOADS, DEAD = "{timers}:timeline:jobs", "{timers}:payloads:jobs", "{timers}:dead"


@pytest.mark.parametrize("score", [float("inf"), float("-inf"), 1e300, -1e300])
def test_get_timer_of_a_score_no_date_can_hold_is_a_stored_payload_error(front: Front, score: float) -> None:
    timers = front.timers(spec("jobs", Job, lambda payload, context: None))
    front.raw.zadd(TIMELINE, {"a": score})  # written by hand: set_timer only stores real dates
    front.raw.hset(PAYLOADS, "a", Job(n=1).model_dump_json())
    with pytest.raises(StoredPayloadError, match="due time of 'jobs'/'a' is not a date"):
        timers.get_timer("jobs", "a")
    assert front.raw.zscore(TIMELINE, "a") == score, "reading it changed nothing"


@pytest.mark.parametrize(
    "record",
    [
        b"written by hand",  # not JSON
        b'{"payload":{"n":1},"attempts":1,"error":"e","failed_at":5}',  # payload not a string
        b'{"attempts":1,"error":"e","failed_at":5}',  # no payload
        b'["a list"]',  # not an object
    ],
    ids=["not-json", "object-payload", "no-payload", "not-an-object"],
)
def test_requeueing_an_unreadable_dead_letter_is_refused_and_writes_nothing(front: Front, record: bytes) -> None:
    timers = front.timers(spec("jobs", Job, lambda payload, context: None))
    raw = redis.Redis.from_url(front.url)
    try:
        raw.hset(DEAD, b"jobs\0odd", record)
    finally:
        raw.close()
    [letter] = timers.dead_letters()
    assert letter.error.startswith("unreadable dead letter record")
    with pytest.raises(StoredPayloadError, match="'jobs'/'odd'"):
        timers.requeue_dead_letter("jobs", "odd")
    assert front.raw.zscore(TIMELINE, "odd") is None, "half-written: on the timeline without its payload"
    assert front.raw.hget(PAYLOADS, "odd") is None
    assert [letter.timer_id for letter in timers.dead_letters()] == ["odd"], "the dead letter stays as it was"


@pytest.mark.parametrize("front", ["async"], indirect=True)
def test_a_cancelled_worker_whose_replay_hangs_ends_when_the_stop_flush_does(front: Front) -> None:
    """The stop's replay goes to a server that holds it (a pause, a partition) and a client without a socket
    timeout: the shielded stop still ends once the grace period and the flush after it are over."""
    gate, started = front.gate(), Recorder[str]()

    def handler(payload: Job, context: dict[str, Any]) -> None:
        started.record(f"n{payload.n}")
        if payload.n == 1:
            gate.wait()

    grace = 0.5
    timers = front.timers(
        spec("jobs", Job, handler, blocking=True),
        settings=TimersSettings(shutdown_grace_seconds=grace),
        client_kwargs={"socket_timeout": None, "socket_connect_timeout": None},
    )
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    timers.start_worker(concurrency=1)
    started.wait_for(1)
    timers.set_timer("jobs", "b", Job(n=2), NOW)
    with writes_paused(front):  # for 30 s, unless the block ends first
        gate.open()  # the next round trip (ack a, claim b) is held back
        wait_until(lambda: held_back(front) >= 1)
        cancelled_at = time.monotonic()
        timers.request_cancel()
        timers.wait_worker(grace + STOP_FLUSH_SECONDS + 10, cancelled_ok=True)
        took = time.monotonic() - cancelled_at
    assert took < grace + STOP_FLUSH_SECONDS + 5, took
    assert started.items == ["n1"]
