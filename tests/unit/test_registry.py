"""Router and HandlerRegistry: what a front end accepts as a handler, all or nothing."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

import pydantic
import pytest

from redis_timers.errors import HandlerNotFoundError, HandlerRegistrationError
from redis_timers.registry import HandlerRegistry, generator_result_error, is_async_callable
from redis_timers.router import Router
from tests.unit.support import Order, handle_order, handle_reminder, make_router


def sync_registry(separator: str = "--") -> HandlerRegistry:
    return HandlerRegistry(separator=separator, accepts_async=False, front_end="blocking")


def router_for(*topics: str) -> Router:
    router = Router()
    for topic in topics:
        router.handler(topic=topic, schema=Order)(handle_order)
    return router


async def handle_order_async(payload: Order, context: dict[str, Any]) -> None:
    """An async handler; never awaited here."""


def handle_any(payload: pydantic.BaseModel, context: dict[str, Any]) -> None:
    """Takes any model."""


class AsyncCallable:
    async def __call__(self, payload: Order, context: dict[str, Any]) -> None:
        """An object whose call is a coroutine."""


class SyncCallable:
    def __call__(self, payload: Order, context: dict[str, Any]) -> None:
        """A plain callable object."""


def test_router_collects_handlers_and_returns_the_function_unchanged() -> None:
    router = Router()

    decorated = router.handler(topic="orders", schema=Order, max_attempts=3)(handle_order)

    assert decorated is handle_order
    [handler] = router.handlers
    assert (handler.topic, handler.schema, handler.handler, handler.max_attempts) == (
        "orders",
        Order,
        handle_order,
        3,
    )


def test_registry_finds_handlers_by_topic_in_registration_order() -> None:
    registry = sync_registry()

    registry.include(make_router())

    assert registry.topics == ["orders", "reminders"]
    assert len(registry) == 2
    assert registry.find("orders").handler is handle_order
    assert registry.find("reminders").handler is handle_reminder
    with pytest.raises(HandlerNotFoundError, match="Handler is not found"):
        registry.find("invoices")


def test_a_topic_registered_twice_is_refused() -> None:
    registry = sync_registry()
    registry.include(router_for("orders"))

    with pytest.raises(HandlerRegistrationError, match="already has a handler"):
        registry.include(router_for("orders"))
    with pytest.raises(HandlerRegistrationError, match="already has a handler"):
        sync_registry().include(router_for("reminders", "reminders"))
    assert registry.topics == ["orders"]


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "orders--eu",
        "--",
        "orders eu",
        "orders\teu",
        "orders\n",
        "\u00a0orders",  # no-break space
        "orders\0",
        "orders\x7f",
        "x" * 257,
        "é" * 129,  # 258 UTF-8 bytes
        None,
        42,
        b"orders",
    ],
    ids=repr,
)
def test_bad_topics_are_refused(topic: Any) -> None:
    registry = sync_registry()
    router = Router()
    router.handler(topic=topic, schema=Order)(handle_order)

    with pytest.raises(HandlerRegistrationError):
        registry.include(router)
    assert len(registry) == 0


@pytest.mark.parametrize("topic", ["x" * 256, "é" * 128, "orders-eu", "orders:eu", "a{b}", "заказы", "-x", "x-y"])
def test_good_topics_are_accepted(topic: str) -> None:
    registry = sync_registry()

    registry.include(router_for(topic))

    assert registry.topics == [topic]


def test_the_separator_that_is_refused_is_the_configured_one() -> None:
    registry = sync_registry(separator="::")

    registry.include(router_for("orders--eu"))
    with pytest.raises(HandlerRegistrationError, match="separator"):
        registry.include(router_for("orders::eu"))


@pytest.mark.parametrize(
    "func",
    [handle_order_async, AsyncCallable(), functools.partial(handle_order_async)],
    ids=["async-def", "async-call", "partial"],
)
def test_async_handlers_are_refused_by_a_front_end_that_cannot_run_them(func: Any) -> None:
    router = Router()
    router.handler(topic="orders", schema=Order)(func)

    assert is_async_callable(func)
    with pytest.raises(HandlerRegistrationError, match="blocking front end"):
        sync_registry().include(router)
    asyncio_registry = HandlerRegistry(separator="--", accepts_async=True, front_end="asyncio")
    asyncio_registry.include(router)
    assert asyncio_registry.topics == ["orders"]


def yields_order(payload: Order, context: dict[str, Any]) -> Generator[None, None, None]:
    yield


async def yields_order_async(payload: Order, context: dict[str, Any]) -> AsyncIterator[None]:
    yield


class YieldingCallable:
    def __call__(self, payload: Order, context: dict[str, Any]) -> Iterator[None]:
        yield


@pytest.mark.parametrize(
    "func",
    [yields_order, yields_order_async, YieldingCallable(), functools.partial(yields_order)],
    ids=["generator", "async-generator", "generator-call", "partial"],
)
@pytest.mark.parametrize("accepts_async", [False, True])
def test_generator_functions_are_refused_by_both_front_ends(func: Any, accepts_async: bool) -> None:
    router = Router()
    router.handler(topic="orders", schema=Order)(func)
    registry = HandlerRegistry(separator="--", accepts_async=accepts_async, front_end="x")

    with pytest.raises(HandlerRegistrationError, match="'orders' is a generator function"):
        registry.include(router)
    assert registry.topics == []


def test_a_returned_generator_is_a_failure_and_is_closed() -> None:
    generator = yields_order(Order(order_id=1), {})

    error = generator_result_error("orders", generator)

    assert isinstance(error, TypeError)
    assert "'orders' returned generator" in str(error)
    assert inspect.getgeneratorstate(generator) == inspect.GEN_CLOSED
    assert isinstance(generator_result_error("orders", yields_order_async(Order(order_id=1), {})), TypeError)
    assert generator_result_error("orders", [1, 2]) is None


@pytest.mark.parametrize("func", [handle_order, SyncCallable(), functools.partial(handle_order)])
def test_plain_handlers_are_accepted_by_both_front_ends(func: Any) -> None:
    assert not is_async_callable(func)
    for accepts_async in (False, True):
        router = Router()
        router.handler(topic="orders", schema=Order)(func)
        registry = HandlerRegistry(separator="--", accepts_async=accepts_async, front_end="x")
        registry.include(router)
        assert registry.find("orders").handler is func


@pytest.mark.parametrize(
    "bad_router",
    [
        router_for("invoices", "orders"),  # the second topic is a duplicate of an earlier router's
        router_for("invoices", "bad topic"),
        router_for("invoices", "invoices"),
    ],
    ids=["duplicate-of-registered", "bad-topic", "duplicate-inside"],
)
def test_a_router_that_fails_to_include_leaves_the_registry_unchanged(bad_router: Router) -> None:
    registry = sync_registry()
    registry.include(router_for("orders"))

    with pytest.raises(HandlerRegistrationError):
        registry.include(bad_router)

    assert registry.topics == ["orders"]
    with pytest.raises(HandlerNotFoundError):
        registry.find("invoices")


def test_an_async_handler_in_a_router_leaves_the_registry_unchanged() -> None:
    router = router_for("invoices")
    router.handler(topic="orders", schema=Order)(handle_order_async)
    registry = sync_registry()

    with pytest.raises(HandlerRegistrationError):
        registry.include(router)

    assert len(registry) == 0


@dataclasses.dataclass
class NotAModel:
    text: str


@pytest.mark.parametrize("schema", [dict, NotAModel, Order(order_id=1), int, "Order", None], ids=repr)
def test_schema_must_be_a_base_model_subclass(schema: Any) -> None:
    with pytest.raises(HandlerRegistrationError, match="BaseModel"):
        Router().handler(topic="orders", schema=schema)


def test_the_base_model_class_itself_is_a_subclass() -> None:
    router = Router()
    router.handler(topic="anything", schema=pydantic.BaseModel)(handle_any)

    assert router.handlers[0].schema is pydantic.BaseModel


@pytest.mark.parametrize("max_attempts", [0, -1])
def test_a_handlers_max_attempts_must_be_positive(max_attempts: int) -> None:
    with pytest.raises(HandlerRegistrationError, match="max_attempts"):
        Router().handler(topic="orders", schema=Order, max_attempts=max_attempts)


def test_a_handler_must_be_callable() -> None:
    router = Router()
    decorator: Any = router.handler(topic="orders", schema=Order)

    with pytest.raises(HandlerRegistrationError, match="callable"):
        decorator("not a function")
    assert router.handlers == []
