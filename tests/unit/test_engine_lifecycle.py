"""WorkerEngine under hostile conditions: huge concurrency, interrupted round trips, lost notifications."""

from __future__ import annotations

import pytest

from redis_timers import events
from redis_timers.engine import MAX_SETTLEMENTS_PER_CYCLE, STOP_FLUSH_SECONDS, Cycle, Finished, Wait
from redis_timers.errors import TimersConnectionError
from redis_timers.registry import HandlerRegistry
from redis_timers.router import Router
from tests.unit.engine_harness import ORDERS, Harness, asked, claim, kinds, server_ms, settlements, wait_seconds
from tests.unit.support import Order


def claims(count: int, prefix: str = "o") -> list[bytes]:
    return [claim(ORDERS, f"{prefix}-{n}", f"1.{n}") for n in range(count)]


# -- settlements are bounded per round trip ----------------------------------------------------


def test_a_round_trip_carries_at_most_the_settlement_bound_and_the_rest_follow_at_once() -> None:
    total = 2 * MAX_SETTLEMENTS_PER_CYCLE + 500
    h = Harness(concurrency=total)
    runs = h.start(*claims(total))
    for run in runs:
        h.engine.handler_finished(run, None)

    sent: list[str] = []
    for expected in (MAX_SETTLEMENTS_PER_CYCLE, MAX_SETTLEMENTS_PER_CYCLE, 500):
        call = h.cycle(0.1)  # no wait in between: what is left is sent in the next round trip
        carried = settlements(call)
        assert len(carried) == expected
        sent.extend(str(settlement[2]) for settlement in carried)
        h.reply(0.1, next_due=-1)
    assert sent == [run.timer_id for run in runs], "each settlement sent once, in the order they came"
    assert isinstance(h.step(0.1), Wait)


def test_a_failed_bounded_round_trip_sends_its_settlements_first_again() -> None:
    total = MAX_SETTLEMENTS_PER_CYCLE + 10
    h = Harness(concurrency=total)
    runs = h.start(*claims(total))
    for run in runs:
        h.engine.handler_finished(run, None)
    first = [settlement[2] for settlement in settlements(h.cycle(0.1))]

    assert h.engine.step_failed(0.1, TimersConnectionError("Redis is unreachable")) is True
    h.maintain(10.0)  # after a failure the import is retried first
    again = [settlement[2] for settlement in settlements(h.cycle(10.0))]
    assert again == first
    h.reply(10.0)
    assert [settlement[2] for settlement in settlements(h.cycle(10.0))] == [run.timer_id for run in runs[-10:]]


def test_a_stopping_worker_bounds_its_round_trips_too() -> None:
    total = MAX_SETTLEMENTS_PER_CYCLE + 1
    h = Harness(concurrency=total)
    runs = h.start(*claims(total))
    for run in runs:
        h.engine.handler_finished(run, None)
    h.engine.request_stop(0.1)
    step = h.step(0.1)
    assert isinstance(step, Cycle)
    assert asked(step.call) == 0
    assert len(settlements(step.call)) == MAX_SETTLEMENTS_PER_CYCLE
    h.reply(0.1, next_due=server_ms(0.1))
    assert len(settlements(h.cycle(0.1))) == 1


# -- a round trip interrupted while in flight --------------------------------------------------


def test_an_interrupted_round_trip_is_replayed_at_stop_and_its_claims_handed_back() -> None:
    h = Harness(concurrency=2)
    [done] = h.start(claim(ORDERS, "o-1", "1.1"))
    h.engine.handler_finished(done, None)
    interrupted = h.cycle(0.1)
    assert kinds(interrupted) == ["ack"]
    assert asked(interrupted) == 2

    h.engine.cycle_interrupted()  # cancelled while waiting for the reply: it may or may not have run
    h.engine.request_stop(0.1)
    replay = h.cycle(0.1)
    assert replay.keys[1:3] == interrupted.keys[1:3], "same claim record, so the script replays its claims"
    assert settlements(replay) == settlements(interrupted)
    assert asked(replay) == 0

    runs = h.reply(0.1, claim(ORDERS, "o-2", "2.1"), claim(ORDERS, "o-3", "2.2"))
    assert runs == [], "a stopping worker starts nothing"
    release = h.cycle(0.1)
    assert [(s[0], s[2], s[3]) for s in settlements(release)] == [("release", "o-2", "2.1"), ("release", "o-3", "2.2")]
    h.reply(0.1)
    assert isinstance(h.step(0.1), Finished)


def test_an_interrupted_round_trip_with_nothing_to_settle_is_still_replayed_at_stop() -> None:
    h = Harness()
    h.start()
    h.engine.rearm()
    interrupted = h.cycle(0.1)
    h.engine.cycle_interrupted()
    h.engine.request_stop(0.1)
    replay = h.cycle(0.1)
    assert replay.keys[1:3] == interrupted.keys[1:3]
    h.reply(0.1)
    assert isinstance(h.step(0.1), Finished)


def test_an_interrupted_round_trip_is_replayed_by_a_worker_that_goes_on() -> None:
    h = Harness()
    h.start(next_due=server_ms(100.0))
    h.engine.rearm()
    interrupted = h.cycle(0.1)
    h.engine.cycle_interrupted()
    replay = h.cycle(0.1)
    assert replay.keys[1:3] == interrupted.keys[1:3]
    [run] = h.reply(0.1, claim(ORDERS, "o-1", "1.1"))
    assert run.timer_id == "o-1", "a running worker runs what the replay hands back"


# -- the safety claim: a lost notification costs one safety interval at most ----------------------


def test_an_idle_worker_claims_once_per_safety_interval() -> None:
    h = Harness(safety_wakeup_seconds=8.0, legacy_import_interval_seconds=3600)
    h.start(next_due=server_ms(3000.0))  # it believes nothing is due for 50 minutes
    assert wait_seconds(h, 0.0) == 8.0
    call = h.cycle(8.0)
    assert asked(call) == 100
    h.reply(8.0, next_due=server_ms(3000.0))
    assert wait_seconds(h, 8.0) == 8.0
    assert isinstance(h.step(16.0), Cycle)


def test_round_trips_postpone_the_safety_claim() -> None:
    h = Harness(safety_wakeup_seconds=8.0, legacy_import_interval_seconds=3600)
    [run] = h.start(claim(ORDERS, "o-1", "1.1"), next_due=server_ms(3000.0))
    h.engine.handler_finished(run, None)
    h.cycle(5.0)
    h.reply(5.0, next_due=server_ms(3000.0))
    assert wait_seconds(h, 5.0) == 8.0
    assert isinstance(h.step(12.9), Wait)
    assert isinstance(h.step(13.0), Cycle)


def test_a_full_worker_makes_no_safety_claim_and_does_not_spin() -> None:
    h = Harness(concurrency=1, safety_wakeup_seconds=8.0, legacy_import_interval_seconds=3600)
    h.start(claim(ORDERS, "o-1", "1.1"), next_due=server_ms(3000.0))
    assert wait_seconds(h, 9.0) > 0  # its renewals wake it, not the safety interval


# -- notifications under another client encoding ---------------------------------------------------


def test_the_subscription_is_the_utf8_bytes_the_scripts_publish_on() -> None:
    h = Harness()
    assert events.subscription(h.engine) == [b"{timers}:wake:orders", b"{timers}:wake:reminders"]


class DecodingEncoder:
    """What redis-py's encoder does for a client with `decode_responses`: decode and encode in `encoding`."""

    def __init__(self, encoding: str, errors: str = "strict") -> None:
        self.encoding, self.errors = encoding, errors

    def decode(self, value: bytes) -> str:
        return value.decode(self.encoding, self.errors)

    def encode(self, value: str) -> bytes:
        return value.encode(self.encoding, self.errors)


@pytest.mark.parametrize(("encoding", "errors"), [("ascii", "strict"), ("ascii", "replace"), ("utf-16", "strict")])
def test_channels_a_decoding_client_cannot_read_back_are_left_out(encoding: str, errors: str) -> None:
    registry = HandlerRegistry(separator="--", accepts_async=True, front_end="async")
    router = Router()
    for topic in ("tâches", "jobs"):
        router.handler(topic=topic, schema=Order)(lambda payload, context: None)
    registry.include(router)
    h = Harness(registry=registry)

    heard = events.subscription(h.engine, DecodingEncoder(encoding, errors))

    assert heard == ([] if encoding == "utf-16" else [b"{timers}:wake:jobs"])
    assert events.subscription(h.engine, DecodingEncoder("latin-1")) == [
        "{timers}:wake:tâches".encode(),
        b"{timers}:wake:jobs",
    ]


def test_a_message_decoded_in_another_encoding_is_read_as_the_bytes_published() -> None:
    """A latin-1 client with decode_responses hands over mojibake; its encoder gives the UTF-8 bytes back."""
    h = Harness(legacy_import_interval_seconds=3600)
    h.start(next_due=server_ms(3000.0))
    published = b"{timers}:wake:orders", str(server_ms(0.5)).encode()
    as_decoded = [value.decode("latin-1") for value in published]
    event = events.event_for_message(
        h.engine,
        {"type": "message", "channel": as_decoded[0], "data": as_decoded[1]},
        lambda value: value.encode("latin-1"),
    )
    assert event is not None
    event(0.0)
    assert wait_seconds(h, 0.0) < 0.6


def test_a_stop_may_take_the_grace_period_and_the_flush_after_it_no_longer() -> None:
    h = Harness(concurrency=1)
    h.start(*claims(1))
    grace = h.settings.shutdown_grace_seconds
    h.engine.request_stop(1.0)
    h.engine.request_stop(3.0)  # a second request (cancel after stop) keeps the first one's end
    assert h.engine.stop_seconds_left(1.0) == grace + STOP_FLUSH_SECONDS
    assert h.engine.stop_seconds_left(2.0) == grace + STOP_FLUSH_SECONDS - 1.0
    assert h.engine.stop_seconds_left(1.0 + grace + STOP_FLUSH_SECONDS + 1) == 0.0
    assert isinstance(h.step(1.0 + grace + STOP_FLUSH_SECONDS), Finished), "the engine gives up then too"
