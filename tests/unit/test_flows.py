"""Each public flow driven by hand: the ops it yields, the replies it accepts, what it returns or raises."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from redis_timers import flows, scripts
from redis_timers.errors import (
    ActivationError,
    HandlerNotFoundError,
    InvalidTimerError,
    InvalidTimerIdError,
    NaiveDatetimeError,
    PayloadTypeError,
    StoredPayloadError,
    TimersError,
)
from redis_timers.keys import Namespace
from redis_timers.ops import Command, Flow, ScriptCall
from redis_timers.records import DeadLetter, TimerInfo
from redis_timers.settings import TimersSettings
from tests.unit.support import Order, Reminder, assert_single_slot, encode, make_registry, run_flow

UTC = datetime.timezone.utc
NAMESPACE = Namespace("timers")
KEYSPACE = NAMESPACE.keyspaces[0]
REGISTRY = make_registry()
ORDER = Order(order_id=7, note="pay")
ORDER_JSON = '{"order_id":7,"note":"pay"}'
ORDER_KEYS = ("{timers}:timeline:orders", "{timers}:payloads:orders", "{timers}:state:orders")
ORDER_WRITE_KEYS = (*ORDER_KEYS, "{timers}:heads")

BYTES_OR_STR = pytest.mark.parametrize("as_bytes", [False, True], ids=["decoded", "raw-bytes"])


def set_timer(
    topic: Any = "orders",
    timer_id: Any = "o-1",
    payload: Any = ORDER,
    activation_period: Any = None,
    activate_at: Any = None,
    namespace: Namespace = NAMESPACE,
) -> Flow[int]:
    return flows.set_timer(namespace, REGISTRY, topic, timer_id, payload, activation_period, activate_at)


def assert_rejected_before_any_op(flow: Flow[Any], error: type[BaseException], match: str | None = None) -> None:
    """The flow raises on its first step, so a front end never sends anything to Redis."""
    with pytest.raises(error, match=match):
        next(flow)


# -- set_timer ------------------------------------------------------------------------------


@pytest.mark.parametrize("reply", [5042, "5042", b"5042"])
def test_set_timer_with_a_delay_yields_one_script_call_and_returns_the_due_ms(reply: Any) -> None:
    ops, due_ms = run_flow(set_timer(activation_period=datetime.timedelta(seconds=5)), [reply])

    assert ops == [
        ScriptCall(
            scripts.SET_TIMER, ORDER_WRITE_KEYS, ("o-1", ORDER_JSON.encode(), "in", 5000, "{timers}:wake:orders")
        ),
    ]
    assert due_ms == 5042
    assert_single_slot(ORDER_WRITE_KEYS, "timers")


def test_set_timer_at_an_instant_sends_epoch_milliseconds() -> None:
    moment = datetime.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)

    ops, due_ms = run_flow(set_timer(activate_at=moment), [1_700_000_000_123])

    assert ops == [
        ScriptCall(
            scripts.SET_TIMER,
            ORDER_WRITE_KEYS,
            ("o-1", ORDER_JSON.encode(), "at", 1_700_000_000_123, "{timers}:wake:orders"),
        ),
    ]
    assert due_ms == 1_700_000_000_123


def test_set_timer_at_an_instant_with_a_non_utc_offset() -> None:
    plus_5_30 = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
    moment = datetime.datetime(2023, 11, 15, 3, 43, 20, 123000, tzinfo=plus_5_30)

    ops, _ = run_flow(set_timer(activate_at=moment), [0])

    assert isinstance(ops[0], ScriptCall)
    assert ops[0].args[2:4] == ("at", 1_700_000_000_123)


def test_set_timer_uses_the_namespace_as_hash_tag_of_every_key() -> None:
    namespace = Namespace("billing:eu")

    ops, _ = run_flow(set_timer(activation_period=datetime.timedelta(0), namespace=namespace), [1])

    assert isinstance(ops[0], ScriptCall)
    assert ops[0].keys == (
        "{billing:eu}:timeline:orders",
        "{billing:eu}:payloads:orders",
        "{billing:eu}:state:orders",
        "{billing:eu}:heads",
    )
    assert ops[0].args[-1] == "{billing:eu}:wake:orders"
    assert_single_slot(ops[0].keys, "billing:eu")


@pytest.mark.parametrize(
    ("period", "expected_ms"),
    [
        (datetime.timedelta(0), 0),
        (datetime.timedelta(microseconds=1), 1),
        (datetime.timedelta(microseconds=999), 1),
        (datetime.timedelta(milliseconds=1), 1),
        (datetime.timedelta(milliseconds=1, microseconds=1), 2),
        (datetime.timedelta(days=2, microseconds=1500), 172_800_002),
    ],
)
def test_set_timer_rounds_a_delay_up_to_the_next_millisecond(period: datetime.timedelta, expected_ms: int) -> None:
    ops, _ = run_flow(set_timer(activation_period=period), [0])

    assert isinstance(ops[0], ScriptCall)
    assert ops[0].args[3] == expected_ms


def test_set_timer_accepts_an_instance_of_a_schema_subclass() -> None:
    class SpecialOrder(Order):
        rush: bool = True

    ops, _ = run_flow(set_timer(payload=SpecialOrder(order_id=1), activation_period=datetime.timedelta(0)), [0])

    assert isinstance(ops[0], ScriptCall)
    body = ops[0].args[1]
    assert isinstance(body, bytes)
    assert json.loads(body) == {"order_id": 1, "note": "", "rush": True}


def test_set_timer_for_an_unknown_topic_raises_the_seeds_runtime_error() -> None:
    flow = set_timer(topic="invoices", activation_period=datetime.timedelta(seconds=1))

    with pytest.raises(HandlerNotFoundError, match="Handler is not found") as caught:
        next(flow)
    assert isinstance(caught.value, RuntimeError)
    assert isinstance(caught.value, TimersError)
    assert caught.value.topic == "invoices"


@pytest.mark.parametrize("payload", [Reminder(text="hi"), {"order_id": 7}, None, '{"order_id":7}'])
def test_set_timer_with_a_payload_of_the_wrong_type_raises(payload: Any) -> None:
    flow = set_timer(payload=payload, activation_period=datetime.timedelta(seconds=1))

    with pytest.raises(PayloadTypeError, match="must be a Order") as caught:
        next(flow)
    assert isinstance(caught.value, TypeError)


@pytest.mark.parametrize(
    "timer_id",
    ["", "x" * 1025, "é" * 513, 17, None, b"o-1", ["o-1"]],
    ids=["empty", "1025-ascii", "1026-bytes-utf8", "int", "none", "bytes", "list"],
)
def test_set_timer_with_a_bad_id_raises(timer_id: Any) -> None:
    flow = set_timer(timer_id=timer_id, activation_period=datetime.timedelta(seconds=1))

    with pytest.raises(InvalidTimerIdError) as caught:
        next(flow)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("timer_id", ["x" * 1024, "é" * 512, "a", "with--separator", "nul\0inside", " "])
def test_set_timer_accepts_ids_up_to_1024_utf8_bytes(timer_id: str) -> None:
    ops, _ = run_flow(set_timer(timer_id=timer_id, activation_period=datetime.timedelta(0)), [0])

    assert isinstance(ops[0], ScriptCall)
    assert ops[0].args[0] == timer_id


class _NoOffset(datetime.tzinfo):
    """A tzinfo that does not know its offset: such a datetime is naive for Python."""

    def utcoffset(self, dt: datetime.datetime | None) -> datetime.timedelta | None:
        return None

    def dst(self, dt: datetime.datetime | None) -> datetime.timedelta | None:
        return None

    def tzname(self, dt: datetime.datetime | None) -> str | None:
        return None


@pytest.mark.parametrize(
    "moment",
    [datetime.datetime(2030, 1, 1), datetime.datetime(2030, 1, 1, tzinfo=_NoOffset())],
    ids=["no-tzinfo", "tzinfo-without-offset"],
)
def test_set_timer_with_a_naive_datetime_raises(moment: datetime.datetime) -> None:
    assert_rejected_before_any_op(set_timer(activate_at=moment), NaiveDatetimeError, "timezone-aware")


@pytest.mark.parametrize(
    ("period", "at"),
    [
        (None, None),
        (datetime.timedelta(seconds=1), datetime.datetime(2030, 1, 1, tzinfo=UTC)),
    ],
    ids=["neither", "both"],
)
def test_set_timer_needs_exactly_one_of_period_and_instant(period: Any, at: Any) -> None:
    assert_rejected_before_any_op(set_timer(activation_period=period, activate_at=at), ActivationError, "exactly one")


@pytest.mark.parametrize(
    ("period", "at", "match"),
    [
        (datetime.timedelta(microseconds=-1), None, "negative"),
        (datetime.timedelta(days=-1), None, "negative"),
        (datetime.timedelta(days=365 * 100 + 1), None, "100 years"),
        (5, None, "timedelta"),
        (5.0, None, "timedelta"),
        (None, datetime.date(2030, 1, 1), "datetime.datetime"),
        (None, "2030-01-01T00:00:00Z", "datetime.datetime"),
        (None, datetime.datetime(1969, 12, 31, 23, 59, 59, 998000, tzinfo=UTC), "1970"),
    ],
)
def test_set_timer_with_an_invalid_activation_raises(period: Any, at: Any, match: str) -> None:
    flow = set_timer(activation_period=period, activate_at=at)

    with pytest.raises(ActivationError, match=match) as caught:
        next(flow)
    assert isinstance(caught.value, InvalidTimerError)
    assert isinstance(caught.value, ValueError)


def test_set_timer_checks_the_topic_before_anything_else() -> None:
    assert_rejected_before_any_op(set_timer(topic="nope", timer_id="", payload=None), HandlerNotFoundError)


# -- remove_timer ---------------------------------------------------------------------------


@pytest.mark.parametrize(("reply", "expected"), [(1, True), (0, False), (b"1", True)])
def test_remove_timer(reply: Any, expected: bool) -> None:
    ops, removed = run_flow(flows.remove_timer(NAMESPACE, REGISTRY, "orders", "o-1"), [reply])

    assert ops == [ScriptCall(scripts.REMOVE_TIMER, ORDER_WRITE_KEYS, ("o-1",))]
    assert removed is expected


def test_remove_timer_for_an_unknown_topic_raises() -> None:
    assert_rejected_before_any_op(
        flows.remove_timer(NAMESPACE, REGISTRY, "invoices", "o-1"), HandlerNotFoundError, "Handler is not found"
    )


@pytest.mark.parametrize("timer_id", ["", "x" * 1025, 3])
def test_remove_timer_with_a_bad_id_raises(timer_id: Any) -> None:
    assert_rejected_before_any_op(flows.remove_timer(NAMESPACE, REGISTRY, "orders", timer_id), InvalidTimerIdError)


# -- get_timer ------------------------------------------------------------------------------


@BYTES_OR_STR
def test_get_timer_of_a_running_timer(as_bytes: bool) -> None:
    # get_timer.lua replies the due time, and the lease's end while a lease is live.
    reply = encode(["1700000000123", ORDER_JSON, "2", "1700000030124", "ValueError: boom"], as_bytes)

    ops, info = run_flow(flows.get_timer(NAMESPACE, REGISTRY, "orders", "o-1"), [reply])

    assert ops == [ScriptCall(scripts.GET_TIMER, ORDER_KEYS, ("o-1",))]
    assert info == TimerInfo(
        topic="orders",
        timer_id="o-1",
        due_at=datetime.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC),
        payload=ORDER,
        attempts=2,
        running=True,
        last_error="ValueError: boom",
        lease_expires_at=datetime.datetime(2023, 11, 14, 22, 13, 50, 124000, tzinfo=UTC),
    )


@BYTES_OR_STR
def test_get_timer_of_a_fresh_timer(as_bytes: bool) -> None:
    reply = encode(["1700000000000", ORDER_JSON, None, None, None], as_bytes)

    _, info = run_flow(flows.get_timer(NAMESPACE, REGISTRY, "orders", "o-1"), [reply])

    assert info is not None
    assert info.attempts == 0
    assert info.running is False
    assert info.lease_expires_at is None
    assert info.last_error is None
    assert info.due_at == datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert info.due_at.tzinfo is not None


@pytest.mark.parametrize("reply", [None, []])
def test_get_timer_of_a_missing_timer_returns_none(reply: Any) -> None:
    _, info = run_flow(flows.get_timer(NAMESPACE, REGISTRY, "orders", "o-1"), [reply])

    assert info is None


@pytest.mark.parametrize("body", ['{"text": "not an order"}', "not json", None], ids=["other-schema", "junk", "gone"])
def test_get_timer_whose_stored_payload_no_longer_validates_raises(body: str | None) -> None:
    flow = flows.get_timer(NAMESPACE, REGISTRY, "orders", "o-1")
    assert isinstance(next(flow), ScriptCall)

    with pytest.raises(StoredPayloadError, match="no longer validates"):
        flow.send(["1700000000000", body, "1", None, None])


def test_get_timer_for_an_unknown_topic_or_bad_id_raises() -> None:
    assert_rejected_before_any_op(flows.get_timer(NAMESPACE, REGISTRY, "invoices", "o-1"), HandlerNotFoundError)
    assert_rejected_before_any_op(flows.get_timer(NAMESPACE, REGISTRY, "orders", ""), InvalidTimerIdError)


# -- dead letters ---------------------------------------------------------------------------


def _record(payload: str, attempts: int, error: str, failed_at: int) -> str:
    return json.dumps({"payload": payload, "attempts": attempts, "error": error, "failed_at": failed_at})


@BYTES_OR_STR
def test_dead_letters_are_parsed_and_sorted_by_failure_time(as_bytes: bool) -> None:
    reply = encode(
        {
            "reminders\0r-1": _record('{"text":"x"}', 1, "payload does not validate", 1_700_000_000_500),
            "orders\0o-2\0with-nul": _record(ORDER_JSON, 5, "ValueError: boom", 1_700_000_000_000),
            "orders\0o-1": _record(ORDER_JSON, 5, "ValueError: boom", 1_700_000_000_000),
        },
        as_bytes,
    )

    ops, letters = run_flow(flows.dead_letters(NAMESPACE), [reply])

    assert ops == [Command(("HGETALL", "{timers}:dead"))]
    failed = datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert letters == [
        DeadLetter("orders", "o-1", ORDER_JSON, 5, "ValueError: boom", failed),
        DeadLetter("orders", "o-2\0with-nul", ORDER_JSON, 5, "ValueError: boom", failed),
        DeadLetter(
            "reminders",
            "r-1",
            '{"text":"x"}',
            1,
            "payload does not validate",
            failed + datetime.timedelta(milliseconds=500),
        ),
    ]
    assert letters[0].payload_as(Order) == ORDER


@BYTES_OR_STR
def test_dead_letters_from_a_flat_resp2_reply(as_bytes: bool) -> None:
    """A RESP2 `HGETALL` that the client did not convert is a flat field, value, field, value... array."""
    reply = encode(
        [
            "orders\0o-2",
            _record(ORDER_JSON, 5, "ValueError: boom", 1_700_000_000_500),
            "orders\0o-1",
            _record(ORDER_JSON, 2, "bad", 1_700_000_000_000),
        ],
        as_bytes,
    )

    _, letters = run_flow(flows.dead_letters(NAMESPACE), [reply])

    assert [(letter.timer_id, letter.attempts) for letter in letters] == [("o-1", 2), ("o-2", 5)]


@pytest.mark.parametrize("reply", [{}, [], None], ids=["map", "array", "nil"])
def test_dead_letters_when_there_are_none(reply: Any) -> None:
    _, letters = run_flow(flows.dead_letters(NAMESPACE), [reply])

    assert letters == []


@pytest.mark.parametrize(("reply", "expected"), [(1, True), (0, False)])
def test_requeue_dead_letter(reply: int, expected: bool) -> None:
    ops, requeued = run_flow(flows.requeue_dead_letter(NAMESPACE, TimersSettings(), "orders", "o--1"), [reply])

    assert ops == [
        ScriptCall(
            scripts.REQUEUE_DEAD_LETTER,
            ("{timers}:dead", *ORDER_WRITE_KEYS),
            ("orders\0o--1", "o--1", "{timers}:wake:orders"),
        )
    ]
    assert requeued is expected
    assert isinstance(ops[0], ScriptCall)
    assert_single_slot(ops[0].keys, "timers")


@pytest.mark.parametrize("timer_id", ["", "x" * 1025, None])
def test_requeue_dead_letter_with_a_bad_id_raises(timer_id: Any) -> None:
    assert_rejected_before_any_op(
        flows.requeue_dead_letter(NAMESPACE, TimersSettings(), "orders", timer_id), InvalidTimerIdError
    )


@pytest.mark.parametrize("reply", [3, b"3"])
def test_purge_dead_letters(reply: Any) -> None:
    ops, purged = run_flow(flows.purge_dead_letters(NAMESPACE), [reply])

    assert ops == [ScriptCall(scripts.PURGE_DEAD_LETTERS, ("{timers}:dead",), ())]
    assert purged == 3


# -- known bugs -----------------------------------------------------------------------------


def test_set_timer_with_an_id_that_is_not_encodable_as_utf8_raises_invalid_timer_id() -> None:
    flow = set_timer(timer_id="order-\ud800", activation_period=datetime.timedelta(seconds=1))

    assert_rejected_before_any_op(flow, InvalidTimerIdError)


def test_set_timer_with_an_unhashable_topic_raises_handler_not_found() -> None:
    flow = set_timer(topic=["orders"], activation_period=datetime.timedelta(seconds=1))

    assert_rejected_before_any_op(flow, HandlerNotFoundError)


def test_requeue_dead_letter_refuses_a_topic_no_handler_can_have() -> None:
    assert_rejected_before_any_op(flows.requeue_dead_letter(NAMESPACE, TimersSettings(), "orders\0o", "1"), TimersError)
