"""Clients speaking RESP2 (`protocol=2`, redis-py's default before 8.0): every call works as on RESP3.

Every scenario runs on RESP2 in CI too (`TIMERS_TEST_PROTOCOL=2`, or redis-py 5.3's default); these tests
keep a RESP2 check in every run of the suite, whatever the installed redis-py's default.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

import pytest

from redis_timers import TimersSettings
from tests.harness import Front, Recorder, ms_to_datetime, running, server_time_ms, spec, subscribers, wait_until
from tests.scenarios.models import Job, Stamp

NOW = datetime.timedelta(0)
RESP2: dict[str, Any] = {"protocol": 2}


@pytest.mark.parametrize("decode_responses", [True, False])
def test_the_whole_api_over_resp2(front: Front, decode_responses: bool) -> None:
    calls: Recorder[Job] = Recorder()

    def handler(payload: Job, context: dict[str, Any]) -> None:
        calls.record(payload)
        if payload.note == "fail":
            raise RuntimeError("fails")

    timers = front.timers(
        spec("jobs", Job, handler),
        settings=TimersSettings(max_attempts=1),
        decode_responses=decode_responses,
        client_kwargs=RESP2,
    )
    due = datetime.datetime(2100, 1, 1, 0, 0, 0, 1000, tzinfo=datetime.timezone.utc)
    assert timers.set_timer("jobs", "later", Job(n=0), activate_at=due) == due
    info = timers.get_timer("jobs", "later")
    assert info is not None
    assert (info.due_at, info.payload, info.attempts, info.running) == (due, Job(n=0), 0, False)
    assert timers.remove_timer("jobs", "later") is True
    assert timers.remove_timer("jobs", "later") is False
    assert timers.get_timer("jobs", "later") is None

    timers.set_timer("jobs", "ok", Job(n=1), NOW)
    timers.set_timer("jobs", "bad", Job(n=2, note="fail"), NOW)
    front.raw.zadd("timers_timeline", {"jobs--legacy": int(time.time()) - 1})
    front.raw.hset("timers_payloads", "jobs--legacy", Job(n=3).model_dump_json())
    timers.handle_ready_timers()
    assert sorted(job.n for job in calls.items) == [1, 2, 3]

    (letter,) = timers.dead_letters()
    assert (letter.topic, letter.timer_id, letter.attempts, letter.error) == ("jobs", "bad", 1, "RuntimeError: fails")
    assert letter.payload_as(Job) == Job(n=2, note="fail")
    assert timers.requeue_dead_letter("jobs", "bad") is True
    timers.handle_ready_timers()
    assert [job.n for job in calls.items].count(2) == 2
    assert timers.purge_dead_letters() == 1
    assert timers.dead_letters() == []


def test_wake_ups_over_resp2(front: Front) -> None:
    calls: Recorder[tuple[str, int, int]] = Recorder()

    def handler(payload: Stamp, context: dict[str, Any]) -> None:
        calls.record((payload.key, payload.due_ms, server_time_ms(front.raw)))

    worker = front.timers(spec("stamps", Stamp, handler), client_kwargs=RESP2)
    scheduler = front.timers(spec("stamps", Stamp, handler), client_kwargs=RESP2)
    with running(worker):
        wait_until(lambda: subscribers(front.raw, "{timers}:wake:stamps") >= 1)
        for index in range(3):
            due, key = server_time_ms(front.raw) + 300, f"k{index}"
            scheduler.set_timer("stamps", key, Stamp(key=key, due_ms=due), activate_at=ms_to_datetime(due))
            fired_key, fired_due, started = calls.wait_for(index + 1, timeout=10)[-1]
            assert (fired_key, fired_due) == (key, due)
            assert 0 <= started - due < 500, f"fired {started - due} ms late"
