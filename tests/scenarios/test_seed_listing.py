"""The original library's listing calls (`fetch_all_timers`, `fetch_ready_timers`), `handlers_by_topics`
and module-constant assignment, on a real server through both front ends."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from redis_timers import ReplacedFeatureError, TimersSettings
from redis_timers import settings as settings_module
from redis_timers.settings import CONSTANT_OVERRIDES
from tests.harness import Front, Recorder, datetime_to_ms, ms_to_datetime, server_time_ms, spec
from tests.scenarios.models import Job, Other

NOW = datetime.timedelta(0)
UTC = datetime.timezone.utc


@pytest.mark.parametrize("decode_responses", [True, False])
@pytest.mark.cluster
def test_fetch_all_timers_in_the_seeds_shape(front: Front, decode_responses: bool) -> None:
    timers = front.timers(
        spec("jobs", Job, lambda payload, context: None),
        spec("others", Other, lambda payload, context: None),
        decode_responses=decode_responses,
    )
    assert timers.call("fetch_all_timers") == ([], {})

    base = datetime.datetime(2100, 1, 1, tzinfo=UTC)
    timers.set_timer("jobs", "b--2", Job(n=2), activate_at=base + datetime.timedelta(seconds=2))
    timers.set_timer("others", "\u65e5\u672c", Other(text="\u00e9"), activate_at=base + datetime.timedelta(seconds=1))
    timers.set_timer("jobs", "a", Job(n=1, note="x"), activate_at=base + datetime.timedelta(seconds=3))

    members, payloads = timers.call("fetch_all_timers")

    assert members == ["others--\u65e5\u672c", "jobs--b--2", "jobs--a"]  # earliest first, across topics
    assert payloads == {
        "others--\u65e5\u672c": Other(text="\u00e9").model_dump_json(),
        "jobs--b--2": Job(n=2).model_dump_json(),
        "jobs--a": Job(n=1, note="x").model_dump_json(),
    }
    assert Job.model_validate_json(payloads["jobs--a"]) == Job(n=1, note="x")

    assert timers.remove_timer("jobs", "b--2") is True
    assert timers.call("fetch_all_timers")[0] == ["others--\u65e5\u672c", "jobs--a"]


def test_fetch_all_timers_shows_a_running_timers_plain_payload(front: Front) -> None:
    gate = front.gate()
    started: Recorder[int] = Recorder()

    def handler(payload: Job, context: dict[str, Any]) -> None:
        started.record(payload.n)
        gate.wait()

    timers = front.timers(spec("jobs", Job, handler, blocking=True))
    timers.set_timer("jobs", "t", Job(n=1), NOW)
    pass_done = timers.background("handle_ready_timers")
    started.wait_for(1)

    members, payloads = timers.call("fetch_all_timers")

    assert members == ["jobs--t"]
    assert payloads == {"jobs--t": Job(n=1).model_dump_json()}  # without the run's attempts and lease token
    gate.open()
    pass_done.result(timeout=20)
    assert timers.call("fetch_all_timers") == ([], {})


def test_fetch_all_timers_lists_only_the_topics_this_instance_handles(front: Front) -> None:
    writer = front.timers(
        spec("jobs", Job, lambda payload, context: None), spec("others", Other, lambda payload, context: None)
    )
    writer.set_timer("jobs", "j", Job(n=1), datetime.timedelta(minutes=5))
    writer.set_timer("others", "o", Other(text="x"), datetime.timedelta(minutes=5))
    reader = front.timers(spec("jobs", Job, lambda payload, context: None))

    assert reader.call("fetch_all_timers")[0] == ["jobs--j"]
    assert writer.call("fetch_all_timers")[0] == ["jobs--j", "others--o"]


def test_fetch_ready_timers_lists_what_is_due_by_the_timestamp(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, lambda payload, context: None))
    now_ms = server_time_ms(front.raw)
    due = {"past": now_ms - 1000, "now": now_ms, "soon": now_ms + 60_000}
    for timer_id, due_ms in due.items():
        timers.set_timer("jobs", timer_id, Job(n=0), activate_at=ms_to_datetime(due_ms))

    assert timers.call("fetch_ready_timers", ms_to_datetime(now_ms)) == ["jobs--past", "jobs--now"]
    assert timers.call("fetch_ready_timers", ms_to_datetime(now_ms - 1)) == ["jobs--past"]
    # Rounded down: 0.9 ms before "soon" is not "soon".
    almost = ms_to_datetime(due["soon"]) - datetime.timedelta(microseconds=100)
    assert datetime_to_ms(almost) == due["soon"] - 1
    assert timers.call("fetch_ready_timers", almost) == ["jobs--past", "jobs--now"]
    assert timers.call("fetch_ready_timers", ms_to_datetime(due["soon"])) == ["jobs--past", "jobs--now", "jobs--soon"]
    with pytest.raises(ValueError, match="timezone-aware"):
        timers.call("fetch_ready_timers", datetime.datetime(2024, 1, 1))


def test_handlers_by_topics_is_the_seeds_read_only_map(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, lambda payload, context: None))
    handlers = timers.timers.handlers_by_topics

    assert list(handlers) == ["jobs"]
    assert (handlers["jobs"].topic, handlers["jobs"].schema) == ("jobs", Job)
    with pytest.raises(ReplacedFeatureError, match="include_router"):
        del handlers["jobs"]
    timers.set_timer("jobs", "still-handled", Job(n=1), NOW)
    timers.handle_ready_timers()
    assert timers.call("fetch_all_timers") == ([], {})


def test_an_assigned_module_constant_reaches_the_next_timers(front: Front, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIMERS_TIMELINE_KEY", raising=False)
    monkeypatch.delenv("TIMERS_PAYLOADS_KEY", raising=False)
    calls: Recorder[int] = Recorder()
    try:
        settings_module.TIMERS_TIMELINE_KEY = "my_timeline"
        settings_module.TIMERS_PAYLOADS_KEY = "my_payloads"
        timers = front.timers(
            spec("jobs", Job, lambda payload, context: calls.record(payload.n)), settings=TimersSettings.from_env()
        )
        # A timer the original library wrote under the assigned keys is imported and fires.
        front.raw.zadd("my_timeline", {"jobs--old": server_time_ms(front.raw) // 1000 - 1})
        front.raw.hset("my_payloads", "jobs--old", Job(n=7).model_dump_json())
        timers.handle_ready_timers()
        assert calls.items == [7]
        assert front.raw.exists("my_timeline") == 0  # taken from the assigned key, not the default one
    finally:
        del settings_module.TIMERS_TIMELINE_KEY
        del settings_module.TIMERS_PAYLOADS_KEY
    assert CONSTANT_OVERRIDES == {}


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("decode_responses", [True, False])
def test_the_listings_over_either_protocol(front: Front, protocol: int, decode_responses: bool) -> None:
    timers = front.timers(
        spec("jobs", Job, lambda payload, context: None),
        decode_responses=decode_responses,
        client_kwargs={"protocol": protocol},
    )
    due_ms = server_time_ms(front.raw) - 5
    timers.set_timer("jobs", "due", Job(n=1), activate_at=ms_to_datetime(due_ms))
    timers.set_timer("jobs", "later", Job(n=2), datetime.timedelta(minutes=5))

    assert timers.call("fetch_all_timers") == (
        ["jobs--due", "jobs--later"],
        {"jobs--due": Job(n=1).model_dump_json(), "jobs--later": Job(n=2).model_dump_json()},
    )
    assert timers.call("fetch_ready_timers", ms_to_datetime(due_ms)) == ["jobs--due"]
