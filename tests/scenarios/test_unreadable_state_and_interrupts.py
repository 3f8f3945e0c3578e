"""A hostile review of the lifecycle change: hand-written scores and dead-letter records that the change now
shows (get_timer's due time, dead_letters' unreadable records) must not turn into untyped errors or half-written
state when read or requeued; a cancelled worker's replay must not outlast its stop."""

from __future__ import annotations

import datetime
import logging
import threading
import time
from typing import Any

import pytest
import redis

from redis_timers import TimersSettings
from redis_timers.engine import STOP_FLUSH_SECONDS
from redis_timers.errors import StoredPayloadError
from tests.harness import Front, Recorder, server_time_ms, spec, wait_until
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
        b'["a list"]',  # not an object
    ],
    ids=["not-json", "object-payload", "not-an-object"],
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


class _CtrlCOnFirstRetry(logging.Filter):
    """Ctrl-C landing in the loop thread while it reports the first failed run (a signal handler raises there)."""

    def __init__(self) -> None:
        super().__init__()
        self.fired = False

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.fired and "retrying in" in record.getMessage():
            self.fired = True
            raise KeyboardInterrupt
        return True


@pytest.mark.parametrize("front", ["sync"], indirect=True)
def test_ctrl_c_while_the_loop_reports_finished_runs_loses_none_of_the_others(front: Front) -> None:
    """The loop reports a batch of finished runs; Ctrl-C lands at the first. The graceful stop that follows
    still settles the rest of the batch: they are retried with their error, not handed back as never run."""
    gate, done = front.gate(), Recorder[int]()

    def fail(payload: Job, context: dict[str, Any]) -> None:
        gate.wait()
        done.record(payload.n)
        raise RuntimeError("boom")

    timers = front.timers(
        spec("jobs", Job, fail, max_attempts=5),
        settings=TimersSettings(safety_wakeup_seconds=0.5, shutdown_grace_seconds=2),
    )
    for n in range(3):
        timers.set_timer("jobs", f"t{n}", Job(n=n), NOW)
    ctrl_c = _CtrlCOnFirstRetry()
    logger = logging.getLogger("redis_timers")
    logger.addFilter(ctrl_c)

    def finish_all_while_the_loop_waits_on_redis() -> None:
        wait_until(lambda: len(front.raw.zrangebyscore(TIMELINE, server_time_ms(front.raw) + 1, "+inf")) == 3)
        with writes_paused(front):
            wait_until(lambda: held_back(front) >= 1)  # the loop's safety claim (a slot is free) is held
            gate.open()
            done.wait_for(3)
            # Each runner files its run's outcome right after the handler returns; the loop reads them all at once.
            workers = timers.timers._workers
            wait_until(lambda: bool(workers) and len(workers[0]._finished) == 3)

    helper = threading.Thread(target=finish_all_while_the_loop_waits_on_redis)
    helper.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            timers.timers.run_forever(concurrency=4)
    finally:
        logger.removeFilter(ctrl_c)
        helper.join(30)
    assert ctrl_c.fired
    infos = [timers.get_timer("jobs", f"t{n}") for n in range(3)]
    retried = [info for info in infos if info is not None and info.last_error == "RuntimeError: boom"]
    # The run being reported when Ctrl-C landed may be lost (its lease then runs out); none of the others is.
    assert len(retried) >= 2, infos
