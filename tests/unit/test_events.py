"""events.py: what the notification listener does with messages and silence, without Redis."""

from __future__ import annotations

import pytest

from redis_timers.engine import Cycle
from redis_timers.events import ConnectionWatch, event_for_message
from tests.unit.engine_harness import Harness, server_ms, wait_seconds


def test_a_quiet_connection_is_pinged_once_then_declared_dead_without_a_reply() -> None:
    watch = ConnectionWatch(8.0, now=100.0)
    assert watch.seconds_to_next_check(100.0) == pytest.approx(8.0)
    assert not watch.ping_due(107.9)
    assert watch.ping_due(108.0)

    watch.pinged(108.0)
    assert not watch.ping_due(108.1)  # one PING at a time
    assert not watch.dead(115.9)
    assert watch.seconds_to_next_check(110.0) == pytest.approx(6.0)
    assert watch.dead(116.0)


def test_anything_heard_resets_the_watch() -> None:
    watch = ConnectionWatch(8.0, now=0.0)
    watch.pinged(8.0)
    watch.heard(9.0)  # the PONG, or any message
    assert not watch.dead(20.0)
    assert watch.ping_due(17.0)


@pytest.mark.parametrize("as_bytes", [False, True])
def test_a_message_lowers_the_next_due_time(as_bytes: bool) -> None:
    h = Harness()
    h.start()

    def raw(text: str) -> str | bytes:
        return text.encode() if as_bytes else text

    event = event_for_message(
        h.engine, {"type": raw("message"), "channel": raw("{timers}:wake:orders"), "data": raw(str(server_ms(0.5)))}
    )
    assert event is not None
    event(0.0)
    assert wait_seconds(h, 0.0) < 0.6


def test_the_last_subscription_confirmation_makes_the_worker_claim_again() -> None:
    h = Harness()
    h.start()
    assert event_for_message(h.engine, {"type": "subscribe", "channel": "{timers}:wake:orders", "data": 1}) is None
    event = event_for_message(h.engine, {"type": "subscribe", "channel": "{timers}:wake:reminders", "data": 2})
    assert event is not None
    event(0.0)
    assert isinstance(h.step(0.0), Cycle)
    assert event_for_message(h.engine, {"type": "pong", "channel": None, "data": ""}) is None
