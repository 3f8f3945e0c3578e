"""The observer hook's pure parts: lateness from a token, the trace prefix, the guard around user observers."""

from __future__ import annotations

import logging

import pytest

from redis_timers import codec
from redis_timers.engine import lateness_ms
from redis_timers.observe import Guarded, Observers, TimersObserver, combine, guarded

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
