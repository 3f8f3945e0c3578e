"""Never early, on every path that computes a score from "now".

The server runs on loopback, so the test's clock and the server's `TIME` are one clock: a
score computed as now + delay must never be before the test's clock read just before the
call, plus the delay, and no handler may start before that instant. The server reports
`TIME` in microseconds; a base rounded down to the millisecond would be up to 1 ms early.
"""

from __future__ import annotations

import datetime
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pydantic
import pytest
import redis

from redis_timers import scripts, wire
from redis_timers.engine import settle
from redis_timers.keys import Keyspace
from tests.harness import Front, Recorder, datetime_to_ms, running, spec

PRELUDE = (Path(scripts.__file__).parent / "lua" / "prelude.lua").read_text(encoding="utf-8")
KEYSPACE = Keyspace("timers")
TOPIC = "early"
TIMELINE, PAYLOADS, STATE = KEYSPACE.topic_keys(TOPIC)


class Earliest(pydantic.BaseModel):
    """A payload that carries the earliest instant (client clock, us) its handler may start."""

    key: str
    earliest_us: int


def clock_us() -> int:
    return time.time_ns() // 1000


@pytest.mark.cluster
def test_set_timer_due_times_and_handler_starts_are_never_before_the_call_plus_the_delay(front: Front) -> None:
    starts: Recorder[tuple[str, int, int]] = Recorder()

    def handler(payload: Earliest, context: dict[str, Any]) -> None:
        starts.record((payload.key, payload.earliest_us, clock_us()))

    timers = front.timers(spec(TOPIC, Earliest, handler))
    rng = random.Random(1)
    total = 400
    early_due: list[tuple[str, int]] = []
    with running(timers):
        for i in range(total):
            delay = datetime.timedelta(microseconds=rng.randrange(0, 30_000))
            before_us = clock_us()
            earliest_us = before_us + delay // datetime.timedelta(microseconds=1)
            due = timers.set_timer(TOPIC, f"t{i}", Earliest(key=f"t{i}", earliest_us=earliest_us), delay)
            due_us = datetime_to_ms(due) * 1000
            if due_us < earliest_us:
                early_due.append((f"t{i}", earliest_us - due_us))
        handled = starts.wait_for(total, timeout=60)

    assert early_due == [], f"due times before call + delay (us early): {early_due[:10]} ({len(early_due)} in all)"
    early_starts = [(key, earliest - started) for key, earliest, started in handled if started < earliest]
    assert early_starts == [], f"handlers started early (us): {early_starts}"
    assert sorted(key for key, _, _ in handled) == sorted(f"t{i}" for i in range(total))


def test_a_requeued_dead_letter_is_due_no_earlier_than_the_requeue(front: Front) -> None:
    timers = front.timers(spec(TOPIC, Earliest, lambda payload, context: None))
    total = 200
    for i in range(total):
        front.raw.hset(KEYSPACE.dead_letters, f"{TOPIC}\0d{i}", '{"payload": "{}", "attempts": 5, "error": "x"}')
    early: list[tuple[str, int]] = []
    for i in range(total):
        before_us = clock_us()
        assert timers.requeue_dead_letter(TOPIC, f"d{i}") is True
        due_us = int(float(front.raw.zscore(TIMELINE, f"d{i}") or 0)) * 1000
        if due_us < before_us:
            early.append((f"d{i}", before_us - due_us))
    assert early == [], f"requeued due before the requeue (us early): {early[:10]} ({len(early)} in all)"


# -- the worker round trip, driven directly: every score it computes from now ------------------


def cycle(client: redis.Redis, *, lease_ms: int, limit: int, settlements: Sequence[bytes] = ()) -> list[Any]:
    """One `cycle.lua` call as a worker of the single topic `TOPIC` makes it (claim records of its own)."""
    keys = (
        KEYSPACE.dead_letters,
        KEYSPACE.claim_record("test:now"),
        KEYSPACE.claim_record("test:before"),
        KEYSPACE.heads,
        KEYSPACE.topic_set([TOPIC]),
    )
    # Every call registers the topic set (as a worker's first call does).
    args = (lease_ms, limit, "", KEYSPACE.channel_prefix, KEYSPACE.tag, 0, 8000, b"".join(settlements), 1, TOPIC)
    client.delete(keys[1])  # every call is a fresh one, never a replay
    reply: list[Any] = client.eval(scripts.CYCLE.source, len(keys), *keys, *args)
    return reply


def score_us(client: redis.Redis, timer_id: bytes) -> int:
    score = client.zscore(TIMELINE, timer_id)
    assert score is not None
    return int(score) * 1000


def claim_one(client: redis.Redis, timer_id: str, lease_ms: int) -> tuple[wire.Claim, int]:
    """Make `timer_id` due, claim it; returns the claim and the clock read just before the claim."""
    client.zadd(TIMELINE, {timer_id: 0})
    client.hset(PAYLOADS, timer_id, '{"key": "k", "earliest_us": 0}')
    before_us = clock_us()
    reply = cycle(client, lease_ms=lease_ms, limit=1)
    (claim,) = wire.claims(reply[4])
    return claim, before_us


def test_leases_renewals_retries_and_hand_backs_never_end_before_now_plus_their_delay(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    rng = random.Random(2)
    early: dict[str, list[int]] = {"claim": [], "renew": [], "retry": [], "release": []}
    try:
        for i in range(150):
            lease_ms = rng.randrange(1_000, 60_000)
            claim, before_us = claim_one(client, f"c{i}", lease_ms)
            if score_us(client, claim.timer_id) < before_us + lease_ms * 1000:
                early["claim"].append(before_us + lease_ms * 1000 - score_us(client, claim.timer_id))

            before_us = clock_us()
            cycle(client, lease_ms=lease_ms, limit=0, settlements=[settle(wire.RENEW, claim.key).encoded])
            if score_us(client, claim.timer_id) < before_us + lease_ms * 1000:
                early["renew"].append(before_us + lease_ms * 1000 - score_us(client, claim.timer_id))

            delay_ms = rng.randrange(0, 5_000)
            before_us = clock_us()
            retry = settle(wire.RETRY, claim.key, wire.with_error("boom", delay_ms))
            cycle(client, lease_ms=lease_ms, limit=0, settlements=[retry.encoded])
            if score_us(client, claim.timer_id) < before_us + delay_ms * 1000:
                early["retry"].append(before_us + delay_ms * 1000 - score_us(client, claim.timer_id))

            claim, _ = claim_one(client, f"c{i}", lease_ms)
            before_us = clock_us()
            cycle(client, lease_ms=lease_ms, limit=0, settlements=[settle(wire.RELEASE, claim.key).encoded])
            if score_us(client, claim.timer_id) < before_us:
                early["release"].append(before_us - score_us(client, claim.timer_id))
    finally:
        client.close()
    assert early == {"claim": [], "renew": [], "retry": [], "release": []}, f"us early: {early}"


def test_the_server_clock_rounds_down_and_up_at_the_edges_of_a_millisecond(redis_url: str) -> None:
    """The prelude's `server_now_ms` on the server's Lua, fed the `TIME` replies at a millisecond's edges: the
    rounded-down now never passes `TIME`, the rounded-up one is never before it (and both are exact integers)."""
    prelude_function = next(block for block in PRELUDE.split("\n\n") if "local function server_now_ms(" in block)
    # A local `redis` shadows the global for the function below it: TIME answers what the test says.
    source = (
        "local redis = {call = function() return {ARGV[1], ARGV[2]} end}\n"
        f"{prelude_function}\n"
        "local down, up = server_now_ms()\n"
        "return {string.format('%d', down), string.format('%d', up)}"
    )
    client = redis.Redis.from_url(redis_url)
    try:
        for seconds in (0, 1_796_000_000, 253_402_300_799):
            for micros in (0, 1, 999, 1000, 1001, 500_000, 999_000, 999_001, 999_999):
                down, up = (int(value) for value in client.eval(source, 0, seconds, micros))
                exact_us = seconds * 1_000_000 + micros
                assert down * 1000 <= exact_us < (down + 1) * 1000, (seconds, micros, down)
                assert (up - 1) * 1000 < exact_us <= up * 1000, (seconds, micros, up)
    finally:
        client.close()
