"""Which handler serves which topic, and whether a front end can run it."""

from __future__ import annotations

import contextlib
import inspect
from typing import Any

from redis_timers.errors import HandlerNotFoundError, HandlerRegistrationError
from redis_timers.router import Handler, Router
from redis_timers.validation import check_topic


def is_async_callable(func: object) -> bool:
    if inspect.iscoroutinefunction(func):
        return True
    call = getattr(func, "__call__", None)  # noqa: B004 - async callable objects count too
    return inspect.iscoroutinefunction(call)


def is_generator_callable(func: object) -> bool:
    """Whether calling `func` only makes a generator (or async generator), running none of its body."""
    call = getattr(func, "__call__", None)  # noqa: B004 - callable objects count too
    return any(inspect.isgeneratorfunction(f) or inspect.isasyncgenfunction(f) for f in (func, call))


def generator_result_error(topic: str, result: object) -> TypeError | None:
    """For every front end: the failure of a handler that returned a generator or an async generator.

    A decorator's plain wrapper around a generator function looks like a plain handler; its body is in
    the generator, not run (acking that run would drop the timer). Nothing can run it for the handler: a
    front end doesn't iterate what a handler returns. The generator is closed (it never started).
    """
    if inspect.isgenerator(result):
        result.close()
    elif not inspect.isasyncgen(result):
        return None
    return TypeError(
        f"handler for topic {topic!r} returned {type(result).__name__} instead of doing its work; "
        "a handler must not yield"
    )


def awaitable_result_error(topic: str, result: object) -> TypeError | None:
    """For a front end that can't await: the failure of a plain `def` that returned an awaitable.

    A decorator's plain wrapper around an `async def` looks like a plain handler until it is called;
    its work is in the awaitable, undone. That run failed (acking it would drop the timer). The
    coroutine is closed, so that Python does not warn it was never awaited.
    """
    if not inspect.isawaitable(result):
        return None
    close = getattr(result, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):
            close()
    return TypeError(
        f"handler for topic {topic!r} returned {type(result).__name__} (an awaitable) instead of doing its work; "
        "this front end does not await: use redis_timers.aio.Timers for async handlers"
    )


class HandlerRegistry:
    def __init__(self, *, separator: str, accepts_async: bool, front_end: str) -> None:
        self._separator = separator
        self._accepts_async = accepts_async
        self._front_end = front_end
        self._by_topic: dict[str, Handler[Any]] = {}

    def include(self, router: Router) -> None:
        # Check the whole router first, so that a bad handler leaves the registry unchanged.
        incoming: dict[str, Handler[Any]] = {}
        for handler in router.handlers:
            check_topic(handler.topic, self._separator)
            if handler.topic in self._by_topic or handler.topic in incoming:
                raise HandlerRegistrationError(f"topic {handler.topic!r} already has a handler")
            if is_generator_callable(handler.handler):
                raise HandlerRegistrationError(
                    f"handler for topic {handler.topic!r} is a generator function: calling it runs none of its "
                    "body (a handler must not yield)"
                )
            if is_async_callable(handler.handler) and not self._accepts_async:
                raise HandlerRegistrationError(
                    f"handler for topic {handler.topic!r} is async; the {self._front_end} front end runs plain "
                    "`def` handlers (use redis_timers.aio.Timers for `async def` handlers)"
                )
            incoming[handler.topic] = handler
        self._by_topic.update(incoming)

    def find(self, topic: str) -> Handler[Any]:
        handler = self._by_topic.get(topic) if isinstance(topic, str) else None
        if handler is None:
            raise HandlerNotFoundError(topic)
        return handler

    @property
    def topics(self) -> list[str]:
        return list(self._by_topic)

    def __len__(self) -> int:
        return len(self._by_topic)
