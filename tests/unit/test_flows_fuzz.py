"""Fuzzed input to the flows: valid input yields exactly one script call, invalid input raises before any op."""

from __future__ import annotations

import datetime
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

from redis_timers import flows, scripts
from redis_timers.errors import (
    ActivationError,
    HandlerNotFoundError,
    InvalidTimerIdError,
    NaiveDatetimeError,
    PayloadTypeError,
    TimersError,
)
from redis_timers.keys import Namespace
from redis_timers.ops import ScriptCall
from redis_timers.settings import TimersSettings
from tests.unit.support import Order, Reminder, assert_single_slot, make_registry, run_flow

UTC = datetime.timezone.utc
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = datetime.timedelta(microseconds=1)
HUNDRED_YEARS = datetime.timedelta(days=100 * 365)
NAMESPACE = Namespace("timers")
KEYSPACE = NAMESPACE.keyspaces[0]
REGISTRY = make_registry()
PAYLOADS: dict[str, Any] = {"orders": Order(order_id=1), "reminders": Reminder(text="r")}

FUZZ = hypothesis.settings(max_examples=60, deadline=None)

valid_ids = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=256),
    st.integers(min_value=1, max_value=1024).map(lambda n: "i" * n),
    st.integers(min_value=1, max_value=256).map(lambda n: "\U0001f600" * n),  # four UTF-8 bytes each
)
invalid_ids = st.one_of(
    st.just(""),
    st.integers(min_value=1025, max_value=4000).map(lambda n: "i" * n),
    st.integers(min_value=257, max_value=400).map(lambda n: "\U0001f600" * n),
    st.integers(),
    st.binary(min_size=1, max_size=20),
    st.none(),
    st.lists(st.text(), max_size=2),
)
offsets = st.timedeltas(
    min_value=-datetime.timedelta(hours=23, minutes=59), max_value=datetime.timedelta(hours=23, minutes=59)
).map(datetime.timezone)
valid_periods = st.timedeltas(min_value=datetime.timedelta(0), max_value=HUNDRED_YEARS)
negative_periods = st.timedeltas(max_value=-ONE_US)
too_far_periods = st.timedeltas(min_value=HUNDRED_YEARS + ONE_US)
valid_instants = st.datetimes(
    min_value=datetime.datetime(1970, 1, 2), max_value=datetime.datetime(9998, 12, 31), timezones=offsets
)
pre_epoch_instants = st.datetimes(max_value=datetime.datetime(1969, 12, 30), timezones=offsets)
naive_instants = st.datetimes()
unknown_topics = st.one_of(st.text().filter(lambda topic: topic not in PAYLOADS), st.integers(), st.none())


def ceil_ms(span: datetime.timedelta) -> int:
    """Whole milliseconds, rounded up, computed independently of the library (integer microseconds)."""
    microseconds = span // ONE_US
    return -(-microseconds // 1000)


@FUZZ
@hypothesis.given(
    topic=st.sampled_from(sorted(PAYLOADS)),
    timer_id=valid_ids,
    activation=st.one_of(
        valid_periods.map(lambda period: ("in", period)),
        valid_instants.map(lambda instant: ("at", instant)),
    ),
)
def test_valid_set_timer_yields_exactly_one_script_call(topic: str, timer_id: str, activation: tuple[str, Any]) -> None:
    mode, value = activation
    period, instant = (value, None) if mode == "in" else (None, value)

    ops, due_ms = run_flow(
        flows.set_timer(NAMESPACE, REGISTRY, topic, timer_id, PAYLOADS[topic], period, instant), [4242]
    )

    assert due_ms == 4242
    assert len(ops) == 1
    call = ops[0]
    assert isinstance(call, ScriptCall)
    assert call.script is scripts.SET_TIMER
    assert_single_slot(call.keys, "timers")
    assert call.args[0] == timer_id
    assert call.args[2] == mode
    milliseconds = call.args[3]
    assert isinstance(milliseconds, int)
    span = value if mode == "in" else value - EPOCH
    # Never early, and less than one millisecond late.
    assert milliseconds == ceil_ms(span)
    assert (
        datetime.timedelta(0)
        <= datetime.timedelta(milliseconds=milliseconds) - span
        < datetime.timedelta(milliseconds=1)
    )


@FUZZ
@hypothesis.given(timer_id=invalid_ids)
def test_invalid_ids_raise_before_any_op_in_every_flow(timer_id: Any) -> None:
    for flow in (
        flows.set_timer(NAMESPACE, REGISTRY, "orders", timer_id, PAYLOADS["orders"], datetime.timedelta(0), None),
        flows.remove_timer(NAMESPACE, REGISTRY, "orders", timer_id),
        flows.get_timer(NAMESPACE, REGISTRY, "orders", timer_id),
        flows.requeue_dead_letter(NAMESPACE, TimersSettings(), "orders", timer_id),
    ):
        with pytest.raises(InvalidTimerIdError):
            next(flow)


@FUZZ
@hypothesis.given(timer_id=valid_ids)
def test_valid_ids_reach_redis_unchanged_in_every_flow(timer_id: str) -> None:
    for flow in (
        flows.remove_timer(NAMESPACE, REGISTRY, "orders", timer_id),
        flows.get_timer(NAMESPACE, REGISTRY, "orders", timer_id),
        flows.requeue_dead_letter(NAMESPACE, TimersSettings(), "orders", timer_id),
    ):
        call = next(flow)
        assert isinstance(call, ScriptCall)
        assert timer_id in call.args
        assert_single_slot(call.keys, "timers")


@FUZZ
@hypothesis.given(topic=unknown_topics)
def test_unknown_topics_raise_handler_not_found(topic: Any) -> None:
    for flow in (
        flows.set_timer(NAMESPACE, REGISTRY, topic, "t", PAYLOADS["orders"], datetime.timedelta(0), None),
        flows.remove_timer(NAMESPACE, REGISTRY, topic, "t"),
        flows.get_timer(NAMESPACE, REGISTRY, topic, "t"),
    ):
        with pytest.raises(HandlerNotFoundError, match="Handler is not found"):
            next(flow)


# One broken aspect at a time; each must be refused with the matching TimersError subclass.
invalid_requests = st.one_of(
    st.tuples(st.just("topic"), unknown_topics, st.just(HandlerNotFoundError)),
    st.tuples(st.just("timer_id"), invalid_ids, st.just(InvalidTimerIdError)),
    st.tuples(
        st.just("payload"),
        st.one_of(st.just(PAYLOADS["reminders"]), st.dictionaries(st.text(), st.integers()), st.none()),
        st.just(PayloadTypeError),
    ),
    st.tuples(st.just("activation_period"), negative_periods, st.just(ActivationError)),
    st.tuples(st.just("activation_period"), too_far_periods, st.just(ActivationError)),
    st.tuples(st.just("activate_at"), naive_instants, st.just(NaiveDatetimeError)),
    st.tuples(st.just("activate_at"), pre_epoch_instants, st.just(ActivationError)),
    st.tuples(st.just("both"), st.tuples(valid_periods, valid_instants), st.just(ActivationError)),
    st.tuples(st.just("neither"), st.none(), st.just(ActivationError)),
)


@hypothesis.settings(max_examples=150, deadline=None)
@hypothesis.given(broken=invalid_requests)
def test_invalid_set_timer_raises_a_timers_error_and_yields_nothing(broken: tuple[str, Any, type[Exception]]) -> None:
    aspect, value, expected = broken
    request: dict[str, Any] = {
        "topic": "orders",
        "timer_id": "t",
        "payload": PAYLOADS["orders"],
        "activation_period": datetime.timedelta(seconds=1),
        "activate_at": None,
    }
    if aspect == "activate_at":
        request["activation_period"] = None
        request["activate_at"] = value
    elif aspect == "both":
        request["activation_period"], request["activate_at"] = value
    elif aspect == "neither":
        request["activation_period"] = None
    else:
        request[aspect] = value
    flow = flows.set_timer(NAMESPACE, REGISTRY, **request)

    with pytest.raises(TimersError) as caught:
        next(flow)
    assert isinstance(caught.value, expected)
