"""`set_timers` / `remove_timers` and the conditional modes, without Redis: checks first, then batches per shard."""

from __future__ import annotations

import datetime
import inspect
from pathlib import Path
from typing import Any

import pydantic
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
        "in order (with `replace`, each topic's timers in one ZADD and one HSET, and one HDEL of their errors "
        "unless every timer was new);" in PROTOCOL
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
        for impl, value in (
            ("library", 40_000.0),
            ("raw-pipeline", 20_000.0),
            ("raw-variadic", 50_000.0),
            ("one-at-a-time", 4_000.0),
        ):
            results.add("bulk.rate", front, impl, value)
    machine = dict.fromkeys(("nproc", "cpu", "python", "redis_py", "server", "os", "date", "library"), "x")
    table = report.markdown(results, config, machine, 1.0, "cmd")

    assert (
        "| bulk | set_timers timers/s (raw: ZADD + HSET per timer, heads, one pipeline per 1,000) | 40,000 | 20,000 | "
        "2.00 |" in table
    )
    assert (
        "| bulk | set_timers timers/s (raw: one ZADD + one HSET + heads per 1,000) | 40,000 | 50,000 | 0.80 |" in table
    )
    assert "| bulk | set_timers timers/s (raw: set_timer one at a time) | 40,000 | 4,000 | 10.00 |" in table


class Subclassed(Order):
    """An `Order` of a subclass: valid for the topic (`isinstance`), but not of exactly its schema."""


class IdText(str):
    """A str subclass as an id or a topic."""


class RefusesRoundTrip(pydantic.BaseModel):
    """12 serializes as 13, which the validator refuses: its JSON never validates back."""

    n: int

    @pydantic.field_validator("n")
    @classmethod
    def refuse_13(cls, n: int) -> int:
        if n == 13:
            raise ValueError("13")
        return n

    @pydantic.field_serializer("n")
    def twelve_as_13(self, n: int) -> int:
        return 13 if n == 12 else n


AT = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
ODD_TIMERS = [
    pytest.param(TimerSpec("orders", "a", Order(order_id=1), LATER), id="plain"),
    pytest.param(TimerSpec("orders", "a", Order(order_id=1), activate_at=AT), id="at"),
    pytest.param(TimerSpec("orders", "é" * 512, Order(order_id=1), LATER), id="non-ascii-at-the-limit"),
    pytest.param(TimerSpec("orders", "é" * 513, Order(order_id=1), LATER), id="non-ascii-over-the-limit"),
    pytest.param(TimerSpec("orders", "a" * 1025, Order(order_id=1), LATER), id="ascii-over-the-limit"),
    pytest.param(TimerSpec("orders", "\ud800", Order(order_id=1), LATER), id="lone-surrogate"),
    pytest.param(TimerSpec("orders", IdText("a"), Order(order_id=1), LATER), id="str-subclass-id"),
    pytest.param(TimerSpec(IdText("orders"), "a", Order(order_id=1), LATER), id="str-subclass-topic"),
    pytest.param(TimerSpec("orders", 7, Order(order_id=1), LATER), id="int-id"),  # type: ignore[arg-type]
    pytest.param(TimerSpec("orders", "", Reminder(text="x"), LATER), id="bad-id-and-bad-payload"),
    pytest.param(TimerSpec("orders", "a", Subclassed(order_id=1), LATER), id="subclass-payload"),
    pytest.param(TimerSpec("orders", "a", Reminder(text="x"), LATER), id="other-schema"),
    pytest.param(TimerSpec("orders", "a", Order(order_id=1)), id="neither"),
    pytest.param(TimerSpec("orders", "a", Order(order_id=1), LATER, AT), id="both"),
    pytest.param(TimerSpec("orders", "", Order(order_id=1)), id="bad-id-and-neither"),
    pytest.param(TimerSpec("orders", "a", Order(order_id=1), -LATER), id="negative-delay"),
    pytest.param(TimerSpec("orders", "a", Order(order_id=1), 5), id="int-delay"),  # type: ignore[arg-type]
    pytest.param(TimerSpec("orders", "a", Order(order_id=1), activate_at=AT.replace(tzinfo=None)), id="naive"),
    pytest.param(TimerSpec("checked", "a", RefusesRoundTrip(n=12), LATER), id="no-round-trip"),
    pytest.param(TimerSpec("checked", "", RefusesRoundTrip(n=12), LATER), id="bad-id-and-no-round-trip"),
    pytest.param(TimerSpec("checked", "a", RefusesRoundTrip(n=11), LATER), id="round-trip"),
]


@pytest.mark.parametrize("timer", ODD_TIMERS)
def test_a_timer_after_others_of_its_topic_is_checked_as_set_timer_checks_it(timer: TimerSpec) -> None:
    """The first timer of a topic goes through `set_timer`'s checks and later ones through the inline ones: the
    same timer at either place is accepted with the same arguments, or refused with `set_timer`'s error."""
    registry = make_registry()
    router = redis_timers.sync.Router()
    router.handler(topic="checked", schema=RefusesRoundTrip)(lambda payload, context: None)
    registry.include(router)
    first = TimerSpec(str(timer.topic), "first", Order(order_id=0), LATER)
    if first.topic == "checked":
        first = first._replace(payload=RefusesRoundTrip(n=1))
    expected: Any = None
    try:
        expected = flows.set_timer_call(ONE, registry, *timer)
    except Exception as error:  # whatever set_timer raises, set_timers must raise
        refused = error
    if expected is None:
        with pytest.raises(type(refused)) as raised:
            bulk.set_batches(ONE, registry, [first, timer], "replace")
        assert str(raised.value) in (f"timer 1 of the call: {refused}", str(refused))
        return
    [call] = bulk.set_batches(ONE, registry, [first, timer], "replace").calls
    timer_id, body, kind, milliseconds, _ = expected.args
    assert call.args[-3:] == (timer_id, body, milliseconds if kind == "at" else -1 - milliseconds)
