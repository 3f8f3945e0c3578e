"""Hostile cases over several shards on one server, both front ends."""

from __future__ import annotations

import datetime
import signal
import threading
from typing import Any

import pytest

from redis_timers import TimersSettings
from redis_timers.keys import shard_of
from tests.harness import (
    ConcurrencyProbe,
    Front,
    Recorder,
    running,
    server_time_ms,
    spec,
    wait_until,
)
from tests.scenarios.models import Job
from tests.scenarios.test_lifecycle_hostile import held_back, writes_paused

TOPIC = "jobs"
NOW = datetime.timedelta(0)


@pytest.mark.parametrize("shards", [2, 8])
def test_concurrency_one_over_many_shards_fires_every_timer_one_at_a_time(front: Front, shards: int) -> None:
    done: Recorder[int] = Recorder()
    probe = ConcurrencyProbe()

    def handler(payload: Job, context: dict[str, Any]) -> None:
        with probe:
            done.record(payload.n)

    timers = front.timers(spec(TOPIC, Job, handler), settings=TimersSettings(shards=shards))
    ids = [f"t{n}" for n in range(40)]
    assert {shard_of(TOPIC, timer_id, shards) for timer_id in ids} == set(range(shards))
    for n, timer_id in enumerate(ids):
        timers.set_timer(TOPIC, timer_id, Job(n=n), NOW)
    timers.start_worker(concurrency=1)
    done.wait_for(40, timeout=30)
    timers.stop_worker()
    assert sorted(done.items) == list(range(40))
    assert probe.peak == 1


def test_a_chain_of_handlers_setting_timers_in_other_shards_runs_to_its_end(front: Front) -> None:
    done: Recorder[int] = Recorder()
    holder: dict[str, Any] = {}

    def handler(payload: Job, context: dict[str, Any]) -> None:
        done.record(payload.n)
        if payload.n < 30:  # through the harness: a thread of the sync front end, the portal of the async one
            holder["timers"].set_timer(TOPIC, f"c{payload.n + 1}", Job(n=payload.n + 1), NOW)

    timers = front.timers(spec(TOPIC, Job, handler, blocking=True), settings=TimersSettings(shards=8))
    holder["timers"] = timers
    with running(timers):
        timers.set_timer(TOPIC, "c0", Job(n=0), NOW)
        done.wait_for(31, timeout=30)
    assert done.items == list(range(31))


def test_handle_ready_timers_over_shards_with_timers_set_during_the_pass(front: Front) -> None:
    done: Recorder[str] = Recorder()
    holder: dict[str, Any] = {}

    def handler(payload: Job, context: dict[str, Any]) -> None:
        done.record(f"a{payload.n}")
        if payload.n < 100:
            # Set during the pass in every shard: a pass ends; it takes those due when it started, maybe more.
            holder["timers"].set_timer(TOPIC, f"b{payload.n}", Job(n=100 + payload.n), NOW)

    timers = front.timers(spec(TOPIC, Job, handler, blocking=True), settings=TimersSettings(shards=4))
    holder["timers"] = timers
    for n in range(12):
        timers.set_timer(TOPIC, f"a{n}", Job(n=n), NOW)
    timers.handle_ready_timers()
    assert {f"a{n}" for n in range(12)} <= set(done.items)


def two_ids_in_two_shards(shards: int) -> tuple[str, str]:
    first = "a"
    other = next(f"b{n}" for n in range(100) if shard_of(TOPIC, f"b{n}", shards) != shard_of(TOPIC, first, shards))
    return first, other


@pytest.mark.parametrize("front", ["async"], indirect=True)
def test_cancelling_run_forever_mid_round_trip_over_shards_keeps_acks_and_hands_claims_back(front: Front) -> None:
    gate, started = front.gate(), Recorder[str]()

    def handler(payload: Job, context: dict[str, Any]) -> None:
        started.record(f"n{payload.n}")
        if payload.n == 1:
            gate.wait()

    timers = front.timers(spec(TOPIC, Job, handler, blocking=True), settings=TimersSettings(shards=4))
    a, b = two_ids_in_two_shards(4)
    timers.set_timer(TOPIC, a, Job(n=1), NOW)
    timers.start_worker(concurrency=1)
    started.wait_for(1)
    timers.set_timer(TOPIC, b, Job(n=2), NOW)  # due in another shard, but the worker's only slot is taken
    with writes_paused(front):
        gate.open()  # the next round trip acks `a` in its shard and claims in `b`'s: the server holds it back
        wait_until(lambda: held_back(front) >= 1)
        timers.request_cancel()
    timers.wait_worker(cancelled_ok=True)
    assert timers.get_timer(TOPIC, a) is None, "the ack of the interrupted round trip was lost"
    assert_handed_back(front, timers, b)
    assert started.items == ["n1"]


def assert_handed_back(front: Front, timers: Any, timer_id: str) -> None:
    info = timers.get_timer(TOPIC, timer_id)
    assert info is not None
    assert (info.running, info.attempts) == (False, 0), info
    timeline = timers.timers.namespace.keyspace_for(TOPIC, timer_id).timeline(TOPIC)
    score = front.raw.zscore(timeline, timer_id)
    assert score is not None
    assert score <= server_time_ms(front.raw), "still leased to the stopped worker"


@pytest.mark.parametrize("front", ["sync"], indirect=True)
def test_ctrl_c_in_sync_run_forever_mid_round_trip_over_shards_keeps_acks_and_hands_claims_back(front: Front) -> None:
    gate, started = front.gate(), Recorder[str]()

    def handler(payload: Job, context: dict[str, Any]) -> None:
        started.record(f"n{payload.n}")
        if payload.n == 1:
            gate.wait()

    timers = front.timers(spec(TOPIC, Job, handler, blocking=True), settings=TimersSettings(shards=4))
    a, b = two_ids_in_two_shards(4)
    timers.set_timer(TOPIC, a, Job(n=1), NOW)
    interrupted = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        interrupted.set()
        raise KeyboardInterrupt

    def interrupt_mid_round_trip() -> None:
        started.wait_for(1)
        timers.set_timer(TOPIC, b, Job(n=2), NOW)  # due in another shard, but the worker's only slot is taken
        with writes_paused(front):
            gate.open()  # the next round trip acks `a` in its shard and claims in `b`'s: the server holds it back
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
    assert timers.get_timer(TOPIC, a) is None, "the ack of the interrupted round trip was lost"
    assert_handed_back(front, timers, b)
    assert started.items == ["n1"]


@pytest.mark.parametrize("shards", [1, 2, 8])
def test_a_single_pass_with_one_slot_over_shards_ends_once_every_due_timer_is_handled(
    front: Front, shards: int
) -> None:
    # With one slot, a round trip that settles a run in one shard may give its one claim to another shard: the
    # settling shard's reply (no claim asked) must still tell the pass that nothing more is due there, or the
    # pass waits a whole safety interval for that shard.
    done: Recorder[int] = Recorder()
    settings = TimersSettings(shards=shards, concurrent_processing_limit=1, safety_wakeup_seconds=60)
    timers = front.timers(spec(TOPIC, Job, lambda payload, context: done.record(payload.n)), settings=settings)
    ids = [f"t{n}" for n in range(40)]
    assert {shard_of(TOPIC, timer_id, shards) for timer_id in ids} == set(range(shards))
    for n, timer_id in enumerate(ids):
        timers.set_timer(TOPIC, timer_id, Job(n=n), NOW)
    timers.set_timer(TOPIC, "later", Job(n=-1), datetime.timedelta(hours=1))
    timers.background("handle_ready_timers").result(timeout=20)  # far below the safety interval
    assert sorted(done.items) == list(range(40))
