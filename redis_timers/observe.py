"""The observer hook: what a worker tells metrics and tracing about its timers, free of I/O and of the clock.

`Timers(..., observer=...)` takes one `TimersObserver`. A constructor argument, not a setting: an observer
is an object (a registry, a tracer), not a value an environment variable can carry, and it belongs to one
`Timers`, not to every process that reads the same environment. Without one, the worker's only cost is
one `is None` test per event: nothing is called, nothing extra is imported.

Every method has a default that does nothing: override those you need. An observer's exception is
logged and ignored; it never fails a timer or the worker.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import Protocol

from redis_timers.codec import TRACEPARENT
from redis_timers.errors import SettingsError

logger = logging.getLogger("redis_timers")


class ObservedRun(Protocol):
    """One handler run, as an observer sees it (the worker's own record of the run, read-only)."""

    @property
    def topic(self) -> str: ...

    @property
    def timer_id(self) -> str: ...

    @property
    def attempts(self) -> int:
        """This run's attempt: 1 for the first run of a timer, 2 for its first retry..."""
        ...

    @property
    def lateness_ms(self) -> float | None:
        """How long after its due time the run was claimed, in milliseconds, on the Redis server's clock
        (as the worker maps its own clock onto it); None for a claim that does not say its due time."""
        ...

    @property
    def trace(self) -> str | None:
        """The trace context carried with the timer (a W3C traceparent: see `TimersObserver.carried`), or None."""
        ...


class TimersObserver:
    """Told when this process schedules a timer, and when its workers start, finish, retry or bury a run.

    `scheduled` is called where `set_timer` or `set_timers` returned; `run_started` and `run_ended` in the
    thread or task that calls the handler, just before and just after it (what `run_started` returns is
    given to `run_ended`: a span, a start time); `fired`, `retried` and `dead_lettered` in the worker's loop,
    once the worker has decided what to tell Redis about the run.
    """

    def scheduled(self, topic: str, timer_id: str) -> None:
        """A timer was written (set, or replaced); not called when a `mode` kept the timer already scheduled."""

    def carried(self, topic: str, timer_id: str) -> str | None:
        """A W3C traceparent to carry with the timer `set_timer` is about to write (the span current now), or
        None; the worker's observer reads it back as `run.trace`. Anything that is not a traceparent is ignored."""
        return None

    def run_started(self, run: ObservedRun) -> object:
        """The handler is about to be called for `run`."""
        return None

    def run_ended(self, run: ObservedRun, started: object, error: BaseException | None) -> None:
        """The handler returned (`error` None) or raised `error`; `started` is what `run_started` returned."""

    def fired(self, run: ObservedRun) -> None:
        """The run succeeded: its timer is done (acked)."""

    def retried(self, run: ObservedRun, error: str, delay_ms: int) -> None:
        """The run failed and its timer is due again in `delay_ms`; `error` is what the timer's record says."""

    def dead_lettered(self, topic: str, timer_id: str, attempts: int, error: str) -> None:
        """The timer went to the dead letters: its last attempt failed, its payload no longer validates or is
        missing (`attempts` 0), or it was claimed more times than its attempts allow."""


OBSERVER_METHODS = ("scheduled", "carried", "run_started", "run_ended", "fired", "retried", "dead_lettered")


class Observers(TimersObserver):
    """Several observers as one (the CLI's metrics beside an app's own observer), each told in turn.

    Each is guarded on its own: one that raises is logged and skipped, the others are still told (and a span
    another one started is still ended).
    """

    def __init__(self, observers: Sequence[TimersObserver]) -> None:
        self.observers = tuple(observers)
        self._told = tuple(Guarded(observer) for observer in self.observers)

    def scheduled(self, topic: str, timer_id: str) -> None:
        for observer in self._told:
            observer.scheduled(topic, timer_id)

    def carried(self, topic: str, timer_id: str) -> str | None:
        return next((found for observer in self._told if (found := observer.carried(topic, timer_id))), None)

    def run_started(self, run: ObservedRun) -> object:
        return [observer.run_started(run) for observer in self._told]

    def run_ended(self, run: ObservedRun, started: object, error: BaseException | None) -> None:
        assert isinstance(started, list)
        for observer, each in zip(self._told, started):
            observer.run_ended(run, each, error)

    def fired(self, run: ObservedRun) -> None:
        for observer in self._told:
            observer.fired(run)

    def retried(self, run: ObservedRun, error: str, delay_ms: int) -> None:
        for observer in self._told:
            observer.retried(run, error, delay_ms)

    def dead_lettered(self, topic: str, timer_id: str, attempts: int, error: str) -> None:
        for observer in self._told:
            observer.dead_lettered(topic, timer_id, attempts, error)


def combine(first: TimersObserver | None, second: TimersObserver) -> TimersObserver:
    """`second` added to `first` (which may be None, or several already)."""
    if first is None:
        return second
    earlier = first.observers if isinstance(first, Observers) else (first,)
    return Observers((*earlier, second))


class Guarded(TimersObserver):
    """The user's observer as the worker calls it: an exception it raises is logged, never propagated.

    A stop request (`KeyboardInterrupt`, `SystemExit`) is not caught: it is the process's, not the observer's.
    """

    def __init__(self, observer: TimersObserver) -> None:
        for method in OBSERVER_METHODS:
            if inspect.iscoroutinefunction(getattr(observer, method)):
                # Called, never awaited: the coroutine would be dropped, the observer silently told nothing.
                raise SettingsError(f"the observer's {method} is async; the worker calls observers without awaiting")
        self.observer = observer

    def _failed(self, method: str, error: Exception) -> None:
        logger.warning("the timers observer's %s raised %r; ignored", method, error)

    def scheduled(self, topic: str, timer_id: str) -> None:
        try:
            self.observer.scheduled(topic, timer_id)
        except Exception as error:
            self._failed("scheduled", error)

    def carried(self, topic: str, timer_id: str) -> str | None:
        try:
            found = self.observer.carried(topic, timer_id)
        except Exception as error:
            self._failed("carried", error)
            return None
        return found if isinstance(found, str) and TRACEPARENT.fullmatch(found) else None

    def run_started(self, run: ObservedRun) -> object:
        try:
            return self.observer.run_started(run)
        except Exception as error:
            self._failed("run_started", error)
            return None

    def run_ended(self, run: ObservedRun, started: object, error: BaseException | None) -> None:
        try:
            self.observer.run_ended(run, started, error)
        except Exception as raised:
            self._failed("run_ended", raised)

    def fired(self, run: ObservedRun) -> None:
        try:
            self.observer.fired(run)
        except Exception as error:
            self._failed("fired", error)

    def retried(self, run: ObservedRun, error: str, delay_ms: int) -> None:
        try:
            self.observer.retried(run, error, delay_ms)
        except Exception as raised:
            self._failed("retried", raised)

    def dead_lettered(self, topic: str, timer_id: str, attempts: int, error: str) -> None:
        try:
            self.observer.dead_lettered(topic, timer_id, attempts, error)
        except Exception as raised:
            self._failed("dead_lettered", raised)


def guarded(observer: TimersObserver | None) -> Guarded | None:
    if observer is None or isinstance(observer, Guarded):
        return observer
    if not isinstance(observer, TimersObserver):
        raise SettingsError(f"observer must be a redis_timers.observe.TimersObserver, got {observer!r}")
    return Guarded(observer)
