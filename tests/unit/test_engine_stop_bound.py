"""A stopping worker that cannot reach Redis gives up STOP_FLUSH_SECONDS after the grace period, not a pause later.

A pause after a failed hand-back that ends past that bound leads to no further try: waiting it out only
delays the process's exit (by up to the longest pause, 5 s) with nothing to show for it.
"""

from __future__ import annotations

from redis_timers.engine import STOP_FLUSH_SECONDS, Cycle, Finished, Wait
from redis_timers.errors import TimersUnavailableError
from tests.unit.engine_harness import ORDERS, Harness, claim, kinds

BUSY = TimersUnavailableError("BUSY Redis is busy running a script.")


def test_a_stop_during_an_outage_ends_at_the_flush_bound() -> None:
    # No jitter: the pauses are 4 s, then 5 s (the cap), so the second one would end 4 s past the bound.
    h = Harness(handling_sleep=4.0, handling_jitter_min_value=1.0, handling_jitter_max_value=1.0)
    h.start(claim(ORDERS, "o-1", "1.1"))
    h.engine.request_stop(0.0, grace=1.0)
    give_up_at = 1.0 + STOP_FLUSH_SECONDS

    now = 1.0
    tries = 0
    while not isinstance(step := h.step(now), Finished):
        if isinstance(step, Wait):
            now += step.seconds
        else:
            assert isinstance(step, Cycle)
            assert kinds(step.call) == ["release"]
            tries += 1
            assert h.engine.step_failed(now, BUSY)
        assert now <= give_up_at

    assert now == give_up_at
    assert tries == 2  # at the end of the grace period, and after the first pause
