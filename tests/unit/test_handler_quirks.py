"""What handlers and schemas do wrong, decided by the core: no Redis, scripted claims."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import inspect
from collections.abc import Iterator
from typing import Any

import pydantic
import pytest

from redis_timers import codec, flows
from redis_timers.engine import Finished
from redis_timers.errors import PayloadTypeError, StoredPayloadError, UnstorablePayloadError
from redis_timers.keys import Namespace
from redis_timers.registry import HandlerRegistry, awaitable_result_error
from redis_timers.router import Router
from tests.unit.engine_harness import ORDERS, Harness, claim, settlements
from tests.unit.support import Order

# -- describing an exception never fails ------------------------------------------------------


class StrRaises(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


class StrAndReprRaise(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class StrReturnsNonStr(Exception):
    def __str__(self) -> Any:
        return 42  # noqa: PLE0307 - the point of the test


class HostileStr(str):
    """A str subclass whose own methods all raise: only str's are safe to call on it."""

    def __add__(self, other: Any) -> Any:
        raise RuntimeError("no +")

    def __radd__(self, other: Any) -> Any:
        raise RuntimeError("no +")

    def __format__(self, spec: str) -> str:
        raise RuntimeError("no format")

    def __getitem__(self, index: Any) -> Any:
        raise RuntimeError("no slicing")

    def __len__(self) -> int:
        raise RuntimeError("no len")


class StrReturnsHostileStr(Exception):
    def __str__(self) -> str:
        return HostileStr("hostile")


class HugeStr(Exception):
    def __str__(self) -> str:
        return "x" * 10_000_000


class Unwinding(BaseException):
    """Not an Exception: what a framework's control-flow exception looks like."""


class StrAndReprRaiseBase(Exception):
    def __str__(self) -> str:
        raise Unwinding("no str")

    def __repr__(self) -> str:
        raise Unwinding("no repr")


class NamelessMeta(type):
    """A metaclass hiding its classes' names while `hostile`: `__name__`, `__qualname__` and `__module__` raise.

    Only while: pytest itself needs the names to report a failure.
    """

    hostile = False

    def __getattribute__(cls, name: str) -> Any:
        if NamelessMeta.hostile and name in ("__name__", "__qualname__", "__module__"):
            raise Unwinding(f"no {name}")
        return type.__getattribute__(cls, name)


class Nameless(Exception, metaclass=NamelessMeta):
    pass


@contextlib.contextmanager
def hostile_names() -> Iterator[None]:
    NamelessMeta.hostile = True
    try:
        yield
    finally:
        NamelessMeta.hostile = False


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (StrRaises("a"), "StrRaises: StrRaises('a')"),
        (StrAndReprRaise(), "StrAndReprRaise"),
        (StrReturnsNonStr("b"), "StrReturnsNonStr: StrReturnsNonStr('b')"),
        (StrReturnsHostileStr(), "StrReturnsHostileStr: hostile"),
        (StrAndReprRaiseBase(), "StrAndReprRaiseBase"),
        (Nameless("c"), "Nameless: c"),
    ],
    ids=["str-raises", "str-and-repr-raise", "str-returns-int", "str-subclass", "str-raises-base", "nameless-type"],
)
def test_an_exception_is_described_whatever_its_str_does(error: BaseException, expected: str) -> None:
    with hostile_names():
        description = codec.describe_error(error)
    assert description == expected
    assert type(description) is str


def test_a_huge_exception_text_is_cut_to_the_limit() -> None:
    description = codec.describe_error(HugeStr())
    assert description == "HugeStr: " + "x" * (codec.MAX_ERROR_CHARS - len("HugeStr: ")) + "..."


@pytest.mark.parametrize(
    "error", [StrRaises(), StrAndReprRaise(), StrReturnsNonStr(), HugeStr(), StrAndReprRaiseBase(), Nameless()]
)
@pytest.mark.parametrize("max_attempts", [3, 1], ids=["retried", "dead-lettered"])
def test_a_handler_whose_exception_cannot_be_printed_is_settled(error: BaseException, max_attempts: int) -> None:
    """Its traceback is logged too: if formatting that raises, the failure is logged without it."""
    h = Harness(max_attempts=max_attempts)
    [run] = h.start(claim(ORDERS, "o-1", "1.1"))

    with hostile_names():
        h.engine.handler_finished(run, error)

    [(kind, _, timer_id, _, _, recorded)] = settlements(h.cycle(0.1))
    assert (kind, timer_id) == ("retry" if max_attempts > 1 else "dead", "o-1")
    assert str(recorded).startswith(type.__dict__["__name__"].__get__(type(error)))


# -- validators that raise anything --------------------------------------------------------------


class Abort(BaseException):
    """Not an Exception: what a framework's control-flow exception looks like."""


FAILURES: dict[str, type[BaseException]] = {
    "runtime": RuntimeError,
    "key": KeyError,
    "lookup": LookupError,
    "cancelled": asyncio.CancelledError,  # a validator can't be cancelled: it is running no await
    "base": Abort,
    "generator-exit": GeneratorExit,
}


class Picky(pydantic.BaseModel):
    """Validates like `Order` unless `note` names an exception to raise."""

    order_id: int
    note: str = ""

    @pydantic.field_validator("note")
    @classmethod
    def raise_on_request(cls, note: str) -> str:
        if note in FAILURES:
            raise FAILURES[note](f"validator refuses {note!r}")
        if note == "exit":
            raise SystemExit(3)
        if note == "interrupt":
            raise KeyboardInterrupt
        return note


def picky_registry(max_attempts: int | None = None) -> HandlerRegistry:
    registry = HandlerRegistry(separator="--", accepts_async=False, front_end="unit-test")
    router = Router()
    router.handler(topic="orders", schema=Picky, max_attempts=max_attempts)(lambda payload, context: None)
    registry.include(router)
    return registry


@pytest.mark.parametrize("note", list(FAILURES))
def test_a_validator_raising_anything_dead_letters_that_timer_and_runs_the_others(note: str) -> None:
    h = Harness(registry=picky_registry())

    runs = h.start(
        claim(ORDERS, "before", "1.1", body='{"order_id": 1}'),
        claim(ORDERS, "poisoned", "1.2", body=f'{{"order_id": 2, "note": "{note}"}}'),
        claim(ORDERS, "after", "1.3", body='{"order_id": 3}'),
    )

    assert [(run.timer_id, run.payload) for run in runs] == [
        ("before", Picky(order_id=1)),
        ("after", Picky(order_id=3)),
    ]
    assert h.engine.in_flight == 2
    [(kind, _, timer_id, token, _, error)] = settlements(h.cycle(0.0))
    assert (kind, timer_id, token) == ("dead", "poisoned", "1.2")
    assert str(error).startswith(
        f"payload does not validate against Picky: its validation raised {FAILURES[note].__name__}"
    )


@pytest.mark.parametrize(("note", "kind"), [("exit", SystemExit), ("interrupt", KeyboardInterrupt)])
def test_a_stop_request_raised_in_a_validator_stops_the_worker_gracefully_and_buries_nothing(
    note: str, kind: type[BaseException]
) -> None:
    """Ctrl-C, or `sys.exit` in a signal handler, may land while a validator runs: not the payload's fault.

    The worker stops as `stop()` would, then raises it. The reply's other claims are handed back (not
    attempts); the timer being validated keeps its lease, an attempt.
    """
    h = Harness(registry=picky_registry())
    [earlier] = h.start(claim(ORDERS, "earlier", "1.1", body='{"order_id": 1}'))
    h.engine.handler_finished(earlier, None)
    h.cycle(0.1)

    runs = h.reply(
        0.1,
        claim(ORDERS, "before", "2.1", body='{"order_id": 2}'),
        claim(ORDERS, "stopper", "2.2", body=f'{{"order_id": 3, "note": "{note}"}}'),
        claim(ORDERS, "after", "2.3", body='{"order_id": 4}'),
    )

    assert runs == []
    assert h.engine.stopping
    assert h.engine.in_flight == 0
    assert [(kind, timer_id, token) for kind, _, timer_id, token, _, _ in settlements(h.cycle(0.2))] == [
        ("release", "before", "2.1"),
        ("release", "after", "2.3"),
    ]
    h.reply(0.2)
    step = h.step(0.3)
    assert isinstance(step, Finished)
    assert isinstance(step.error, kind)


# -- a timer its workers never finish -------------------------------------------------------------


@pytest.mark.parametrize(("limit", "attempts", "runs"), [(3, 3, 1), (3, 4, 0), (3, 9, 0), (1, 2, 0)])
def test_a_timer_claimed_more_often_than_its_attempts_is_dead_lettered_without_running(
    limit: int, attempts: int, runs: int
) -> None:
    """Attempts are counted at claim time: over the limit means its runs crashed their workers."""
    h = Harness(max_attempts=limit)

    claimed = h.start(claim(ORDERS, "o-1", "5.1", attempts=attempts))

    assert len(claimed) == runs
    if runs:
        return
    [(kind, _, timer_id, token, _, error)] = settlements(h.cycle(0.0))
    assert (kind, timer_id, token) == ("dead", "o-1", "5.1")
    assert error == (
        f"claimed {attempts} times without finishing (worker died or lease ran out); the limit is {limit} attempt(s)"
    )


def test_the_handlers_max_attempts_is_the_limit_at_claim_time() -> None:
    h = Harness(registry=picky_registry(max_attempts=1), max_attempts=10)

    claimed = h.start(claim(ORDERS, "o-1", "5.1", attempts=2, body='{"order_id": 1}'))

    assert claimed == []
    [(kind, *_, error)] = settlements(h.cycle(0.0))
    assert kind == "dead"
    assert "the limit is 1 attempt(s)" in str(error)


def test_a_validator_is_not_called_for_a_timer_claimed_too_often() -> None:
    """A validator that kills its worker (SystemExit) is what makes such a timer: it must not run again."""
    h = Harness(registry=picky_registry(max_attempts=2))

    claimed = h.start(claim(ORDERS, "o-1", "5.1", attempts=3, body='{"order_id": 1, "note": "exit"}'))

    assert claimed == []
    assert [settlement[0] for settlement in settlements(h.cycle(0.0))] == ["dead"]


# -- set_timer and get_timer: typed errors, nothing written -------------------------------------------


class HoldsAnything(pydantic.BaseModel):
    value: Any


class SerializerRaises(pydantic.BaseModel):
    n: int

    @pydantic.field_serializer("n")
    def explode(self, n: int) -> int:
        raise RuntimeError("field serializer refuses")


class ModelSerializerRaises(pydantic.BaseModel):
    n: int

    @pydantic.model_serializer
    def explode(self) -> dict[str, Any]:
        raise LookupError("model serializer refuses")


def schema_registry(schema: type[pydantic.BaseModel]) -> HandlerRegistry:
    registry = HandlerRegistry(separator="--", accepts_async=False, front_end="unit-test")
    router = Router()
    router.handler(topic="t", schema=schema)(lambda payload, context: None)
    registry.include(router)
    return registry


@pytest.mark.parametrize(
    "payload",
    [
        HoldsAnything(value=object()),
        SerializerRaises(n=1),
        ModelSerializerRaises(n=1),
        Picky.model_construct(order_id=1, note="runtime"),  # bypasses the validator, which refuses on the way back
        Picky.model_construct(order_id=1, note="base"),
    ],
    ids=["any-object", "field-serializer", "model-serializer", "validator-raises", "validator-raises-base"],
)
def test_a_payload_that_cannot_be_stored_is_a_typed_error_before_any_write(payload: pydantic.BaseModel) -> None:
    registry = schema_registry(type(payload))

    flow = flows.set_timer(Namespace("timers"), registry, "t", "a", payload, datetime.timedelta(0), None)
    with pytest.raises(UnstorablePayloadError) as raised:
        next(flow)  # the first op would be the write

    assert isinstance(raised.value, PayloadTypeError)
    assert type(payload).__name__ in str(raised.value)


def test_get_timer_of_a_payload_whose_validator_raises_is_a_stored_payload_error() -> None:
    registry = schema_registry(Picky)
    flow = flows.get_timer(Namespace("timers"), registry, "t", "a")
    next(flow)

    with pytest.raises(StoredPayloadError, match="RuntimeError: validator refuses 'runtime'"):
        flow.send([1, b'{"order_id": 1, "note": "runtime"}', None, None, None])


# -- a plain def that returns an awaitable --------------------------------------------------------


async def does_the_work() -> None:
    raise AssertionError("never awaited by the sync front end")


def test_an_awaitable_returned_to_a_front_end_that_cannot_await_is_a_closed_failure() -> None:
    coroutine = does_the_work()

    error = awaitable_result_error("orders", coroutine)

    assert isinstance(error, TypeError)
    assert "redis_timers.aio.Timers" in str(error)
    assert "'orders'" in str(error)
    assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED


@pytest.mark.parametrize("result", [None, 0, "done", Order(order_id=1), [1, 2]])
def test_other_return_values_are_ignored(result: object) -> None:
    assert awaitable_result_error("orders", result) is None


@pytest.mark.parametrize(("note", "kind"), [("exit", SystemExit), ("interrupt", KeyboardInterrupt)])
def test_a_stop_request_from_a_validator_at_set_timer_propagates_before_any_write(
    note: str, kind: type[BaseException]
) -> None:
    flow = flows.set_timer(
        Namespace("timers"),
        schema_registry(Picky),
        "t",
        "a",
        Picky.model_construct(order_id=1, note=note),
        datetime.timedelta(0),
        None,
    )
    with pytest.raises(kind):
        next(flow)
