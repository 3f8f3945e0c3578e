"""Scenarios 10 and 11: timers of topics a worker doesn't handle, and timers written by the seed."""

from __future__ import annotations

import datetime
import time
from typing import Any

import pytest

from redis_timers import TimersSettings
from tests.harness import Front, Recorder, running, server_time_ms, spec, subscribers, wait_until
from tests.scenarios.models import Job, Other

NOW = datetime.timedelta(0)
LEGACY_TIMELINE = "timers_timeline"
LEGACY_PAYLOADS = "timers_payloads"


# -- scenario 10: unknown topics ------------------------------------------------------------


@pytest.mark.cluster
def test_timers_of_unknown_topics_are_left_alone_and_do_not_hold_back_others(front: Front) -> None:
    mine: Recorder[int] = Recorder()
    theirs: Recorder[str] = Recorder()
    worker = front.timers(spec("mine", Job, lambda payload, context: mine.record(payload.n)))
    other = front.timers(spec("theirs", Other, lambda payload, context: theirs.record(payload.text)))

    for n in range(50):
        other.set_timer("theirs", f"o{n}", Other(text=f"o{n}"), NOW)
    worker.set_timer("mine", "m0", Job(n=0), NOW)
    worker.handle_ready_timers()
    assert mine.items == [0]

    with running(worker):
        worker.set_timer("mine", "m1", Job(n=1), NOW)
        mine.wait_for(2)
    for n in range(50):
        info = other.get_timer("theirs", f"o{n}")
        assert info is not None
        assert info.attempts == 0
        assert info.running is False
    assert theirs.items == []

    other.handle_ready_timers()
    assert sorted(theirs.items) == sorted(f"o{n}" for n in range(50))
    assert front.timer_data() == []


# -- scenario 11: data written by the seed -----------------------------------------------------


def write_legacy(front: Front, member: str, due_second: int, payload: Job | Other) -> None:
    """Exactly what the seed wrote: whole-second scores, `topic--id` members, JSON payloads."""
    front.raw.zadd(LEGACY_TIMELINE, {member: due_second})
    front.raw.hset(LEGACY_PAYLOADS, member, payload.model_dump_json())


@pytest.mark.parametrize("decode_responses", [True, False])
def test_legacy_timers_are_handled_by_handle_ready_timers(front: Front, decode_responses: bool) -> None:
    calls: Recorder[Job] = Recorder()
    timers = front.timers(
        spec("jobs", Job, lambda payload, context: calls.record(payload)), decode_responses=decode_responses
    )
    now_second = int(time.time())
    write_legacy(front, "jobs--past", now_second - 5, Job(n=1, note="past"))
    write_legacy(front, "jobs--current", now_second, Job(n=2, note="ünïcode"))
    write_legacy(front, "jobs--future", now_second + 3600, Job(n=3, note="future"))
    write_legacy(front, "jobs--id--with--separators", now_second - 1, Job(n=4))
    write_legacy(front, "ghost--x", now_second - 5, Other(text="unknown topic"))

    timers.handle_ready_timers()
    assert sorted(calls.items, key=lambda job: job.n) == [
        Job(n=1, note="past"),
        Job(n=2, note="ünïcode"),
        Job(n=4),
    ]
    future = timers.get_timer("jobs", "future")
    assert future is not None
    assert future.payload == Job(n=3, note="future")
    assert future.due_at == datetime.datetime.fromtimestamp(now_second + 3600, tz=datetime.timezone.utc)
    # Moved off the seed's timeline; only the topic nobody here handles stays there. The payloads stay until
    # their timers are done (so that a cancel by a seed process would be seen), and the next pass deletes them.
    assert front.raw.zrange(LEGACY_TIMELINE, 0, -1) == ["ghost--x"]
    assert sorted(front.raw.hkeys(LEGACY_PAYLOADS)) == sorted(
        ["ghost--x", "jobs--past", "jobs--current", "jobs--future", "jobs--id--with--separators"]
    )
    timers.handle_ready_timers()
    assert sorted(front.raw.hkeys(LEGACY_PAYLOADS)) == ["ghost--x", "jobs--future"]

    ghosts: Recorder[Other] = Recorder()
    ghost_handler = front.timers(spec("ghost", Other, lambda payload, context: ghosts.record(payload)))
    ghost_handler.handle_ready_timers()
    ghost_handler.handle_ready_timers()
    assert ghosts.items == [Other(text="unknown topic")]
    assert front.raw.exists(LEGACY_TIMELINE) == 0
    assert front.raw.hkeys(LEGACY_PAYLOADS) == ["jobs--future"]
    assert timers.remove_timer("jobs", "future") is True
    timers.handle_ready_timers()
    assert front.raw.exists(LEGACY_TIMELINE, LEGACY_PAYLOADS) == 0
    assert front.timer_data() == []


def test_legacy_timers_fire_with_run_forever_not_before_their_second(front: Front) -> None:
    calls: Recorder[tuple[str, int]] = Recorder()

    def handler(payload: Job, context: dict[str, Any]) -> None:
        calls.record((payload.note, server_time_ms(front.raw)))

    timers = front.timers(spec("jobs", Job, handler))
    now_second = int(time.time())
    due = {"now": now_second, "next": now_second + 1, "after": now_second + 2}
    for name, second in due.items():
        write_legacy(front, f"jobs--{name}", second, Job(n=0, note=name))

    with running(timers):
        handled = calls.wait_for(3, timeout=15)
    assert sorted(name for name, _ in handled) == sorted(due)
    for name, started_ms in handled:
        assert started_ms >= due[name] * 1000, f"{name} fired {due[name] * 1000 - started_ms} ms early"
    timers.handle_ready_timers()  # the next pass deletes the payloads' copies of the timers that are done
    assert front.raw.exists(LEGACY_TIMELINE, LEGACY_PAYLOADS) == 0
    assert front.timer_data() == []


def test_a_timer_under_the_new_keys_wins_over_its_legacy_copy(front: Front) -> None:
    calls: Recorder[Job] = Recorder()
    timers = front.timers(spec("jobs", Job, lambda payload, context: calls.record(payload)))
    timers.set_timer("jobs", "dup", Job(n=2, note="new"), datetime.timedelta(hours=1))
    write_legacy(front, "jobs--dup", int(time.time()) - 10, Job(n=1, note="old"))

    timers.handle_ready_timers()
    assert calls.items == []
    info = timers.get_timer("jobs", "dup")
    assert info is not None
    assert info.payload == Job(n=2, note="new")
    assert front.raw.exists(LEGACY_TIMELINE) == 0


def test_namespaces_keep_instances_apart(front: Front) -> None:
    calls: Recorder[tuple[str, int]] = Recorder()

    def handler(payload: Job, context: dict[str, Any]) -> None:
        calls.record((context["namespace"], payload.n))

    blue = front.timers(
        spec("jobs", Job, handler), context={"namespace": "blue"}, settings=TimersSettings(namespace="blue")
    )
    green = front.timers(
        spec("jobs", Job, handler), context={"namespace": "green"}, settings=TimersSettings(namespace="green")
    )
    blue.set_timer("jobs", "a", Job(n=1), NOW)
    assert green.get_timer("jobs", "a") is None
    assert green.remove_timer("jobs", "a") is False
    green.handle_ready_timers()
    assert calls.items == []
    # Green's worker wrote nothing but its own topic set (under its own tag).
    assert all(key.startswith(("{blue}:", "{green}:topics:")) for key in front.all_keys())
    blue.handle_ready_timers()
    assert calls.items == [("blue", 1)]


def test_legacy_keys_and_separator_follow_the_settings(front: Front) -> None:
    calls: Recorder[Job] = Recorder()
    settings = TimersSettings(timeline_key="old:timeline", payloads_key="old:payloads", separator="::")
    timers = front.timers(spec("jobs", Job, lambda payload, context: calls.record(payload)), settings=settings)
    now_second = int(time.time())
    front.raw.zadd("old:timeline", {"jobs::a": now_second - 1, "jobs::b::c": now_second - 1})
    front.raw.hset(
        "old:payloads", mapping={"jobs::a": Job(n=1).model_dump_json(), "jobs::b::c": Job(n=2).model_dump_json()}
    )
    write_legacy(front, "jobs--default-keys", now_second - 1, Job(n=3))  # not this instance's legacy keys
    timers.handle_ready_timers()
    assert sorted(calls.items, key=lambda job: job.n) == [Job(n=1), Job(n=2)]
    timers.handle_ready_timers()
    assert front.raw.exists("old:timeline", "old:payloads") == 0
    assert front.raw.zrange(LEGACY_TIMELINE, 0, -1) == ["jobs--default-keys"]


def test_legacy_timers_written_while_a_worker_runs_are_picked_up(front: Front) -> None:
    calls: Recorder[Job] = Recorder()
    timers = front.timers(
        spec("jobs", Job, lambda payload, context: calls.record(payload)),
        settings=TimersSettings(legacy_import_interval_seconds=0.2),  # safety_wakeup_seconds stays 8
    )
    with running(timers):
        wait_until(lambda: subscribers(front.raw, "{timers}:wake:jobs") >= 1)
        timers.set_timer("jobs", "new", Job(n=0), NOW)
        calls.wait_for(1)
        # Settled: the worker has nothing left to do but sleep (and import every 0.2 s).
        wait_until(lambda: timers.get_timer("jobs", "new") is None)
        write_legacy(front, "jobs--late", int(time.time()) - 1, Job(n=1, note="seed process still running"))
        assert calls.wait_for(2, timeout=3)[-1] == Job(n=1, note="seed process still running")
        wait_until(lambda: front.raw.exists(LEGACY_TIMELINE, LEGACY_PAYLOADS) == 0)
