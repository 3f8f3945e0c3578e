"""The observer hook's pure parts: lateness from a token, the trace prefix, the guard around user observers."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from redis_timers import codec
from redis_timers.engine import lateness_ms
from redis_timers.errors import SettingsError
from redis_timers.observe import Guarded, ObservedRun, Observers, TimersObserver, combine, guarded

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_lateness_is_measured_from_the_due_time_a_token_ends_with() -> None:
    assert lateness_ms("1700000000000000.3.1700000000500", 1700000000750.5) == 250.5
    assert lateness_ms("17.3", 100.0) is None  # an older version's token, without its due time
    assert lateness_ms("", 100.0) is None


def test_the_trace_prefix_round_trips_and_plain_json_is_untouched() -> None:
    body = b'{"n":1}'
    assert codec.traced(TRACEPARENT, body) == b"@" + TRACEPARENT.encode() + b"|" + body
    assert codec.untraced(codec.traced(TRACEPARENT, body)) == (TRACEPARENT, body)
    assert codec.untraced(body) == (None, body)
    assert codec.untraced(b"") == (None, b"")
    assert codec.untraced(b"@no bar") == (None, b"@no bar")


class Carrying(TimersObserver):
    def __init__(self, carried: object) -> None:
        self._carried = carried

    def carried(self, topic: str, timer_id: str) -> str | None:
        return self._carried  # type: ignore[return-value]


@pytest.mark.parametrize("carried", ["not a traceparent", "00-x|y", 42, TRACEPARENT.upper()])
def test_only_a_traceparent_is_carried(carried: object) -> None:
    assert Guarded(Carrying(carried)).carried("t", "i") is None


def test_a_traceparent_is_carried() -> None:
    assert Guarded(Carrying(TRACEPARENT)).carried("t", "i") == TRACEPARENT


def test_an_observer_that_raises_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(TimersObserver):
        def dead_lettered(self, topic: str, timer_id: str, attempts: int, error: str) -> None:
            raise RuntimeError("broken")

    with caplog.at_level(logging.WARNING, logger="redis_timers"):
        Guarded(Broken()).dead_lettered("t", "i", 1, "e")
    assert "dead_lettered raised RuntimeError('broken')" in caplog.text


def test_combined_observers_are_each_told() -> None:
    told: list[str] = []

    class Named(TimersObserver):
        def __init__(self, name: str) -> None:
            self.name = name

        def scheduled(self, topic: str, timer_id: str) -> None:
            told.append(self.name)

    first, second, third = Named("a"), Named("b"), Named("c")
    assert combine(None, first) is first
    both = combine(combine(first, second), third)
    assert isinstance(both, Observers)
    assert both.observers == (first, second, third)
    both.scheduled("t", "i")
    assert told == ["a", "b", "c"]
    assert guarded(None) is None


def test_one_combined_observer_raising_leaves_the_others_told(caplog: pytest.LogCaptureFixture) -> None:
    """The CLI's metrics beside an app's broken observer: the metrics still count, and a span still ends."""

    class Broken(TimersObserver):
        def scheduled(self, topic: str, timer_id: str) -> None:
            raise RuntimeError("broken")

        def run_started(self, run: ObservedRun) -> object:
            raise RuntimeError("broken")

        def fired(self, run: ObservedRun) -> None:
            raise RuntimeError("broken")

    told: list[tuple[str, object]] = []

    class Counting(TimersObserver):
        def scheduled(self, topic: str, timer_id: str) -> None:
            told.append(("scheduled", timer_id))

        def run_started(self, run: ObservedRun) -> object:
            return "its span"

        def run_ended(self, run: ObservedRun, started: object, error: BaseException | None) -> None:
            told.append(("ended", started))

        def fired(self, run: ObservedRun) -> None:
            told.append(("fired", run.timer_id))

    run = SimpleNamespace(topic="t", timer_id="i", attempts=1, lateness_ms=None, trace=None)
    observer = guarded(combine(Broken(), Counting()))
    assert observer is not None
    with caplog.at_level(logging.WARNING, logger="redis_timers"):
        observer.scheduled("t", "i")
        started = observer.run_started(run)
        observer.run_ended(run, started, None)
        observer.fired(run)
    assert told == [("scheduled", "i"), ("ended", "its span"), ("fired", "i")]
    assert caplog.text.count("raised RuntimeError('broken')") == 3


def test_an_async_observer_method_is_refused() -> None:
    """The worker calls observers without awaiting them: an `async def` method would never run, silently."""

    class Async(TimersObserver):
        async def fired(self, run: ObservedRun) -> None:  # type: ignore[override]
            pass

    with pytest.raises(SettingsError, match="fired"):
        guarded(Async())
    with pytest.raises(SettingsError, match="fired"):
        combine(TimersObserver(), Async())
