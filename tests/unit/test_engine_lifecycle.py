"""WorkerEngine under hostile conditions: huge concurrency, interrupted round trips, lost notifications."""

from __future__ import annotations

from redis_timers.engine import MAX_SETTLEMENTS_PER_CYCLE, Cycle, Wait
from tests.unit.engine_harness import ORDERS, Harness, asked, claim, server_ms, settlements


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

    h.engine.step_failed(0.1, ConnectionError("lost"))
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
