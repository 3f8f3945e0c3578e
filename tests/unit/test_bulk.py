"""`set_timers` / `remove_timers` and the conditional modes, without Redis: checks first, then batches per shard."""

from __future__ import annotations

import datetime
import inspect
from pathlib import Path
from typing import Any

import pytest

import redis_timers
import redis_timers.sync
from redis_timers import bulk, flows, scripts
from redis_timers.bulk import SetResult, TimerRef, TimerSpec
from redis_timers.errors import (
    HandlerNotFoundError,
    InvalidTimerError,
    InvalidTimerIdError,
    PayloadTypeError,
    SetModeError,
    TimersConnectionError,
)
from redis_timers.keys import Namespace
from redis_timers.timing import ms_to_datetime
from tests.unit.support import Order, Reminder, make_registry

LATER = datetime.timedelta(hours=1)
ROOT = Path(__file__).resolve().parents[2]
README = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
PROTOCOL = " ".join((ROOT / "docs" / "protocol.md").read_text(encoding="utf-8").split())
ONE = Namespace("timers")
FOUR = Namespace("timers", 4)


def orders(count: int, *, note: str = "") -> list[TimerSpec]:
    return [TimerSpec("orders", f"o{n}", Order(order_id=n, note=note), LATER) for n in range(count)]


def test_one_shard_is_cut_into_batches_of_at_most_500_timers_in_the_calls_order() -> None:
    batches = bulk.set_batches(ONE, make_registry(), orders(1200), "replace")

    assert [len(positions) for positions in batches.positions] == [500, 500, 200]
    assert [position for positions in batches.positions for position in positions] == list(range(1200))
    assert (
        "Both are one call to Redis per batch of at most 500 timers (and about 1 MB of payloads) of one shard, all "
        "batches sent in one pipeline." in README
    )
    first = batches.calls[0]
    assert first.script is scripts.SET_TIMERS
    assert first.keys == ONE.keyspaces[0].write_keys("orders")
    # mode, the topic's channel and number of timers, then per timer: id, payload, -1 - delay.
    assert (
        "arguments: the mode, then per topic its channel, its number of timers and, per timer, id, payload and when "
        "(a due time in ms, or -1 - delay for a delay in ms); sets each timer as `set_timer` does with that mode, "
        "in order (with `replace`, each topic's timers in one ZADD, one HSET and one HDEL);" in PROTOCOL
    )
    assert first.args[:6] == (
        "replace",
        ONE.keyspaces[0].channel("orders"),
        500,
        "o0",
        b'{"order_id":0,"note":""}',
        -1 - 3_600_000,
    )
    at = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    [call] = bulk.set_batches(
        ONE, make_registry(), [TimerSpec("orders", "a", Order(order_id=1), activate_at=at)], "keep"
    ).calls
    assert call.args[-1] == 1_893_456_000_000  # a due time is sent as it is
    assert (
        "replies with the rounded-up now that delays count from, then the place (from 1) and existing due time of "
        "each timer it kept" in PROTOCOL
    )


def test_each_batch_holds_one_shards_timers_of_several_topics() -> None:
    items = [*orders(400), *(TimerSpec("reminders", f"r{n}", Reminder(text="x"), LATER) for n in range(400))]
    batches = bulk.set_batches(FOUR, make_registry(), items, "keep")

    assert sum(map(len, batches.positions)) == 800
    for call, positions in zip(batches.calls, batches.positions):
        shards = {FOUR.keyspace_for(items[p].topic, items[p].timer_id).shard for p in positions}
        assert len(shards) == 1
        assert len(positions) <= bulk.MAX_BATCH_TIMERS
        tag = FOUR.keyspaces[shards.pop()].tag
        assert all(key.startswith(tag + ":") for key in call.keys)
        assert call.args[0] == "keep"
    assert {len(call.keys) for call in batches.calls} == {7}  # both topics, three keys each, and the heads


def test_a_batch_is_closed_once_its_bytes_reach_the_bound() -> None:
    big = "x" * 300_000
    batches = bulk.set_batches(ONE, make_registry(), orders(7, note=big), "replace")

    assert [len(positions) for positions in batches.positions] == [3, 3, 1]
    assert bulk.MAX_BATCH_BYTES == 1_000_000


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (TimerSpec("orders", "", Order(order_id=1), LATER), InvalidTimerIdError),
        (TimerSpec("orders", "o", Reminder(text="x"), LATER), PayloadTypeError),
        (TimerSpec("orders", "o", Order(order_id=1)), InvalidTimerError),
        (TimerSpec("nobody", "o", Order(order_id=1), LATER), HandlerNotFoundError),
        ("orders", InvalidTimerError),
    ],
)
def test_bad_input_anywhere_raises_before_any_call_is_made(bad: object, error: type[Exception]) -> None:
    items: list[object] = [*orders(3999), bad, *orders(10)]
    with pytest.raises(error) as raised:
        bulk.set_batches(FOUR, make_registry(), items, "replace")  # type: ignore[arg-type]
    if error is not HandlerNotFoundError:  # which names its topic instead
        assert "timer 3999 of the call" in str(raised.value)


def test_plain_tuples_are_accepted_as_records() -> None:
    batches = bulk.set_batches(ONE, make_registry(), [("orders", "a", Order(order_id=1), LATER)], "replace")  # type: ignore[list-item]
    assert batches.positions == [[0]]
    removal = bulk.remove_batches(ONE, make_registry(), [("orders", "a")])  # type: ignore[list-item]
    assert removal.calls[0].args == (1, "a")


@pytest.mark.parametrize("mode", ["Keep", "", None, "first"])
def test_an_unknown_mode_is_refused(mode: object) -> None:
    with pytest.raises(SetModeError, match="mode must be one of 'replace', 'keep', 'earlier', 'later'"):
        bulk.set_batches(ONE, make_registry(), orders(1), mode)  # type: ignore[arg-type]
    with pytest.raises(SetModeError):
        flows.set_timer_call(ONE, make_registry(), "orders", "a", Order(order_id=1), LATER, None, mode)  # type: ignore[arg-type]


def test_the_default_mode_sends_what_set_timer_always_sent_and_the_others_add_the_mode() -> None:
    default = flows.set_timer_call(ONE, make_registry(), "orders", "a", Order(order_id=1), LATER, None)
    replace = flows.set_timer_call(ONE, make_registry(), "orders", "a", Order(order_id=1), LATER, None, "replace")
    keep = flows.set_timer_call(ONE, make_registry(), "orders", "a", Order(order_id=1), LATER, None, "keep")

    assert default == replace
    assert len(default.args) == 5
    assert keep.args == (*default.args, "keep")
    assert flows.set_reply(1234) == (1234, True)
    assert flows.set_reply([1234, 0]) == (1234, False)
    assert "With the default mode, `set_timer` sends the same script call as it did before modes existed." in README
    assert (
        "with a sixth argument (`keep`, `earlier` or `later`), first keep a pending timer (on the timeline and not "
        "leased) that the mode prefers, replying `{due, 0}` without writing, else write and reply `{due, 1}`"
        in PROTOCOL
    )
    # One script call decides and writes.
    assert keep.script is scripts.SET_TIMER
    assert bulk.set_batches(ONE, make_registry(), orders(3), "later").calls[0].script is scripts.SET_TIMERS
    assert (
        "says what to do when the timer is already scheduled; the check and the write are one script, so nothing "
        "comes between them" in README
    )


@pytest.mark.parametrize("timers_class", [redis_timers.Timers, redis_timers.sync.Timers], ids=["async", "sync"])
def test_mode_is_a_keyword_only_replace_by_default(timers_class: Any) -> None:
    for method in ("set_timer", "set_timers"):
        parameter = inspect.signature(getattr(timers_class, method)).parameters["mode"]
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
        assert parameter.default == "replace"
    assert '| `set_timer(..., *, mode="replace")` |' in README


def test_results_come_back_in_the_calls_order_and_the_first_failed_batch_raises() -> None:
    items = orders(4)
    # The first call's timers are o0 (due at 10) and o2 (a delay of 5 ms); o2 was kept, due at 30.
    batches = bulk.SetBatches([], [[0, 2], [1, 3]], [[10, -1 - 5], [-1 - 0, 40]], items)

    results = batches.results([[1000, 2, 30], [2000]])
    assert results == [
        SetResult("orders", "o0", ms_to_datetime(10), True),
        SetResult("orders", "o1", ms_to_datetime(2000), True),
        SetResult("orders", "o2", ms_to_datetime(30), False),
        SetResult("orders", "o3", ms_to_datetime(40), True),
    ]
    failure = TimersConnectionError("gone")
    with pytest.raises(TimersConnectionError):
        batches.results([[1000], failure])


def test_removals_are_checked_batched_and_read_back_in_order() -> None:
    refs = [TimerRef("orders", f"o{n}") for n in range(1001)]
    batches = bulk.remove_batches(ONE, make_registry(), refs)
    assert [len(p) for p in batches.positions] == [500, 500, 1]
    assert batches.calls[0].script is scripts.REMOVE_TIMERS
    assert batches.calls[0].args[:3] == (500, "o0", "o1")
    assert (
        "| `remove_timers` | timeline, payloads, state of each topic of the batch (all in one shard), then heads | "
        "arguments: per topic its number of timers and their ids; removes each as `remove_timer` does; replies with 1 "
        "or 0 per timer |" in PROTOCOL
    )
    assert batches.results([[1] * 500, [0] * 500, [1]]) == [True] * 500 + [False] * 500 + [True]
    with pytest.raises(InvalidTimerIdError, match="timer 3 of the call"):
        bulk.remove_batches(ONE, make_registry(), [*refs[:3], TimerRef("orders", "")])


def test_the_benchmark_runs_bulk_alone_and_shows_it_beside_the_raw_pipeline_and_one_at_a_time() -> None:
    from benchmarks import bulk as bulk_scenario
    from benchmarks import cli, report
    from benchmarks.results import Results

    _, config = cli.parse(["--only", "bulk"])
    assert config.scenarios == ("bulk",)
    assert cli.RUNNERS["bulk"] is bulk_scenario.run
    assert [len(chunk) for chunk in bulk_scenario.chunks(range(0, 2500))] == [1000, 1000, 500]
    results = Results()
    for front in ("async", "sync"):
        for impl, value in (("library", 40_000.0), ("raw-pipeline", 20_000.0), ("one-at-a-time", 4_000.0)):
            results.add("bulk.rate", front, impl, value)
    machine = dict.fromkeys(("nproc", "cpu", "python", "redis_py", "server", "os", "date", "library"), "x")
    table = report.markdown(results, config, machine, 1.0, "cmd")

    assert "| bulk | set_timers timers/s (raw: ZADD + HSET, one pipeline per 1,000) | 40,000 | 20,000 | 2.00 |" in table
    assert "| bulk | set_timers timers/s (raw: set_timer one at a time) | 40,000 | 4,000 | 10.00 |" in table
