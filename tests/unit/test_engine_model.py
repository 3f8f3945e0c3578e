"""The engine against a tiny fake server, driven by random events: its promises hold in any order.

The fake server keeps a backlog of due times per topic, honours the claim limit and the
cutoff, and hands out tokens; the front end runs handlers that end when the test says so.
"""

from __future__ import annotations

import itertools

import hypothesis
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from redis_timers.engine import STOP_FLUSH_SECONDS, Cycle, Finished, Maintain, Run, Wait
from redis_timers.errors import TimersConnectionError
from redis_timers.retry import MAX_CYCLE_FAILURE_PAUSE_SECONDS
from tests.unit.engine_harness import ORDERS, REMINDERS, Harness, asked, claim, server_ms, settlements
from tests.unit.support import nothing_to_import

CONCURRENCY = 3
GRACE = 4.0
MAX_PAUSE = MAX_CYCLE_FAILURE_PAUSE_SECONDS  # jitter included
FINAL_KINDS = {"ack", "retry", "dead", "release"}


class EngineModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.h = Harness(concurrency=CONCURRENCY, lease_seconds=3, rng_value=0.7, shutdown_grace_seconds=GRACE)
        self.engine = self.h.engine
        self.now = 0.0
        self.backlog: list[tuple[int, int, str]] = []  # (due server ms, topic index, id) on the fake server
        self.ids = itertools.count(1)
        self.tokens = itertools.count(1)
        self.claimed: dict[str, Run] = {}  # token -> run, for every run ever started
        self.running: dict[str, Run] = {}  # handlers still running in the front end
        self.settled: set[str] = set()  # tokens whose final settlement reached the server
        self.failed_since_stop = False
        self.finished = False
        self.stopped_at: float | None = None
        self.last_wait: float | None = None

    @initialize()
    def first_maintenance(self) -> None:
        self.h.maintain(self.now)

    # -- the world ------------------------------------------------------------------------

    @rule(count=st.integers(min_value=1, max_value=4), delay_ms=st.integers(min_value=-1000, max_value=6000))
    def schedule(self, count: int, delay_ms: int) -> None:
        due = server_ms(self.now) + delay_ms
        for _ in range(count):
            topic_index = ORDERS if next(self.ids) % 2 else REMINDERS
            self.backlog.append((due, topic_index, f"t{len(self.backlog)}-{due}"))
        self.engine.notified("orders", due)
        self.engine.notified("reminders", due)

    @precondition(lambda self: self.last_wait is not None)
    @rule(milliseconds=st.integers(min_value=0, max_value=12_000))
    def time_passes(self, milliseconds: int) -> None:
        """The front end waits as told, or less when an event arrives first."""
        assert self.last_wait is not None
        self.now += min(milliseconds / 1000, self.last_wait)
        self.last_wait = None

    @rule(milliseconds=st.integers(min_value=0, max_value=50))
    def a_round_trip_takes_time(self, milliseconds: int) -> None:
        self.now += milliseconds / 1000

    @precondition(lambda self: bool(self.running))
    @rule(data=st.data(), failed=st.booleans())
    def a_handler_ends(self, data: st.DataObject, failed: bool) -> None:
        token = data.draw(st.sampled_from(sorted(self.running)))
        run = self.running.pop(token)
        self.engine.handler_finished(run, RuntimeError("boom") if failed else None)

    @rule()
    def notifications_were_missed(self) -> None:
        self.engine.rearm()

    @precondition(lambda self: not self.engine.stopping)
    @rule()
    def stop_is_requested(self) -> None:
        self.engine.request_stop(self.now)
        self.stopped_at = self.now

    # -- the worker loop ------------------------------------------------------------------

    @rule(redis_answers=st.booleans())
    def next_step(self, redis_answers: bool) -> None:
        in_flight_before = self.engine.in_flight
        step = self.engine.next_step(self.now)
        self.last_wait = step.seconds if isinstance(step, Wait) else None
        if isinstance(step, Finished):
            assert self.engine.stopping
            assert self.engine.in_flight == 0
            if not self.failed_since_stop:
                # Redis answered every time: nothing was left unsettled.
                assert set(self.claimed) == self.settled
            self.finished = True
            return
        assert not self.finished, "a finished engine came back to life"
        if isinstance(step, Wait):
            assert 0.0 <= step.seconds <= max(self.h.settings.safety_wakeup_seconds, MAX_PAUSE, GRACE) + 1e-6
            return
        if not redis_answers:
            self.failed_since_stop = self.failed_since_stop or self.engine.stopping
            assert self.engine.step_failed(self.now, TimersConnectionError("down")) is True
            return
        if isinstance(step, Maintain):
            _, imported = nothing_to_import(step.flow)
            self.engine.maintenance_done(imported)
            return
        assert isinstance(step, Cycle)
        self.serve_cycle(step, in_flight_before)

    def serve_cycle(self, step: Cycle, in_flight_before: int) -> None:
        call = step.call
        limit = asked(call)
        # Never more than the free slots; nothing new once stopping.
        assert 0 <= limit <= CONCURRENCY - in_flight_before
        if self.engine.stopping:
            assert limit == 0
        for kind, _topic_index, _timer_id, token, delay_ms, _error in settlements(call):
            assert isinstance(token, str)
            assert token in self.claimed, "settlement for a token never handed out"
            assert token not in self.settled, f"{kind!r} for a token already settled"
            if kind == "renew":
                continue
            assert kind in FINAL_KINDS
            if kind == "retry":
                assert isinstance(delay_ms, int)
                assert delay_ms >= 1000
            self.settled.add(token)
        now_ms = server_ms(self.now)
        cutoff = now_ms if call.args[2] == "" else min(now_ms, int(call.args[2]))
        self.backlog.sort()
        due = [item for item in self.backlog if item[0] <= cutoff][:limit]
        self.backlog = [item for item in self.backlog if item not in due]
        claims: list[bytes] = []
        for _due, topic_index, timer_id in due:
            claims.append(claim(topic_index, timer_id, f"{next(self.tokens)}.1"))
        next_due = min((item[0] for item in self.backlog), default=-1)
        runs = self.h.reply(self.now, *claims, next_due=next_due)
        assert len(runs) == len(due)
        for run in runs:
            assert run.token not in self.claimed
            self.claimed[run.token] = run
            self.running[run.token] = run

    # -- always ---------------------------------------------------------------------------

    @invariant()
    def never_more_runs_than_slots(self) -> None:
        assert 0 <= self.engine.in_flight <= CONCURRENCY

    @invariant()
    def a_stopped_engine_finishes_in_time(self) -> None:
        if self.stopped_at is not None and self.now >= self.stopped_at + GRACE + STOP_FLUSH_SECONDS + MAX_PAUSE:
            # Grace, then the flush, then at most one pause that began before the flush ended.
            assert isinstance(self.engine.next_step(self.now), Finished)


EngineModel.TestCase.settings = hypothesis.settings(max_examples=60, stateful_step_count=40, deadline=None)
TestEngineModel = EngineModel.TestCase
