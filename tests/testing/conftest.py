"""`clock`: a time machine over a `Timers` of the front end under test, with a blocking API for both."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from redis_timers.testing import AsyncTimeMachine, TimeMachine
from tests.harness import FRONT_KINDS, Front, FrontKind, HandlerSpec, TimersHarness


class BlockingClock:
    """`TimeMachine`'s methods, called on the front's event loop for the async flavour."""

    def __init__(self, harness: TimersHarness, machine: TimeMachine | AsyncTimeMachine | None = None) -> None:
        self.harness = harness
        if machine is None:
            machine = AsyncTimeMachine(harness.timers) if harness.front.is_async else TimeMachine(harness.timers)
        self.machine = machine

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.machine, name)
        if not self.harness.front.is_async:
            return method  # type: ignore[no-any-return]
        return lambda *args, **kwargs: self.harness.front.portal.call(functools.partial(method, *args, **kwargs))

    @property
    def offset_ms(self) -> int:
        return self.machine.offset_ms


@pytest.fixture(params=FRONT_KINDS)
def front(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Front]:
    kind: FrontKind = request.param
    harness_front = Front(kind, redis_url)
    try:
        yield harness_front
    finally:
        harness_front.close()


@pytest.fixture
def clock_for(front: Front) -> Callable[..., BlockingClock]:
    """`clock_for(*handlers, settings=None)`: a `Timers` with these handlers and a time machine over it."""

    def make(*handlers: HandlerSpec, **kwargs: Any) -> BlockingClock:
        return BlockingClock(front.timers(*handlers, **kwargs))

    return make
