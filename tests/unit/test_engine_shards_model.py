"""The engine over four shards against a tiny fake server per shard, driven by random events.

Each shard's fake server keeps its own backlog and may fail any call on its own (its primary down, its slot
moving); its promises still hold in any order: never more claims than free slots in all, each settlement
to the shard its run came from and only once, every shard drained, and a stop that settles everything
when Redis answered.
"""

from __future__ import annotations

import itertools
from typing import Any

import hypothesis
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from redis_timers.engine import STOP_FLUSH_SECONDS, Cycle, Finished, Probe, Run, Wait
from redis_timers.errors import TimersConnectionError, TimersUnavailableError
from redis_timers.ops import NodeOf, OneConnection, ScriptCall
from redis_timers.retry import MAX_CYCLE_FAILURE_PAUSE_SECONDS
from tests.unit.engine_harness import ORDERS, REMINDERS, Harness, asked, claim, server_ms, settlements, shard_reply

SHARDS = 4
CONCURRENCY = 3
GRACE = 4.0
MAX_PAUSE = MAX_CYCLE_FAILURE_PAUSE_SECONDS  # jitter included
FINAL_KINDS = {"ack", "retry", "dead", "release"}
TOPICS = {ORDERS: "orders", REMINDERS: "reminders"}


class ShardedEngineModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.h = Harness(
            shards=SHARDS,
            legacy_import=False,
            concurrency=CONCURRENCY,
            lease_seconds=3,
            rng_value=0.7,
            shutdown_grace_seconds=GRACE,
        )
        self.engine = self.h.engine
        self.now = 0.0
        self.backlogs: list[list[tuple[int, int, str]]] = [[] for _ in range(SHARDS)]  # (due ms, topic, id)
        self.ids = itertools.count(1)
        self.tokens = itertools.count(1)
        self.claimed: dict[str, Run] = {}  # token -> run, for every run ever started
        self.running: dict[str, Run] = {}
        self.settled: set[str] = set()
        self.failed_since_stop = False
        self.finished = False
        self.stopped_at: float | None = None
        self.last_wait: float | None = None

    # -- the world ------------------------------------------------------------------------

    @rule(
        shard=st.integers(min_value=0, max_value=SHARDS - 1),
        count=st.integers(min_value=1, max_value=4),
        delay_ms=st.integers(min_value=-1000, max_value=6000),
    )
    def schedule(self, shard: int, count: int, delay_ms: int) -> None:
        due = server_ms(self.now) + delay_ms
        for _ in range(count):
            n = next(self.ids)
            topic_index = ORDERS if n % 2 else REMINDERS
            self.backlogs[shard].append((due, topic_index, f"t{n}"))
        channel_prefix = self.h.namespace.keyspaces[shard].channel_prefix
        for topic in TOPICS.values():
            self.engine.notified_on(channel_prefix + topic, str(due))

    @precondition(lambda self: self.last_wait is not None)
    @rule(milliseconds=st.integers(min_value=0, max_value=12_000))
    def time_passes(self, milliseconds: int) -> None:
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

    @rule(data=st.data(), reachable=st.booleans())
    def next_step(self, data: st.DataObject, reachable: bool) -> None:
        in_flight_before = self.engine.in_flight
        step = self.engine.next_step(self.now)
        self.last_wait = step.seconds if isinstance(step, Wait) else None
        if isinstance(step, Finished):
            assert step.error is None
            assert self.engine.stopping
            assert self.engine.in_flight == 0
            if not self.failed_since_stop:
                assert set(self.claimed) == self.settled
            self.finished = True
            return
        assert not self.finished, "a finished engine came back to life"
        if isinstance(step, Wait):
            assert 0.0 <= step.seconds <= max(self.h.settings.safety_wakeup_seconds, MAX_PAUSE, GRACE) + 1e-6
            return
        if isinstance(step, Probe):
            self.serve_probe(step, data, reachable)
            return
        assert isinstance(step, Cycle)
        shards = [self.h.shard_of_call(call) for call in step.calls]
        assert shards == sorted(set(shards)), "at most one call per shard, in shard order"
        budget = sum(asked(call) for call in step.calls)
        assert 0 <= budget <= CONCURRENCY - in_flight_before, "never more claims than free slots in all"
        if self.engine.stopping:
            assert budget == 0
        if not reachable:
            # The pipeline could not be sent at all.
            self.failed_since_stop = self.failed_since_stop or self.engine.stopping
            assert self.engine.step_failed(self.now, TimersConnectionError("down")) is True
            return
        answers = [data.draw(st.booleans(), label=f"shard {shard} answers") for shard in shards]
        outcomes: list[object] = []
        for shard, call, answers_now in zip(shards, step.calls, answers):
            if not answers_now:
                self.failed_since_stop = self.failed_since_stop or self.engine.stopping
                outcomes.append(TimersUnavailableError("CLUSTERDOWN The cluster is down"))
            else:
                outcomes.append(self.serve(shard, call))
        if len(step.calls) == 1:
            outcome = outcomes[0]
            if isinstance(outcome, BaseException):
                assert self.engine.step_failed(self.now, outcome) is True
                return
            assert isinstance(outcome, list)
            runs = self.engine.cycle_succeeded(outcome, self.now, self.now)
        else:
            runs = self.engine.calls_answered(outcomes, self.now, self.now)
        for run in runs:
            assert run.token not in self.claimed
            self.claimed[run.token] = run
            self.running[run.token] = run

    def serve_probe(self, step: Probe, data: st.DataObject, reachable: bool) -> None:
        """Two fake nodes (even and odd shards), each answering its probe or refusing it on its own; or none reached."""
        flow = step.flow
        reply: Any = None
        try:
            op = flow.send(None)
            while True:
                if isinstance(op, NodeOf):
                    reply = f"node-{self.h.shard_of_key(str(op.call.keys[0])) % 2}"
                else:
                    assert isinstance(op, OneConnection)
                    if not reachable:
                        self.engine.probe_failed(TimersConnectionError("down"))
                        return
                    [call] = op.ops
                    shards = [self.h.shard_of_key(str(key)) for key in call.args[1 :: int(call.args[0]) + 2]]
                    if not data.draw(st.booleans(), label=f"node of shard {shards[0]} answers the probe"):
                        reply = [TimersUnavailableError("TRYAGAIN Multiple keys request during rehashing of slot")]
                    else:
                        lowest = [min((item[0] for item in self.backlogs[shard]), default=None) for shard in shards]
                        heads = [b"" if low is None else str(low).encode() for low in lowest]
                        reply = [[server_ms(self.now), *(part for head in heads for part in (head, 0))]]
                op = flow.send(reply)
        except StopIteration as done:
            self.engine.probe_answered(done.value)

    def serve(self, shard: int, call: ScriptCall) -> list[Any]:
        """Run one shard's call on its fake server: settle, then claim what is due by the cutoff."""
        for kind, _topic_index, _timer_id, token, _delay_ms, _error in settlements(call):
            assert isinstance(token, str)
            assert token in self.claimed, "settlement for a token never handed out"
            assert self.claimed[token].shard == shard, "settlement sent to another shard than its run's"
            assert token not in self.settled, f"{kind!r} for a token already settled"
            if kind == "renew":
                continue
            assert kind in FINAL_KINDS
            self.settled.add(token)
        now_ms = server_ms(self.now)
        cutoff_arg = call.args[2]
        cutoff = now_ms if cutoff_arg == "" else min(now_ms, int(cutoff_arg))
        backlog = sorted(self.backlogs[shard])
        due = [item for item in backlog if item[0] <= cutoff][: asked(call)]
        self.backlogs[shard] = [item for item in backlog if item not in due]
        claims = [claim(topic_index, timer_id, f"{next(self.tokens)}.1") for _due, topic_index, timer_id in due]
        next_due = min((item[0] for item in self.backlogs[shard]), default=-1)
        return shard_reply(self.now, *claims, next_due=next_due)

    # -- always ---------------------------------------------------------------------------

    @invariant()
    def never_more_runs_than_slots(self) -> None:
        assert 0 <= self.engine.in_flight <= CONCURRENCY

    @invariant()
    def a_stopped_engine_finishes_in_time(self) -> None:
        if self.stopped_at is not None and self.now >= self.stopped_at + GRACE + STOP_FLUSH_SECONDS + MAX_PAUSE:
            assert isinstance(self.engine.next_step(self.now), Finished)


ShardedEngineModel.TestCase.settings = hypothesis.settings(max_examples=80, stateful_step_count=50, deadline=None)
TestShardedEngineModel = ShardedEngineModel.TestCase
