"""An idle worker's safety checks over several shards: one probe per node, claims only from the shards it finds due,
and per-shard claim calls again wherever a node refuses it (see `redis_timers/probe.py`)."""

from __future__ import annotations

from typing import Any

import pytest
import redis.exceptions

from redis_timers import probe, server_errors
from redis_timers.engine import Cycle, Probe, Wait
from redis_timers.errors import TimersConnectionError, TimersServerError
from redis_timers.ops import NodeOf, OneConnection
from tests.unit.engine_harness import ORDERS, Harness, claim, server_ms, shard_reply, wait_seconds

INTERVAL = 8.0
MOVED = server_errors.server_error(redis.exceptions.MovedError("3999 127.0.0.1:6381"))
NO_FLAGS = TimersServerError("ERR Error compiling script (new function): user_script:1: unexpected symbol near '#'")
NODES = {0: "a:1", 1: "b:2", 2: "a:1", 3: "b:2"}


def idle_after_first_claims(shards: int = 4, **settings: Any) -> Harness:
    """A worker whose first claim of each shard found nothing of its topics."""
    h = Harness(shards=shards, legacy_import=False, safety_wakeup_seconds=INTERVAL, **settings)
    step = h.step(0.0)
    assert isinstance(step, Cycle)
    h.answer(0.0, {h.shard_of_call(call): shard_reply(0.0) for call in step.calls})
    return h


def nothing(shards: range) -> dict[int, int | BaseException | None]:
    return dict.fromkeys(shards)


def test_each_node_gets_one_probe_for_all_of_its_shards() -> None:
    h = idle_after_first_claims()
    calls = h.probe(INTERVAL, nothing(range(4)), NODES)
    by_node = [sorted({h.shard_of_key(str(key)) for key in call.args[1:]}) for call in calls]
    assert by_node == [[0, 2], [1, 3]]
    # Per shard its heads index, its topic set and the timelines of (at most `probe.SCAN_TOPICS` of) the worker's
    # topics: a process of an earlier version keeps no heads index.
    assert all(len(call.args) == 1 + 2 * (2 + len(h.registry.topics)) for call in calls)
    # One key declared, which routes the call: a cluster refuses declared keys of several slots.
    assert [call.keys for call in calls] == [call.args[1:2] for call in calls]
    assert isinstance(h.step(INTERVAL), Wait)
    assert wait_seconds(h, INTERVAL) == pytest.approx(INTERVAL)


def test_a_shard_the_probe_finds_due_is_claimed_from_alone() -> None:
    h = idle_after_first_claims()
    h.probe(INTERVAL, {0: None, 1: server_ms(INTERVAL) - 5, 2: None, 3: server_ms(INTERVAL) + 60_000}, NODES)
    calls = h.shard_calls(INTERVAL)
    assert list(calls) == [1]
    runs = h.answer(INTERVAL, {1: shard_reply(INTERVAL, claim(ORDERS, "lost-wakeup", "1.1.0"))})
    assert [run.timer_id for run in runs] == ["lost-wakeup"]


def test_a_later_head_the_probe_reads_is_claimed_when_it_is_due() -> None:
    h = idle_after_first_claims()
    h.probe(INTERVAL, {0: server_ms(INTERVAL + 2.0), 1: None, 2: None, 3: None})
    assert wait_seconds(h, INTERVAL) == pytest.approx(2.0, abs=1e-3)
    assert list(h.shard_calls(INTERVAL + 2.0)) == [0]


NON_LOCAL = TimersServerError(
    "ERR Script attempted to access a non local key in a cluster node script: probe, on @user_script:60."
)


@pytest.mark.parametrize(
    "refusal", [MOVED, NON_LOCAL, TimersConnectionError("Redis is unreachable: Connection refused")]
)
def test_the_shards_of_a_node_that_fails_the_probe_get_their_own_claim_calls(refusal: BaseException) -> None:
    h = idle_after_first_claims()
    h.probe(INTERVAL, {0: refusal, 1: None, 2: refusal, 3: None}, NODES)
    assert list(h.shard_calls(INTERVAL)) == [0, 2]
    h.answer(INTERVAL, {0: shard_reply(INTERVAL), 2: shard_reply(INTERVAL)})
    # A passing outage: the next interval probes every node again.
    [_] = h.probe(2 * INTERVAL, nothing(range(4)))


def test_a_probe_that_fails_as_a_whole_falls_back_to_claim_calls() -> None:
    h = idle_after_first_claims()
    assert isinstance(h.step(INTERVAL), Probe)
    h.engine.probe_failed(TimersConnectionError("Redis is unreachable: Connection refused"))
    assert list(h.shard_calls(INTERVAL)) == [0, 1, 2, 3]


def test_a_server_that_cannot_run_the_probe_is_not_probed_again() -> None:
    h = idle_after_first_claims()
    h.probe(INTERVAL, dict.fromkeys(range(4), NO_FLAGS))
    calls = h.shard_calls(INTERVAL)
    assert list(calls) == [0, 1, 2, 3]
    h.answer(INTERVAL, {shard: shard_reply(INTERVAL) for shard in calls})
    assert list(h.shard_calls(2 * INTERVAL)) == [0, 1, 2, 3]  # a claim per shard, as before the probe


def test_a_round_trip_made_anyway_carries_the_safety_checks_due() -> None:
    # A shard busy at every step must not hold back the others' checks for ever.
    h = idle_after_first_claims()
    h.engine.notified("orders", server_ms(INTERVAL), 1)  # shard 1 has a timer due: a round trip is made
    assert list(h.shard_calls(INTERVAL)) == [0, 1, 2, 3]


def test_one_shard_and_a_single_pass_claim_rather_than_probe() -> None:
    h = idle_after_first_claims(shards=1)
    assert isinstance(h.step(INTERVAL), Cycle)
    single = Harness(shards=4, legacy_import=False, single_pass=True)
    assert isinstance(single.step(0.0), Cycle)


def test_a_probe_reads_a_bounded_batch_of_timelines_the_next_batch_each_time() -> None:
    topics = [f"t{n}" for n in range(probe.SCAN_TOPICS + 10)]
    assert probe.scanned(topics, 0) == topics[: probe.SCAN_TOPICS]
    assert probe.scanned(topics, probe.SCAN_TOPICS) == topics[probe.SCAN_TOPICS :] + topics[: probe.SCAN_TOPICS - 10]
    assert probe.scanned(topics[:3], 2) == topics[:3]


def test_a_timeline_due_that_the_index_is_not_makes_the_next_claim_rebuild_it() -> None:
    h = idle_after_first_claims()
    step = h.step(INTERVAL)
    assert isinstance(step, Probe)
    flow = step.flow
    op = flow.send(None)
    while isinstance(op, NodeOf):
        op = flow.send("a:1")
    assert isinstance(op, OneConnection)  # one node holds the four shards
    reply = [server_ms(INTERVAL), b"", 0, str(server_ms(INTERVAL) - 5).encode(), 1, b"", 0, b"", 0]
    with pytest.raises(StopIteration) as done:
        flow.send([reply])
    h.engine.probe_answered(done.value.value)
    calls = h.shard_calls(INTERVAL)
    assert list(calls) == [1]
    assert calls[1].args[6] == -round(INTERVAL * 1000)  # negated: rebuild the index now
    h.answer(INTERVAL, {1: shard_reply(INTERVAL)})
    # Once: a claim found due by a later probe with nothing of the kind keeps the index's own schedule.
    h.probe(2 * INTERVAL, {0: None, 1: server_ms(2 * INTERVAL) - 5, 2: None, 3: None})
    assert h.shard_calls(2 * INTERVAL)[1].args[6] == round(INTERVAL * 1000)
