"""Nothing a handler or a schema does kills the worker, loses a timer or runs it forever."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import inspect
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest

from redis_timers import (
    HandlerRegistrationError,
    Router,
    StoredPayloadError,
    TimersSettings,
    UnstorablePayloadError,
)
from tests.harness import Front, Recorder, TimersHarness, running, server_time_ms, spec, wait_until
from tests.scenarios.models import Job
from tests.scenarios.worker_process import STARTED_KEY, TOPIC, CrashPayload

NOW = datetime.timedelta(0)
FAST_RETRIES = TimersSettings(max_attempts=2, retry_backoff_seconds=0.02)
REPO_ROOT = Path(__file__).resolve().parents[2]


class Abort(BaseException):
    """Not an Exception: like a framework's control-flow exception."""


RAISED: dict[str, Callable[[str], BaseException]] = {
    "runtime": RuntimeError,
    "key": KeyError,
    "lookup": LookupError,
    "cancelled": asyncio.CancelledError,
    "base": Abort,
}


class Picky(pydantic.BaseModel):
    """A schema whose validator raises whatever `note` names (pydantic passes on all but ValueError/AssertionError)."""

    n: int
    note: str = ""

    @pydantic.field_validator("note")
    @classmethod
    def raise_on_request(cls, note: str) -> str:
        if note in RAISED:
            raise RAISED[note](f"refused {note}")
        if note == "exit":
            raise SystemExit(f"validator exits on {note}")
        return note


class Loose(pydantic.BaseModel):
    """Writes what `Picky` will refuse when the timer fires (a schema changed between deployments)."""

    n: int
    note: str = ""


# -- point 2: validators raising anything -----------------------------------------------------------


@pytest.mark.parametrize("note", list(RAISED))
def test_a_validator_raising_anything_dead_letters_its_timer_and_runs_the_others(front: Front, note: str) -> None:
    calls: Recorder[int] = Recorder()
    reader = front.timers(spec("jobs", Picky, lambda payload, context: calls.record(payload.n)))
    writer = front.timers(spec("jobs", Loose, lambda payload, context: None))
    for n in range(3):
        reader.set_timer("jobs", f"fine-{n}", Picky(n=n), NOW)
    writer.set_timer("jobs", "poisoned", Loose(n=99, note=note), NOW)
    for n in range(3, 6):
        reader.set_timer("jobs", f"fine-{n}", Picky(n=n), NOW)

    with running(reader):
        calls.wait_for(6)
        wait_until(lambda: front.raw.hlen("{timers}:dead") == 1)
        assert reader.worker_running
        reader.set_timer("jobs", "after", Picky(n=7), NOW)
        assert calls.wait_for(7)[-1] == 7

    assert sorted(calls.items) == [0, 1, 2, 3, 4, 5, 7]
    (letter,) = reader.dead_letters()
    assert letter.timer_id == "poisoned"
    assert letter.attempts == 1
    assert f"Picky: its validation raised {type(RAISED[note]('')).__name__}: " in letter.error
    assert letter.payload_as(Loose) == Loose(n=99, note=note)
    assert front.timer_data() == ["{timers}:dead"]


@pytest.mark.parametrize("note", [*RAISED, "exit"])
def test_set_timer_with_a_payload_its_validator_refuses_is_a_typed_error_and_writes_nothing(
    front: Front, note: str
) -> None:
    timers = front.timers(spec("jobs", Picky, lambda payload, context: None))
    payload = Picky.model_construct(n=1, note=note)  # skips the validator, which runs again in set_timer

    if note == "exit":
        # A stop request is never turned into a library error (it may be Ctrl-C landing there).
        with pytest.raises(SystemExit):
            timers.set_timer("jobs", "a", payload, NOW)
    else:
        with pytest.raises(UnstorablePayloadError, match="does not survive a JSON round trip through Picky"):
            timers.set_timer("jobs", "a", payload, NOW)
    assert front.all_keys() == []


class Opaque:
    """Something pydantic has no JSON for."""


class HoldsAnything(pydantic.BaseModel):
    value: Any


class FieldSerializerRaises(pydantic.BaseModel):
    n: int

    @pydantic.field_serializer("n")
    def refuse(self, n: int) -> int:
        raise RuntimeError("cannot serialize n")


class ModelSerializerRaises(pydantic.BaseModel):
    n: int

    @pydantic.model_serializer
    def refuse(self) -> dict[str, Any]:
        raise Abort("cannot serialize at all")


@pytest.mark.parametrize(
    "payload",
    [HoldsAnything(value=Opaque()), FieldSerializerRaises(n=1), ModelSerializerRaises(n=1)],
    ids=["any-holding-an-object", "field-serializer-raises", "model-serializer-raises-base"],
)
def test_an_unserializable_payload_is_a_typed_error_and_writes_nothing(
    front: Front, payload: pydantic.BaseModel
) -> None:
    timers = front.timers(spec("jobs", type(payload), lambda payload, context: None))
    with pytest.raises(UnstorablePayloadError, match="cannot be serialized to JSON"):
        timers.set_timer("jobs", "a", payload, NOW)
    assert front.all_keys() == []


def test_get_timer_of_a_payload_its_validator_refuses_is_a_stored_payload_error(front: Front) -> None:
    reader = front.timers(spec("jobs", Picky, lambda payload, context: None))
    writer = front.timers(spec("jobs", Loose, lambda payload, context: None))
    writer.set_timer("jobs", "a", Loose(n=1, note="key"), datetime.timedelta(hours=1))

    with pytest.raises(StoredPayloadError, match="KeyError"):
        reader.get_timer("jobs", "a")
    assert writer.get_timer("jobs", "a") is not None  # nothing changed


# -- point 3: a plain def that returns an awaitable --------------------------------------------------


def test_a_plain_def_returning_an_awaitable_is_awaited_or_failed_never_acked_unrun(front: Front) -> None:
    """A decorator's plain wrapper around an `async def`: async front end awaits it; sync can't."""
    done: Recorder[int] = Recorder()
    returned: Recorder[Coroutine[Any, Any, None]] = Recorder()

    async def work(payload: Job, context: dict[str, Any]) -> None:
        done.record(payload.n)

    def plain_wrapper(payload: Job, context: dict[str, Any]) -> Coroutine[Any, Any, None]:
        coroutine = work(payload, context)
        returned.record(coroutine)
        return coroutine

    router = Router()
    router.handler(topic="jobs", schema=Job, max_attempts=1)(plain_wrapper)
    timers = front.timers(routers=[router])
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    timers.handle_ready_timers()

    (coroutine,) = returned.items
    if front.is_async:
        assert done.items == [1]
        assert timers.dead_letters() == []
        assert front.timer_data() == []
        return
    assert done.items == []
    assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED  # no "never awaited" warning
    (letter,) = timers.dead_letters()
    assert letter.timer_id == "a"
    assert letter.error.startswith("TypeError: handler for topic 'jobs' returned coroutine (an awaitable)")
    assert "redis_timers.aio.Timers" in letter.error


def test_a_handlers_return_value_is_ignored(front: Front) -> None:
    calls: Recorder[int] = Recorder()

    def returns_something(payload: Job, context: dict[str, Any]) -> object:
        calls.record(payload.n)
        return {"ignored": True}

    router = Router()
    router.handler(topic="jobs", schema=Job)(returns_something)
    timers = front.timers(routers=[router])
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    timers.handle_ready_timers()
    assert calls.items == [1]
    assert timers.dead_letters() == []
    assert front.timer_data() == []


# -- point 4: a CancelledError of the handler's own --------------------------------------------------


async def awaits_a_future_cancelled_elsewhere(payload: Job, context: dict[str, Any]) -> None:
    context["attempts"].record(payload.n)
    future = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(future.cancel)  # neither the handler nor the worker is cancelled
    await future


@pytest.mark.parametrize("front", ["async"], indirect=True)
def test_a_handlers_own_cancelled_error_is_a_failed_attempt_and_the_worker_goes_on(front: Front) -> None:
    attempts: Recorder[int] = Recorder()
    good: Recorder[int] = Recorder()
    router = Router()
    router.handler(topic="cancelled", schema=Job)(awaits_a_future_cancelled_elsewhere)

    async def fine(payload: Job, context: dict[str, Any]) -> None:
        good.record(payload.n)

    router.handler(topic="fine", schema=Job)(fine)
    timers = front.timers(routers=[router], context={"attempts": attempts}, settings=FAST_RETRIES)
    timers.set_timer("cancelled", "a", Job(n=1), NOW)
    with running(timers):
        attempts.wait_for(2)  # retried once
        wait_until(lambda: front.raw.hlen("{timers}:dead") == 1)
        timers.set_timer("fine", "b", Job(n=2), NOW)
        assert good.wait_for(1) == [2]
        assert timers.worker_running
    (letter,) = timers.dead_letters()
    assert (letter.timer_id, letter.attempts) == ("a", 2)
    assert letter.error.startswith("CancelledError")
    assert len(attempts) == 2


# -- point 5: exceptions that can't be printed -------------------------------------------------------


class StrRaises(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")


class StrAndReprRaise(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class StrReturnsNonStr(Exception):
    def __str__(self) -> Any:
        return b"bytes"  # noqa: PLE0307 - the point of the test


class HugeStr(Exception):
    def __str__(self) -> str:
        return "h" * 5_000_000


class StrAndReprRaiseBase(Exception):
    def __str__(self) -> str:
        raise Abort("no str")

    def __repr__(self) -> str:
        raise Abort("no repr")


class NamelessMeta(type):
    """A metaclass hiding its classes' names while `hostile`: `__name__`, `__qualname__` and `__module__` raise.

    Only while: pytest itself needs the names to report a failure.
    """

    hostile = False

    def __getattribute__(cls, name: str) -> Any:
        if NamelessMeta.hostile and name in ("__name__", "__qualname__", "__module__"):
            raise Abort(f"no {name}")
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
        (StrRaises("x"), "StrRaises: StrRaises('x')"),
        (StrAndReprRaise(), "StrAndReprRaise"),
        (StrReturnsNonStr("y"), "StrReturnsNonStr: StrReturnsNonStr('y')"),
        (HugeStr(), "HugeStr: hhhh"),
        (StrAndReprRaiseBase(), "StrAndReprRaiseBase"),
        (Nameless("z"), "Nameless: z"),
        (RuntimeError("lone \ud800 surrogate"), "RuntimeError: lone \\ud800 surrogate"),
    ],
    ids=[
        "str-raises",
        "str-and-repr-raise",
        "str-returns-bytes",
        "huge-str",
        "str-raises-base",
        "nameless",
        "surrogate",
    ],
)
def test_an_exception_that_cannot_be_printed_is_recorded_and_the_worker_goes_on(
    front: Front, error: BaseException, expected: str
) -> None:
    good: Recorder[int] = Recorder()

    def fails(payload: Job, context: dict[str, Any]) -> None:
        raise error

    timers = front.timers(
        spec("bad", Job, fails),
        spec("good", Job, lambda payload, context: good.record(payload.n)),
        settings=TimersSettings(max_attempts=1),
    )
    timers.set_timer("bad", "a", Job(n=1), NOW)
    with running(timers):
        with hostile_names():
            wait_until(lambda: front.raw.hlen("{timers}:dead") == 1 or not timers.worker_running)
        assert timers.worker_running
        timers.set_timer("good", "b", Job(n=2), NOW)
        assert good.wait_for(1) == [2]
    (letter,) = timers.dead_letters()
    assert letter.error.startswith(expected)
    assert len(letter.error) <= 4003


# -- point 6: a timer whose runs never finish ----------------------------------------------------


def kill_worker_mid_handler(front: Front) -> None:
    """A worker of this front end in its own process takes the timer, starts its handler, and is SIGKILLed."""
    front.raw.delete(STARTED_KEY)
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.scenarios.worker_process", front.kind, front.url, "1"],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Polling the other process's observable state: its handler writes a key when it starts.
        wait_until(lambda: front.raw.exists(STARTED_KEY) == 1 or process.poll() is not None, timeout=30)
        assert process.poll() is None, "the worker process ended on its own"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)


def lease_ended(front: Front, topic: str, timer_id: str) -> bool:
    score = front.raw.zscore(f"{{timers}}:timeline:{topic}", timer_id)
    return score is not None and score <= server_time_ms(front.raw)


def test_a_timer_whose_workers_keep_dying_is_dead_lettered_instead_of_run_again(front: Front) -> None:
    calls: Recorder[int] = Recorder()
    limit = 2
    timers = front.timers(
        spec(TOPIC, CrashPayload, lambda payload, context: calls.record(payload.n), max_attempts=limit),
        settings=TimersSettings(lease_seconds=1),
    )
    timers.set_timer(TOPIC, "poison", CrashPayload(n=1), NOW)
    for attempt in range(1, limit + 1):
        wait_until(lambda: lease_ended(front, TOPIC, "poison"))
        kill_worker_mid_handler(front)  # claims attempt `attempt`, then dies mid-handler
        info = timers.get_timer(TOPIC, "poison")
        assert info is not None
        assert (info.attempts, info.running) == (attempt, True)

    wait_until(lambda: lease_ended(front, TOPIC, "poison"))
    timers.handle_ready_timers()

    assert calls.items == []
    (letter,) = timers.dead_letters()
    assert letter.timer_id == "poison"
    assert letter.attempts == limit + 1
    assert letter.error == (
        f"claimed {limit + 1} times without finishing (worker died or lease ran out); the limit is {limit} attempt(s)"
    )
    assert timers.get_timer(TOPIC, "poison") is None


def handle_expecting_system_exit(timers: TimersHarness) -> BaseException | None:
    """One `handle_ready_timers()`; returns what it raised (a SystemExit from the validator, maybe in a group)."""
    if not timers.front.is_async:
        try:
            timers.timers.handle_ready_timers()
        except BaseException as error:
            return error
        return None

    async def handle() -> BaseException | None:
        # Caught inside the portal's task: a SystemExit leaving it would stop the portal's event loop.
        try:
            await timers.timers.handle_ready_timers()
        except BaseException as error:
            return error
        return None

    return timers.front.portal.call(handle)


def test_a_validator_that_exits_stops_its_worker_until_the_timer_is_dead_lettered(front: Front) -> None:
    """SystemExit is honoured (it may come from a signal handler), but can't stop workers forever.

    Nor can it take the timers claimed with it down: they are handed back when the worker stops.
    """
    calls: Recorder[int] = Recorder()
    limit = 2
    reader = front.timers(
        spec("jobs", Picky, lambda payload, context: calls.record(payload.n), max_attempts=limit),
        settings=TimersSettings(lease_seconds=1),
    )
    writer = front.timers(spec("jobs", Loose, lambda payload, context: None))
    writer.set_timer("jobs", "exits", Loose(n=1, note="exit"), NOW)
    writer.set_timer("jobs", "innocent", Loose(n=2), NOW)  # claimed with it every time

    for _ in range(limit):
        wait_until(lambda: lease_ended(front, "jobs", "exits"))
        error = handle_expecting_system_exit(reader)
        assert error is not None
        assert contains(error, SystemExit), repr(error)
    wait_until(lambda: lease_ended(front, "jobs", "exits"))
    assert handle_expecting_system_exit(reader) is None

    assert calls.items == [2]  # handed back each time the worker stopped, not buried with it
    (letter,) = reader.dead_letters()
    assert letter.timer_id == "exits"
    assert letter.attempts == limit + 1
    assert letter.error.startswith(f"claimed {limit + 1} times without finishing")
    assert letter.payload_as(Loose) == Loose(n=1, note="exit")


def contains(error: BaseException, kind: type[BaseException]) -> bool:
    """Whether `error` is a `kind`, or an exception group holding one (Python 3.10 has no builtin groups)."""
    if isinstance(error, kind):
        return True
    return any(contains(inner, kind) for inner in getattr(error, "exceptions", ()))


# -- handlers that misbehave at shutdown ---------------------------------------------------------


@pytest.mark.parametrize("front", ["async"], indirect=True)
def test_an_async_handler_that_swallows_its_cancellation_is_still_handed_back(front: Front) -> None:
    started: Recorder[int] = Recorder()
    swallowed: Recorder[int] = Recorder()

    async def swallows(payload: Job, context: dict[str, Any]) -> None:
        started.record(payload.n)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed.record(payload.n)  # and returns as if it had finished

    router = Router()
    router.handler(topic="jobs", schema=Job)(swallows)
    timers = front.timers(routers=[router], settings=TimersSettings(shutdown_grace_seconds=0))
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    timers.start_worker()
    started.wait_for(1)
    timers.stop_worker()

    assert swallowed.items == [1]
    info = timers.get_timer("jobs", "a")
    assert info is not None
    assert (info.running, info.attempts) == (False, 0)  # handed back: not acked, attempt given back
    assert timers.dead_letters() == []


@pytest.mark.parametrize("kind", [Abort, SystemExit, KeyboardInterrupt, GeneratorExit])
def test_a_handler_raising_a_base_exception_is_a_failed_attempt_and_the_worker_goes_on(
    front: Front, kind: type[BaseException]
) -> None:
    good: Recorder[int] = Recorder()

    def raises(payload: Job, context: dict[str, Any]) -> None:
        raise kind("from the handler")

    timers = front.timers(
        spec("bad", Job, raises),
        spec("good", Job, lambda payload, context: good.record(payload.n)),
        settings=FAST_RETRIES,
    )
    timers.set_timer("bad", "a", Job(n=1), NOW)
    with running(timers):
        wait_until(lambda: front.raw.hlen("{timers}:dead") == 1)
        timers.set_timer("good", "b", Job(n=2), NOW)
        assert good.wait_for(1) == [2]
        assert timers.worker_running
    (letter,) = timers.dead_letters()
    assert (letter.timer_id, letter.attempts) == ("a", 2)
    assert letter.error == f"{kind.__name__}: from the handler"


# -- handlers whose work is left in what they return ---------------------------------------------------


def yields(payload: Job, context: dict[str, Any]) -> Iterator[None]:
    context["ran"].record(payload.n)
    yield


async def yields_async(payload: Job, context: dict[str, Any]) -> AsyncIterator[None]:
    context["ran"].record(payload.n)
    yield


@pytest.mark.parametrize("func", [yields, yields_async], ids=["generator", "async-generator"])
def test_a_generator_function_is_refused_as_a_handler(front: Front, func: Callable[..., Any]) -> None:
    """Calling it runs none of its body: acking that run would drop the timer unhandled."""
    router = Router()
    router.handler(topic="jobs", schema=Job)(func)
    timers = front.timers()
    with pytest.raises(HandlerRegistrationError, match="'jobs' is a generator function"):
        timers.include_router(router)


@pytest.mark.parametrize("func", [yields, yields_async], ids=["generator", "async-generator"])
def test_a_plain_def_returning_a_generator_is_a_failed_run(front: Front, func: Callable[..., Any]) -> None:
    """A decorator's plain wrapper around a generator function: its work is in the generator, undone."""
    ran: Recorder[int] = Recorder()

    def plain_wrapper(payload: Job, context: dict[str, Any]) -> object:
        return func(payload, context)

    router = Router()
    router.handler(topic="jobs", schema=Job, max_attempts=1)(plain_wrapper)
    timers = front.timers(routers=[router], context={"ran": ran})
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    timers.handle_ready_timers()

    assert ran.items == []
    (letter,) = timers.dead_letters()
    assert letter.timer_id == "a"
    assert letter.error.startswith(f"TypeError: handler for topic 'jobs' returned {type(func(Job(n=0), {})).__name__}")


async def records(payload: Job, context: dict[str, Any]) -> None:
    context["ran"].record(payload.n)


async def returns_its_work(payload: Job, context: dict[str, Any]) -> Coroutine[Any, Any, None]:
    return records(payload, context)  # the `await` forgotten


def plain_returning_nested_work(payload: Job, context: dict[str, Any]) -> Coroutine[Any, Any, object]:
    async def outer() -> Coroutine[Any, Any, None]:
        return records(payload, context)

    return outer()


@pytest.mark.parametrize("front", ["async"], indirect=True)
@pytest.mark.parametrize(
    "func", [returns_its_work, plain_returning_nested_work], ids=["async-def-returns-coroutine", "nested-awaitables"]
)
def test_an_awaitable_a_handler_leaves_is_awaited_to_the_end(front: Front, func: Callable[..., Any]) -> None:
    """Acking the run with the work still in an un-awaited coroutine would drop the timer unhandled."""
    ran: Recorder[int] = Recorder()
    router = Router()
    router.handler(topic="jobs", schema=Job, max_attempts=1)(func)
    timers = front.timers(routers=[router], context={"ran": ran})
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    timers.handle_ready_timers()

    assert ran.items == [1]
    assert timers.dead_letters() == []
    assert front.timer_data() == []


async def cancels_its_own_task(payload: Job, context: dict[str, Any]) -> None:
    context["attempts"].record(payload.n)
    task = asyncio.current_task()
    assert task is not None
    task.cancel()  # not the worker's doing: say, a watchdog library handed the current task
    await asyncio.sleep(0)


async def cancels_its_own_task_and_swallows_it(payload: Job, context: dict[str, Any]) -> None:
    context["attempts"].record(payload.n)
    task = asyncio.current_task()
    assert task is not None
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(0)
    # Returns as if done, leaving its task with a cancellation request it never withdrew (`uncancel`).


@pytest.mark.parametrize("front", ["async"], indirect=True)
@pytest.mark.parametrize("then", ["raises", "swallows"])
def test_a_handler_cancelling_its_own_task_neither_holds_its_timer_nor_loses_the_runner(
    front: Front, then: str
) -> None:
    """Only the hand-back is the worker's cancellation; one worker slot, so a lost runner would stall it."""
    attempts: Recorder[int] = Recorder()
    good: Recorder[int] = Recorder()
    router = Router()
    router.handler(topic="self", schema=Job)(
        cancels_its_own_task if then == "raises" else cancels_its_own_task_and_swallows_it
    )
    router.handler(topic="cancelled", schema=Job)(awaits_a_future_cancelled_elsewhere)

    async def fine(payload: Job, context: dict[str, Any]) -> None:
        good.record(payload.n)

    router.handler(topic="fine", schema=Job)(fine)
    timers = front.timers(routers=[router], context={"attempts": attempts}, settings=TimersSettings(max_attempts=1))
    timers.set_timer("self", "a", Job(n=1), NOW)
    with running(timers, concurrency=1):
        attempts.wait_for(1)
        # The same runner (the only slot) then runs a handler whose CancelledError is its own.
        timers.set_timer("cancelled", "b", Job(n=2), NOW)
        attempts.wait_for(2)
        timers.set_timer("fine", "c", Job(n=3), NOW)
        assert good.wait_for(1) == [3]
        wait_until(lambda: front.raw.hlen("{timers}:dead") == (2 if then == "raises" else 1))

    letters = {letter.timer_id: letter for letter in timers.dead_letters()}
    assert letters["b"].error.startswith("CancelledError")
    if then == "raises":
        assert letters["a"].error.startswith("CancelledError")
    assert timers.get_timer("self", "a") is None


# -- validators that return something other than the schema -------------------------------------------


class ValidatesIntoSomethingElse(pydantic.BaseModel):
    """A wrap validator may return anything; the handler would get that instead of a payload of its schema."""

    n: int
    note: str = ""

    @pydantic.model_validator(mode="wrap")
    @classmethod
    def into_something_else(cls, value: Any, handler: pydantic.ModelWrapValidatorHandler[Any]) -> Any:
        model = handler(value)
        return {"not": "a model"} if model.note == "other" else model


def test_a_validator_returning_something_else_is_refused_by_set_timer(front: Front) -> None:
    timers = front.timers(spec("jobs", ValidatesIntoSomethingElse, lambda payload, context: None))
    payload = ValidatesIntoSomethingElse.model_construct(n=1, note="other")
    with pytest.raises(UnstorablePayloadError, match="validated into dict, not ValidatesIntoSomethingElse"):
        timers.set_timer("jobs", "a", payload, NOW)
    assert front.all_keys() == []


def test_a_stored_payload_validating_into_something_else_is_dead_lettered_and_refused_by_get_timer(
    front: Front,
) -> None:
    calls: Recorder[object] = Recorder()
    reader = front.timers(spec("jobs", ValidatesIntoSomethingElse, lambda payload, context: calls.record(payload)))
    writer = front.timers(spec("jobs", Loose, lambda payload, context: None))
    writer.set_timer("jobs", "other", Loose(n=1, note="other"), datetime.timedelta(hours=1))
    with pytest.raises(StoredPayloadError, match="validated into dict"):
        reader.get_timer("jobs", "other")

    writer.set_timer("jobs", "other", Loose(n=1, note="other"), NOW)
    reader.set_timer("jobs", "fine", ValidatesIntoSomethingElse(n=2), NOW)
    reader.handle_ready_timers()

    assert calls.items == [ValidatesIntoSomethingElse(n=2)]
    (letter,) = reader.dead_letters()
    assert letter.timer_id == "other"
    assert "validated into dict, not ValidatesIntoSomethingElse" in letter.error
