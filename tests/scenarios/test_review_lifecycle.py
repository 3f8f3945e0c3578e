"""A hostile review of the lifecycle change: hand-written scores and dead-letter records that the change
now shows (get_timer's due time, dead_letters' unreadable records) must not turn into untyped errors or
half-written state when they are read or requeued."""

from __future__ import annotations

import pytest
import redis

from redis_timers.errors import StoredPayloadError
from tests.harness import Front, spec
from tests.scenarios.models import Job

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
