"""`set_timers` / `remove_timers` and the conditional modes of `set_timer`, through both front ends, on one shard
and on four (`TimersSettings(shards=4)`: each shard its own hash tag on one server)."""

from __future__ import annotations

import datetime
import inspect
import time
from pathlib import Path
from typing import Any

import pydantic
import pytest

import redis_timers.sync
from redis_timers import (
    InvalidTimerIdError,
    PayloadTypeError,
    SetResult,
    TimerRef,
    TimerSpec,
    TimersServerError,
    TimersSettings,
)
from redis_timers.keys import Namespace
from tests.harness import Front, Gate, Recorder, datetime_to_ms, running, spec, subscribers, wait_until
from tests.scenarios.models import Job, Other

NOW = datetime.timedelta(0)
SOON = datetime.timedelta(minutes=30)
LATER = datetime.timedelta(hours=1)
LATEST = datetime.timedelta(hours=2)
UTC = datetime.timezone.utc
SHARD_COUNTS = [1, 4]
ROOT = Path(__file__).resolve().parents[2]
README = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
PROTOCOL = " ".join((ROOT / "docs" / "protocol.md").read_text(encoding="utf-8").split())
"""The docs with line breaks as spaces, so that a sentence is found whatever its wrapping."""


def documents(*sentences: str) -> None:
    for sentence in sentences:
        assert sentence in README, sentence


@pytest.fixture(params=SHARD_COUNTS, ids=lambda shards: f"shards={shards}")
def shards(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def no_op(payload: Any, context: dict[str, Any]) -> None:
    pass


def jobs_timers(front: Front, shards: int, handler: Any = no_op, **settings: Any) -> Any:
    return front.timers(
        spec("jobs", Job, handler, blocking=handler is not no_op),
        spec("others", Other, no_op),
        settings=TimersSettings(shards=shards, **settings),
    )


def evalsha_calls(front: Front) -> int:
    stats = front.raw.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def timelines(front: Front, shards: int, topic: str) -> list[int]:
    return [front.raw.zcard(keyspace.timeline(topic)) for keyspace in Namespace("timers", shards).keyspaces]


def test_a_bulk_of_5000_across_topics_and_shards_is_written_read_back_and_removed(front: Front, shards: int) -> None:
    timers = jobs_timers(front, shards)
    items = [
        TimerSpec("jobs", f"j{n}", Job(n=n), LATER)
        if n % 2
        else TimerSpec("others", f"o{n}", Other(text=str(n)), LATER)
        for n in range(5000)
    ]
    before = datetime.datetime.now(UTC)
    # Loads the scripts (a first call answered NOSCRIPT counts too) and makes the layout check before the count.
    timers.call("set_timers", [TimerSpec("jobs", "warm-up", Job(n=0), LATER)])
    assert timers.call("remove_timers", [TimerRef("jobs", "warm-up")]) == [True]
    calls_before = evalsha_calls(front)

    results = timers.call("set_timers", items)

    # One script call per batch: at most 500 timers of one shard each.
    per_shard = [0] * shards
    for item in items:
        per_shard[Namespace("timers", shards).keyspace_for(item.topic, item.timer_id).shard] += 1
    assert evalsha_calls(front) - calls_before == sum(-(-count // 500) for count in per_shard)

    assert [(result.topic, result.timer_id) for result in results] == [(item.topic, item.timer_id) for item in items]
    assert all(isinstance(result, SetResult) and result.written for result in results)
    assert all(result.due_at >= before + LATER - datetime.timedelta(milliseconds=1) for result in results)
    assert sum(timelines(front, shards, "jobs")) == 2500
    assert sum(timelines(front, shards, "others")) == 2500
    assert all(count > 0 for count in timelines(front, shards, "jobs"))  # every shard got its share
    info = timers.get_timer("jobs", "j4999")
    assert info is not None
    assert info.payload == Job(n=4999)
    assert info.due_at == results[4999].due_at

    refs = [TimerRef(item.topic, item.timer_id) for item in items]
    assert timers.call("remove_timers", [*refs[:10], TimerRef("jobs", "never")]) == [True] * 10 + [False]
    assert timers.call("remove_timers", refs) == [False] * 10 + [True] * 4990
    assert sum(timelines(front, shards, "jobs")) + sum(timelines(front, shards, "others")) == 0
    assert timers.call("set_timers", []) == []
    assert timers.call("remove_timers", []) == []
    documents(
        '`set_timers(timers, *, mode="replace")` takes an iterable of '
        "`TimerSpec(topic, timer_id, payload, activation_period=None, activate_at=None)` (or plain tuples in that "
        "order) and returns one `SetResult(topic, timer_id, due_at, written)` per timer, in the order given.",
        "`remove_timers(timers)` takes `TimerRef(topic, timer_id)`s (or pairs) and returns, per timer, whether one "
        "was scheduled.",
    )


def test_plain_tuples_serve_as_records(front: Front, shards: int) -> None:
    timers = jobs_timers(front, shards)
    [result] = timers.call("set_timers", [("jobs", "a", Job(n=1), LATER)])
    assert result.written
    assert timers.call("remove_timers", [("jobs", "a")]) == [True]


def test_a_batch_that_fails_raises_its_error_and_the_other_batches_stay(front: Front) -> None:
    timers = jobs_timers(front, 4)
    items = [TimerSpec("jobs", f"j{n}", Job(n=n), LATER) for n in range(40)]
    namespace = Namespace("timers", 4)
    broken = namespace.keyspaces[1]
    front.raw.set(broken.timeline("jobs"), "not a sorted set")  # WRONGTYPE for that shard's batch alone

    with pytest.raises(TimersServerError, match="WRONGTYPE"):
        timers.call("set_timers", items)

    for item in items:
        keyspace = namespace.keyspace_for("jobs", item.timer_id)
        written = keyspace != broken and front.raw.zscore(keyspace.timeline("jobs"), item.timer_id) is not None
        assert written is (keyspace != broken)
    assert not front.raw.hlen(broken.payloads("jobs"))  # nothing half-written in the failed batch
    # The same call again, once the server is fixed, is safe: every timer is one timer.
    front.raw.delete(broken.timeline("jobs"))
    assert all(result.written for result in timers.call("set_timers", items))
    assert sum(timelines(front, 4, "jobs")) == 40
    documents(
        "Each batch is atomic. If Redis fails midway, the batches already written stay and the call raises the "
        "error of the first batch that failed; making the same call again is safe, since a timer set twice is "
        "still one timer.",
    )


@pytest.mark.parametrize("timers_class", [redis_timers.Timers, redis_timers.sync.Timers], ids=["async", "sync"])
def test_set_timers_has_no_durable_variant(timers_class: Any) -> None:
    assert "durable" not in inspect.signature(timers_class.set_timers).parameters
    documents("There is no `durable` variant: the batches of one call may go to several primaries.")


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (TimerSpec("jobs", "", Job(n=0), LATER), InvalidTimerIdError),
        (TimerSpec("jobs", "x", Other(text="wrong schema"), LATER), PayloadTypeError),
    ],
    ids=["empty id", "wrong payload"],
)
def test_bad_input_in_timer_3999_writes_nothing(
    front: Front, shards: int, bad: TimerSpec, error: type[Exception]
) -> None:
    timers = jobs_timers(front, shards)
    items = [TimerSpec("jobs", f"j{n}", Job(n=n), LATER) for n in range(5000)]
    items[3999] = bad

    with pytest.raises(error, match="timer 3999 of the call"):
        timers.call("set_timers", items)
    with pytest.raises(InvalidTimerIdError, match="timer 3999 of the call"):
        timers.call("remove_timers", [TimerRef("jobs", "ok")] * 3999 + [TimerRef("jobs", "")])

    assert front.all_keys() == []
    documents(
        "Every timer is checked as `set_timer` checks it before anything is written: one bad timer raises its "
        'error, naming its place ("timer 3999 of the call"), and nothing is written.',
    )


def test_an_id_given_twice_ends_as_two_calls_one_after_the_other_would_leave_it(front: Front, shards: int) -> None:
    timers = jobs_timers(front, shards)

    replaced = timers.call(
        "set_timers", [TimerSpec("jobs", "a", Job(n=1), LATER), TimerSpec("jobs", "a", Job(n=2), SOON)]
    )
    kept = timers.call(
        "set_timers", [TimerSpec("jobs", "b", Job(n=1), LATER), TimerSpec("jobs", "b", Job(n=2), SOON)], mode="keep"
    )
    earliest = timers.call(
        "set_timers",
        [
            TimerSpec("jobs", "c", Job(n=1), LATER),
            TimerSpec("jobs", "c", Job(n=2), SOON),
            TimerSpec("jobs", "c", Job(n=3), LATEST),
        ],
        mode="earlier",
    )

    info = timers.get_timer("jobs", "a")
    assert info is not None
    assert info.payload == Job(n=2)
    assert info.due_at == replaced[1].due_at
    assert [result.written for result in replaced] == [True, True]
    info = timers.get_timer("jobs", "b")
    assert info is not None
    assert info.payload == Job(n=1)
    assert info.due_at == kept[0].due_at == kept[1].due_at
    assert [result.written for result in kept] == [True, False]
    info = timers.get_timer("jobs", "c")
    assert info is not None
    assert info.payload == Job(n=2)
    assert info.due_at == earliest[1].due_at == earliest[2].due_at
    assert [result.written for result in earliest] == [True, True, False]
    assert sum(timelines(front, shards, "jobs")) == 3
    documents(
        'An id given twice in one call ends as two calls one after the other would leave it (with `"replace"`, '
        "the last one wins)."
    )


# mode, then whether a timer due in an hour is replaced by one due in 30 minutes / in 2 hours.
MODES = [("replace", True, True), ("keep", False, False), ("earlier", True, False), ("later", False, True)]


@pytest.mark.parametrize(("mode", "sooner_wins", "later_wins"), MODES, ids=[mode for mode, _, _ in MODES])
@pytest.mark.parametrize("call", ["set_timer", "set_timers"])
def test_each_mode_keeps_or_replaces_an_existing_timer(
    front: Front, shards: int, mode: str, sooner_wins: bool, later_wins: bool, call: str
) -> None:
    timers = jobs_timers(front, shards)

    def set_one(timer_id: str, n: int, delay: datetime.timedelta) -> tuple[datetime.datetime, bool]:
        if call == "set_timer":
            return timers.call("set_timer", "jobs", timer_id, Job(n=n), delay, mode=mode), True
        [result] = timers.call("set_timers", [TimerSpec("jobs", timer_id, Job(n=n), delay)], mode=mode)
        return result.due_at, result.written

    for timer_id, delay, wins in (("s", SOON, sooner_wins), ("l", LATEST, later_wins)):
        fresh_due, fresh_written = set_one(timer_id, 1, LATER)  # no timer yet: every mode writes it
        assert fresh_written
        due, written = set_one(timer_id, 2, delay)
        info = timers.get_timer("jobs", timer_id)
        assert info is not None
        assert info.payload == Job(n=2 if wins else 1)
        assert info.due_at == due  # the due time returned is the timer's, new or kept
        assert (due == fresh_due) is not wins
        if call == "set_timers":
            assert written is wins
    documents(
        '- `"replace"` (the default): the new due time and payload replace the existing ones (a debounce).',
        '- `"keep"`: the existing timer stays as it is (a throttle, or a schedule made idempotent).',
        '- `"earlier"` / `"later"`: whichever due time is earlier / later stays, with its payload (a deadline '
        "that only moves one way); on a tie the existing timer stays.",
        "When the existing timer is kept, `set_timer` returns its due time and its `SetResult` has `written=False`.",
    )


@pytest.mark.parametrize("mode", ["keep", "earlier", "later"])
def test_on_a_tie_the_existing_timer_stays(front: Front, shards: int, mode: str) -> None:
    timers = jobs_timers(front, shards)
    at = datetime.datetime.now(UTC).replace(microsecond=0) + LATER
    timers.set_timer("jobs", "a", Job(n=1), activate_at=at)

    [result] = timers.call("set_timers", [TimerSpec("jobs", "a", Job(n=2), activate_at=at)], mode=mode)

    assert result == SetResult("jobs", "a", at, False)
    info = timers.get_timer("jobs", "a")
    assert info is not None
    assert info.payload == Job(n=1)


def blocking_first_run(gate: Gate, started: Recorder[Job]) -> Any:
    def handler(payload: Job, context: dict[str, Any]) -> None:
        if started.record(payload) == 1:
            assert gate.wait(), "the test never opened the gate"

    return handler


@pytest.mark.parametrize("mode", ["keep", "earlier", "later"])
@pytest.mark.parametrize("call", ["set_timer", "set_timers"])
def test_a_timer_whose_handler_runs_is_not_existing_so_every_mode_schedules_anew(
    front: Front, shards: int, mode: str, call: str
) -> None:
    gate, started = front.gate(), Recorder[Job]()
    # The running timer's score is its lease's end: before the new due time for "earlier", after it for "later",
    # so that each mode would keep the running timer if it counted as existing.
    lease_seconds = 3 * 3600 if mode == "later" else 30
    timers = jobs_timers(front, shards, blocking_first_run(gate, started), lease_seconds=lease_seconds)
    timers.set_timer("jobs", "a", Job(n=1), NOW)

    single_pass = timers.background("handle_ready_timers")
    started.wait_for(1)
    if call == "set_timer":
        due = timers.call("set_timer", "jobs", "a", Job(n=2), LATER, mode=mode)
    else:
        [result] = timers.call("set_timers", [TimerSpec("jobs", "a", Job(n=2), LATER)], mode=mode)
        assert result.written
        due = result.due_at
    gate.open()
    single_pass.result(timeout=20)

    # The end of the old run did not delete the new schedule.
    info = timers.get_timer("jobs", "a")
    assert info is not None
    assert info.payload == Job(n=2)
    assert info.running is False
    assert info.due_at == due > datetime.datetime.now(UTC) + datetime.timedelta(minutes=50)
    documents(
        "A timer whose handler runs right now does not count as scheduled: every mode schedules the new timer, as "
        '`"replace"` does, so a call made while a timer fires is never lost (the run\'s end leaves the new timer '
        "alone)."
    )


def failing(payload: Job, context: dict[str, Any]) -> None:
    raise RuntimeError("always")


@pytest.mark.parametrize("mode", ["keep", "earlier", "later"])
def test_a_dead_letter_is_not_an_existing_timer_and_stays_as_it_is(front: Front, shards: int, mode: str) -> None:
    timers = jobs_timers(front, shards, failing, max_attempts=1)
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    timers.handle_ready_timers()
    assert [letter.timer_id for letter in timers.dead_letters()] == ["a"]

    [result] = timers.call("set_timers", [TimerSpec("jobs", "a", Job(n=2), LATER)], mode=mode)
    timers.call("set_timer", "jobs", "b", Job(n=3), LATER, mode=mode)

    assert result.written
    info = timers.get_timer("jobs", "a")
    assert info is not None
    assert info.payload == Job(n=2)
    assert [letter.timer_id for letter in timers.dead_letters()] == ["a"]
    documents("A dead letter does not count either: the new timer is scheduled and the dead letter stays as it is.")


class Earliest(pydantic.BaseModel):
    key: str
    earliest_us: int


def test_bulk_set_timers_are_due_and_start_never_before_the_call_plus_their_delay(front: Front, shards: int) -> None:
    starts: Recorder[tuple[str, int, int]] = Recorder()

    def handler(payload: Earliest, context: dict[str, Any]) -> None:
        starts.record((payload.key, payload.earliest_us, time.time_ns() // 1000))

    # No safety wake-up within the test: only the bulk writes' notifications can wake the worker.
    timers = front.timers(
        spec("early", Earliest, handler), settings=TimersSettings(shards=shards, safety_wakeup_seconds=120)
    )
    timers.set_timer("early", "far", Earliest(key="far", earliest_us=0), LATER)  # a worker sleeping until it
    with running(timers):
        for keyspace in Namespace("timers", shards).keyspaces:
            wait_until(lambda: subscribers(front.raw, keyspace.channel("early")) >= 1)  # noqa: B023
        total = 0
        for round_ in range(4):
            before_us = time.time_ns() // 1000
            items = []
            for n in range(100):
                delay = datetime.timedelta(microseconds=(n * 317 + round_ * 89) % 30_000)
                earliest_us = before_us + delay // datetime.timedelta(microseconds=1)
                items.append(
                    TimerSpec("early", f"t{round_}.{n}", Earliest(key=f"t{round_}.{n}", earliest_us=earliest_us), delay)
                )
            results = timers.call("set_timers", items)
            for item, result in zip(items, results):
                assert datetime_to_ms(result.due_at) * 1000 >= item.payload.earliest_us  # type: ignore[attr-defined]
            total += len(items)
        # Woken by the bulk writes (their due times come before the head it sleeps until), it fires them all.
        fired = starts.wait_for(total, timeout=30)
    early = [(key, earliest, start) for key, earliest, start in fired if start < earliest]
    assert early == []
    wait_until(lambda: timers.get_timer("early", "t3.99") is None)
    assert "publishes once per topic, if the batch made its head earlier;" in PROTOCOL


def test_a_bulk_over_six_shards_of_a_cluster_lands_each_timer_in_its_shard(cluster_front: Front) -> None:
    timers = cluster_front.timers(spec("jobs", Job, no_op), settings=TimersSettings(shards=6))
    items = [TimerSpec("jobs", f"j{n}", Job(n=n), LATER) for n in range(3000)]

    assert all(result.written for result in timers.call("set_timers", items))
    kept = timers.call("set_timers", [TimerSpec("jobs", "j7", Job(n=-1), SOON)], mode="later")

    assert [result.written for result in kept] == [False]
    for keyspace in Namespace("timers", 6).keyspaces:
        assert cluster_front.raw.zcard(keyspace.timeline("jobs")) > 0
    info = timers.get_timer("jobs", "j2999")
    assert info is not None
    assert info.payload == Job(n=2999)
    assert timers.call("remove_timers", [TimerRef("jobs", item.timer_id) for item in items]) == [True] * 3000


def test_replace_forgets_the_last_error_of_a_timer_set_again_among_new_ones(front: Front, shards: int) -> None:
    """With "replace", a batch forgets errors only when it set a timer that was scheduled already (a new timer
    has none on record): here one retried timer among 600 new ones, as `set_timer` would forget it."""

    def fails(payload: Job, context: dict[str, Any]) -> None:
        raise ValueError("first failure")

    timers = jobs_timers(front, shards, fails, max_attempts=3, retry_backoff_seconds=3600)
    timers.set_timer("jobs", "failed", Job(n=0), NOW)
    timers.handle_ready_timers()
    info = timers.get_timer("jobs", "failed")
    assert info is not None
    assert (info.attempts, info.last_error) == (1, "ValueError: first failure")

    items = [TimerSpec("jobs", f"new{n}", Job(n=n), LATER) for n in range(600)]
    results = timers.call("set_timers", [*items[:300], TimerSpec("jobs", "failed", Job(n=1), LATER), *items[300:]])

    assert all(result.written for result in results)
    info = timers.get_timer("jobs", "failed")
    assert info is not None
    assert (info.payload, info.attempts, info.last_error) == (Job(n=1), 0, None)
    assert sum(timelines(front, shards, "jobs")) == 601
