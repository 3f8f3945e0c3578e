"""The engine over a namespace of several shards: each shard's own state, one cycle for all that need a call."""

from __future__ import annotations

import random
from typing import Any

import pytest
import redis.exceptions

from redis_timers import server_errors
from redis_timers.engine import MAX_CLAIM_BATCH, STOP_FLUSH_SECONDS, Cycle, Finished, Maintain, Wait
from redis_timers.errors import (
    TimersConnectionError,
    TimersPermissionError,
    TimersServerError,
    TimersUnavailableError,
)
from redis_timers.keys import Namespace
from redis_timers.shards import claim_shares
from tests.unit.engine_harness import (
    ORDERS,
    REMINDERS,
    Harness,
    asked,
    claim,
    kinds,
    server_ms,
    settlements,
    shard_reply,
    wait_seconds,
)
from tests.unit.support import nothing_to_import

SHARD_OUTAGES = [
    server_errors.server_error(redis.exceptions.MovedError("3999 127.0.0.1:6381")),
    server_errors.server_error(redis.exceptions.AskError("3999 127.0.0.1:6381")),
    TimersUnavailableError("TRYAGAIN Multiple keys request during rehashing of slot"),
    TimersUnavailableError("CLUSTERDOWN The cluster is down"),
    TimersConnectionError("Redis is unreachable: Connection refused"),
]
"""What a shard's call meets while its primary is down or its slot moves (the first two as redis-py raises them)."""
TRYAGAIN, UNREACHABLE = SHARD_OUTAGES[2], SHARD_OUTAGES[4]


def sharded(shards: int = 4, **settings: Any) -> Harness:
    return Harness(shards=shards, legacy_import=False, **settings)


def idle(now: float) -> list[Any]:
    """A shard's reply: nothing claimed, nothing due."""
    return shard_reply(now)


# -- the claim budget -----------------------------------------------------------------------


def test_claim_shares_split_the_budget_and_hand_the_remainder_round() -> None:
    assert claim_shares(10, [0, 1, 2, 3], 4, 0) == ([3, 3, 2, 2], 2)
    assert claim_shares(10, [0, 1, 2, 3], 4, 2) == ([2, 2, 3, 3], 0)
    assert claim_shares(8, [0, 1, 2, 3], 4, 3) == ([2, 2, 2, 2], 3)
    assert claim_shares(1, [1, 3], 4, 2) == ([0, 1], 0)
    assert claim_shares(1, [1, 3], 4, 0) == ([1, 0], 2)


def test_claim_shares_never_add_up_to_more_than_the_budget_and_none_starves() -> None:
    rng = random.Random(7)
    for _ in range(500):
        shards = rng.randint(1, 16)
        wanting = sorted(rng.sample(range(shards), rng.randint(1, shards)))
        budget = rng.randint(0, 40)
        first = rng.randrange(shards)
        given = dict.fromkeys(wanting, 0)
        for _ in range(len(wanting)):
            shares, first = claim_shares(budget, wanting, shards, first)
            assert sum(shares) == budget
            assert max(shares) - min(shares) <= 1
            for index, share in zip(wanting, shares):
                given[index] += share
        # Over as many rounds as there are shards wanting, each got the same.
        assert len(set(given.values())) == 1


def test_the_first_cycle_claims_from_every_shard_sharing_the_free_slots() -> None:
    h = sharded(concurrency=10)

    calls = h.shard_calls(0.0)

    assert {shard: asked(call) for shard, call in calls.items()} == {0: 3, 1: 3, 2: 2, 3: 2}


def test_a_budget_smaller_than_the_shards_is_never_over_claimed_and_reaches_every_shard() -> None:
    h = sharded(concurrency=2)

    calls = h.shard_calls(0.0)
    assert {shard: asked(call) for shard, call in calls.items()} == {0: 1, 1: 1}
    h.answer(0.0, {0: idle(0.0), 1: idle(0.0)})

    calls = h.shard_calls(0.0)
    assert {shard: asked(call) for shard, call in calls.items()} == {2: 1, 3: 1}


def test_a_busy_worker_claims_from_every_busy_shard_in_turn() -> None:
    """One slot, every shard always has a timer due: the slot goes round the shards."""
    h = sharded(concurrency=1)
    claimed_from = []
    run = None
    for round_number in range(8):
        if run is not None:
            h.engine.handler_finished(run, None)
        calls = h.shard_calls(0.0)
        [claimer] = [shard for shard, call in calls.items() if asked(call)]
        if run is not None:
            assert kinds(calls[run.shard]) == ["ack"]  # the finished run's settlement goes to its shard
        claimed_from.append(claimer)
        token = f"{round_number}.1"
        replies: dict[int, list[Any] | BaseException] = {
            shard: shard_reply(0.0, next_due=server_ms(0.0)) for shard in calls
        }
        replies[claimer] = shard_reply(0.0, claim(ORDERS, f"t-{round_number}", token), next_due=server_ms(0.0))
        [run] = h.answer(0.0, replies)
        assert run.shard == claimer

    assert sorted(claimed_from) == [0, 0, 1, 1, 2, 2, 3, 3]


def test_a_shard_with_settlements_but_no_share_still_sends_them() -> None:
    h = sharded(shards=2, concurrency=2)
    h.shard_calls(0.0)
    a, b = h.answer(
        0.0, {0: shard_reply(0.0, claim(ORDERS, "a", "1.1")), 1: shard_reply(0.0, claim(ORDERS, "b", "1.1"))}
    )
    h.engine.rearm()  # both shards want to claim again, and one slot is free
    h.engine.handler_finished(b, None)

    calls = h.shard_calls(0.0)

    assert {shard: asked(call) for shard, call in calls.items()} == {0: 1, 1: 0}  # the one slot went to shard 0
    assert kinds(calls[0]) == []
    assert kinds(calls[1]) == ["ack"]
    assert a.shard == 0


def test_no_call_claims_more_than_the_batch_limit() -> None:
    h = sharded(shards=2, concurrency=5000)
    assert [asked(call) for call in h.shard_calls(0.0).values()] == [MAX_CLAIM_BATCH, MAX_CLAIM_BATCH]


# -- one shard failing alone ----------------------------------------------------------------


@pytest.mark.parametrize("outage", SHARD_OUTAGES, ids=lambda error: getattr(error, "code", type(error).__name__))
def test_a_shard_whose_call_fails_backs_off_alone_while_the_others_keep_firing(outage: Exception) -> None:
    h = sharded(concurrency=8, rng_value=0.0)
    h.shard_calls(0.0)
    runs = h.answer(
        0.0,
        {
            0: shard_reply(0.0, claim(ORDERS, "a", "1.1")),
            1: shard_reply(0.0, claim(ORDERS, "b", "1.1")),
            2: idle(0.0),
            3: idle(0.0),
        },
    )
    a, b = runs
    h.engine.handler_finished(b, None)
    calls = h.shard_calls(0.1)
    assert list(calls) == [1]
    assert kinds(calls[1]) == ["ack"]
    h.answer(0.1, {1: outage})

    # Shard 0 goes on while shard 1 waits out its pause.
    h.engine.handler_finished(a, None)
    calls = h.shard_calls(0.1)
    assert list(calls) == [0]
    h.answer(0.1, {0: idle(0.1)})
    pause = wait_seconds(h, 0.1)
    assert pause == pytest.approx(0.025)  # the first pause of a backoff (handling_sleep x the jitter's low end)

    calls = h.shard_calls(0.1 + pause)
    assert list(calls) == [1]
    assert settlements(calls[1]) == [("ack", ORDERS, "b", "1.1", 0, "")]  # kept for its shard, not lost
    assert asked(calls[1]) == 8  # and it claims again to learn its next due time


def test_a_shard_that_keeps_failing_backs_off_exponentially_on_its_own() -> None:
    h = sharded(shards=2, rng_value=0.0, handling_sleep=0.05)
    now = 0.0
    h.shard_calls(now)
    h.answer(now, {0: idle(now), 1: TRYAGAIN})
    pauses = []
    for _ in range(4):
        pause = wait_seconds(h, now)
        pauses.append(pause)
        now += pause
        assert list(h.shard_calls(now)) == [1]
        h.answer(now, {1: TRYAGAIN})
    assert pauses == pytest.approx([0.025, 0.05, 0.1, 0.2])

    now += wait_seconds(h, now)
    h.shard_calls(now)
    h.answer(now, {1: idle(now)})  # it answers again: its backoff starts afresh
    h.engine.rearm()
    calls = h.shard_calls(now)
    h.answer(now, {0: idle(now), 1: TRYAGAIN})
    assert set(calls) == {0, 1}
    assert wait_seconds(h, now) == pytest.approx(0.025)


def test_a_permanent_refusal_of_one_shard_stops_the_worker() -> None:
    h = sharded()
    h.shard_calls(0.0)
    [running] = h.answer(
        0.0, {0: idle(0.0), 1: shard_reply(0.0, claim(ORDERS, "r", "1.1")), 2: idle(0.0), 3: idle(0.0)}
    )
    h.engine.rearm()  # every shard claims again: one round trip to each
    h.shard_calls(0.0)
    refusal = TimersPermissionError("NOPERM User app has no permissions to access the '{timers:2}:dead' key")

    runs = h.answer(
        0.0,
        {0: shard_reply(0.0, claim(ORDERS, "a", "1.1")), 1: idle(0.0), 2: refusal, 3: idle(0.0)},
    )

    assert runs == []
    # Shard 0's claim never ran: it is handed back before the worker stops (its attempt not counted), at once,
    # while the handler already running is left to its lease, as when a lone call is refused.
    calls = h.shard_calls(0.0)
    assert list(calls) == [0]
    assert settlements(calls[0]) == [("release", ORDERS, "a", "1.1", 0, "")]
    assert h.answer(0.0, {0: idle(0.0)}) == []
    step = h.step(0.0)
    assert isinstance(step, Finished)
    assert step.error is refusal
    assert h.engine.in_flight == 0
    h.engine.handler_finished(running, None)  # too late: its outcome no longer counts
    assert isinstance(h.step(0.0), Finished)


def test_a_cycle_that_fails_as_a_whole_pauses_every_shard() -> None:
    """A pipeline that could not be sent at all: the server (all of its shards) is unreachable."""
    h = sharded(rng_value=0.0)
    h.shard_calls(0.0)
    assert h.engine.step_failed(0.0, UNREACHABLE) is True

    pause = wait_seconds(h, 0.0)
    assert pause == pytest.approx(0.025)
    assert list(h.shard_calls(pause)) == [0, 1, 2, 3]


def test_in_a_single_pass_one_shards_outage_ends_the_pass_with_it() -> None:
    h = sharded(single_pass=True)
    h.shard_calls(0.0)
    h.answer(0.0, {0: idle(0.0), 1: TRYAGAIN, 2: idle(0.0), 3: idle(0.0)})
    step = h.step(0.0)
    assert isinstance(step, Finished)
    assert step.error is TRYAGAIN


# -- each shard's clock ---------------------------------------------------------------------


def test_each_shard_is_waited_for_on_its_own_primarys_clock() -> None:
    """Shard 1's primary runs a second ahead: its timer due in 0.2 s of its clock is claimed at 0.2 s."""
    h = sharded(shards=2)
    h.shard_calls(0.0)
    h.answer(
        0.0,
        {
            0: shard_reply(0.0, next_due=server_ms(0.5)),
            1: shard_reply(0.0, clock_ahead_ms=1000, next_due=server_ms(0.2) + 1000),
        },
    )

    assert wait_seconds(h, 0.0) == pytest.approx(0.2, abs=1e-3)
    assert list(h.shard_calls(0.2)) == [1]
    h.answer(0.2, {1: shard_reply(0.2, clock_ahead_ms=1000)})
    assert wait_seconds(h, 0.2) == pytest.approx(0.3, abs=1e-3)
    assert list(h.shard_calls(0.5)) == [0]


def test_leases_are_renewed_on_their_shards_clock_and_the_renewal_goes_to_that_shard() -> None:
    h = sharded(shards=2, lease_seconds=3)
    h.shard_calls(0.0)
    a, b = h.answer(
        0.0,
        {
            0: shard_reply(0.0, claim(ORDERS, "a", "1.1")),
            1: shard_reply(0.0, claim(REMINDERS, "b", "1.1"), clock_ahead_ms=500),
        },
    )
    assert (a.shard, b.shard) == (0, 1)

    # A third of the lease on each shard's own clock: b's on shard 0's, half a second behind, would be 1.5 s.
    calls = h.shard_calls(1.0)
    assert settlements(calls[0]) == [("renew", ORDERS, "a", "1.1", 0, "")]
    assert settlements(calls[1]) == [("renew", REMINDERS, "b", "1.1", 0, "")]


def test_a_single_pass_ends_each_shard_at_its_own_cutoff() -> None:
    h = sharded(shards=2, single_pass=True, concurrency=4)
    first = h.shard_calls(0.0)
    assert [call.args[2] for call in first.values()] == ["", ""]
    runs = h.answer(
        0.0,
        {
            0: shard_reply(0.0, examined=0),
            1: shard_reply(0.0, claim(ORDERS, "a", "1.1"), claim(ORDERS, "b", "1.2"), clock_ahead_ms=1000),
        },
    )
    for run in runs:
        h.engine.handler_finished(run, None)

    calls = h.shard_calls(0.1)
    assert list(calls) == [1]  # shard 0 has nothing left before its cutoff
    assert calls[1].args[2] == server_ms(0.0) + 1000 + 1
    h.answer(0.1, {1: shard_reply(0.1, clock_ahead_ms=1000)})
    assert isinstance(h.step(0.1), Finished)


def test_a_single_pass_ends_a_shard_whose_call_only_settled_once_nothing_is_due_there() -> None:
    """One slot over two shards: the round trip that acks shard 0's run gives its one claim to shard 1."""
    h = sharded(shards=2, single_pass=True, concurrency=1)
    assert list(h.shard_calls(0.0)) == [0]  # the one claim goes to shard 0; shard 1 is asked nothing yet
    [run] = h.answer(0.0, {0: shard_reply(0.0, claim(ORDERS, "a", "1.1"), next_due=server_ms(0.0))})
    h.engine.handler_finished(run, None)

    calls = h.shard_calls(0.1)
    assert list(calls) == [0, 1]
    assert [call.args[1] for call in calls.values()] == [0, 1]  # shard 0 settles only; shard 1 claims
    h.answer(0.1, {0: shard_reply(0.1, examined=0), 1: idle(0.1)})
    assert isinstance(h.step(0.1), Finished)  # not a wait for shard 0's safety claim


# -- settlements go to the shard a run came from ----------------------------------------------


def test_settlements_go_to_the_shard_each_run_came_from() -> None:
    h = sharded(max_attempts=1)
    h.shard_calls(0.0)
    runs = h.answer(
        0.0,
        {
            0: idle(0.0),
            1: idle(0.0),
            2: shard_reply(0.0, claim(ORDERS, "a", "1.1"), claim(ORDERS, "b", "1.2")),
            3: shard_reply(0.0, claim(REMINDERS, "c", "1.1")),
        },
    )
    assert [run.shard for run in runs] == [2, 2, 3]
    h.engine.handler_finished(runs[0], None)
    h.engine.handler_finished(runs[1], RuntimeError("boom"))
    h.engine.handler_finished(runs[2], None)

    calls = h.shard_calls(0.1)

    assert list(calls) == [2, 3]
    assert kinds(calls[2]) == ["ack", "dead"]
    assert settlements(calls[3]) == [("ack", REMINDERS, "c", "1.1", 0, "")]
    assert calls[2].keys[0] == h.namespace.keyspaces[2].dead_letters


def test_a_claim_past_its_attempts_is_buried_in_its_own_shard() -> None:
    h = sharded(shards=2, max_attempts=2)
    h.shard_calls(0.0)
    assert h.answer(0.0, {0: idle(0.0), 1: shard_reply(0.0, claim(ORDERS, "a", "1.1", attempts=3))}) == []
    calls = h.shard_calls(0.0)
    assert list(calls) == [1]
    assert kinds(calls[1]) == ["dead"]


# -- a lost reply is replayed per shard -------------------------------------------------------


def test_an_interrupted_cycle_is_replayed_on_every_shard_under_the_same_records() -> None:
    h = sharded()
    first = h.shard_calls(0.0)
    h.engine.cycle_interrupted()

    again = h.shard_calls(0.0)

    assert {shard: call.keys[1] for shard, call in again.items()} == {
        shard: call.keys[1] for shard, call in first.items()
    }


def test_a_failed_shard_replays_its_record_while_the_others_move_on() -> None:
    h = sharded(shards=2, rng_value=0.0)
    first = h.shard_calls(0.0)
    h.answer(0.0, {0: shard_reply(0.0, next_due=server_ms(0.0)), 1: TRYAGAIN})

    second = h.shard_calls(0.0)
    assert list(second) == [0]
    assert second[0].keys[1] != first[0].keys[1]
    assert second[0].keys[2] == first[0].keys[1]
    h.answer(0.0, {0: idle(0.0)})

    retried = h.shard_calls(wait_seconds(h, 0.0))
    assert retried[1].keys[1] == first[1].keys[1]  # the script hands back what the lost call claimed


def test_a_stop_replays_each_interrupted_shard_and_hands_its_claims_back() -> None:
    h = sharded(shards=3)
    h.shard_calls(0.0)
    h.answer(0.0, {0: idle(0.0), 1: idle(0.0), 2: idle(0.0)})
    h.engine.rearm()
    interrupted = h.shard_calls(0.0)
    h.engine.cycle_interrupted()
    h.engine.request_stop(0.0)

    replays = h.shard_calls(0.0)

    assert list(replays) == [0, 1, 2]
    assert all(asked(call) == 0 for call in replays.values())
    assert [call.keys[1] for call in replays.values()] == [call.keys[1] for call in interrupted.values()]
    assert h.answer(0.0, {0: idle(0.0), 1: shard_reply(0.0, claim(ORDERS, "x", "1.1")), 2: idle(0.0)}) == []
    calls = h.shard_calls(0.0)
    assert list(calls) == [1]
    assert settlements(calls[1]) == [("release", ORDERS, "x", "1.1", 0, "")]
    h.answer(0.0, {1: idle(0.0)})
    assert isinstance(h.step(0.0), Finished)


# -- stop -----------------------------------------------------------------------------------


def test_a_stop_hands_every_shards_runs_back_to_their_shards_and_retries_the_one_that_fails() -> None:
    h = sharded(rng_value=0.0)
    h.shard_calls(0.0)
    runs = h.answer(
        0.0,
        {
            0: idle(0.0),
            1: shard_reply(0.0, claim(ORDERS, "a", "1.1")),
            2: idle(0.0),
            3: shard_reply(0.0, claim(ORDERS, "b", "1.1")),
        },
    )
    assert len(runs) == 2
    h.engine.request_stop(0.0, grace=1.0)
    assert wait_seconds(h, 0.0) == pytest.approx(1.0)

    calls = h.shard_calls(1.0)
    assert list(calls) == [1, 3]
    assert kinds(calls[1]) == kinds(calls[3]) == ["release"]
    h.answer(1.0, {1: idle(1.0), 3: UNREACHABLE})

    pause = wait_seconds(h, 1.0)
    calls = h.shard_calls(1.0 + pause)
    assert list(calls) == [3]
    assert settlements(calls[3]) == [("release", ORDERS, "b", "1.1", 0, "")]
    h.answer(1.0 + pause, {3: idle(1.0 + pause)})
    assert isinstance(h.step(1.0 + pause), Finished)


def test_a_stop_gives_up_on_a_shard_that_stays_down_at_the_flush_bound() -> None:
    h = sharded(shards=2, rng_value=0.0)
    h.shard_calls(0.0)
    h.answer(0.0, {0: shard_reply(0.0, claim(ORDERS, "a", "1.1")), 1: shard_reply(0.0, claim(ORDERS, "b", "1.1"))})
    h.engine.request_stop(0.0, grace=0.0)
    calls = h.shard_calls(0.0)
    h.answer(0.0, {0: idle(0.0), 1: UNREACHABLE})
    now = 0.0
    while not isinstance(step := h.step(now), Finished):
        if isinstance(step, Wait):
            now += step.seconds
        else:
            assert isinstance(step, Cycle)
            assert [h.shard_of_call(call) for call in step.calls] == [1]
            h.answer(now, {1: UNREACHABLE})
        assert now <= STOP_FLUSH_SECONDS + 1e-9
    assert now == pytest.approx(STOP_FLUSH_SECONDS)
    assert set(calls) == {0, 1}


# -- wake-ups and the safety claim ------------------------------------------------------------


def test_the_channels_are_every_shards_channels_of_every_topic() -> None:
    h = sharded(shards=3)
    assert h.engine.channels == [
        keyspace.channel(topic) for keyspace in Namespace("timers", 3).keyspaces for topic in ("orders", "reminders")
    ]


def test_a_wake_up_is_for_its_own_shard_only() -> None:
    h = sharded()
    h.shard_calls(0.0)
    h.answer(0.0, {shard: idle(0.0) for shard in range(4)})
    channel = h.namespace.keyspaces[2].channel("orders")

    h.engine.notified_on(channel.encode(), str(server_ms(0.5)).encode())
    h.engine.notified_on("{nobody}:wake:orders", str(server_ms(0.1)))
    h.engine.notified_on(h.namespace.keyspaces[1].channel("orders"), "soon")

    assert wait_seconds(h, 0.0) == pytest.approx(0.5, abs=1e-3)
    assert list(h.shard_calls(0.5)) == [2]


def test_rearm_reclaims_every_shard() -> None:
    h = sharded()
    h.shard_calls(0.0)
    h.answer(0.0, {shard: idle(0.0) for shard in range(4)})
    assert isinstance(h.step(0.0), Wait)

    h.engine.rearm()

    assert list(h.shard_calls(0.0)) == [0, 1, 2, 3]


def test_an_idle_worker_sends_one_probe_per_safety_interval_for_all_shards_of_a_server() -> None:
    h = sharded(safety_wakeup_seconds=8.0)
    calls = h.shard_calls(0.0)
    assert list(calls) == [0, 1, 2, 3]  # the first claim learns each shard's next due time
    h.answer(0.0, {shard: idle(0.0) for shard in calls})
    now, probes = 0.0, 0
    for _ in range(5):
        wait = wait_seconds(h, now)
        assert wait == pytest.approx(8.0)
        now += wait
        probes += len(h.probe(now, dict.fromkeys(range(4))))
    assert probes == 5  # one server holds every shard: one call per interval, not four


def test_the_safety_checks_of_shards_claimed_at_other_times_fall_into_step() -> None:
    h = sharded(shards=2, safety_wakeup_seconds=8.0)
    h.shard_calls(0.0)
    h.answer(0.0, {0: idle(0.0), 1: shard_reply(0.0, next_due=server_ms(3.0))})
    assert list(h.shard_calls(3.0)) == [1]
    h.answer(3.0, {1: idle(3.0)})

    assert wait_seconds(h, 3.0) == pytest.approx(5.0, abs=1e-3)  # shard 0's check is due first
    # Shard 1's is 3 s away, but it joins the probe: checked apart, the shards would cost a call each per interval.
    [call] = h.probe(8.0, {0: None, 1: None})
    assert {h.shard_of_key(str(key)) for key in call.args[1:]} == {0, 1}
    assert wait_seconds(h, 8.0) == pytest.approx(8.0, abs=1e-3)
    [call] = h.probe(16.0, {0: None, 1: None})
    assert {h.shard_of_key(str(key)) for key in call.args[1:]} == {0, 1}


def test_one_shard_keeps_a_single_call_per_cycle() -> None:
    h = Harness(legacy_import=False)
    step = h.step(0.0)
    assert isinstance(step, Cycle)
    assert step.more == ()
    assert step.calls == (step.call,)


def test_an_error_that_is_not_a_server_reply_still_counts_as_that_shards_outage() -> None:
    """Whatever the driver returns as an error is that call's: a plain server error stops, as alone."""
    h = sharded(shards=2)
    h.shard_calls(0.0)
    wrongtype = TimersServerError("WRONGTYPE Operation against a key holding the wrong kind of value")
    h.answer(0.0, {0: idle(0.0), 1: wrongtype})
    step = h.step(0.0)
    assert isinstance(step, Finished)
    assert step.error is wrongtype


def test_a_failed_import_over_several_shards_delays_the_import_alone() -> None:
    """The import writes into every shard: one shard's node down must not hold the other shards' timers back."""
    h = Harness(shards=4, rng_value=0.0)
    step = h.step(0.0)
    assert isinstance(step, Maintain)

    assert h.engine.step_failed(0.0, TRYAGAIN) is True

    assert list(h.shard_calls(0.0)) == [0, 1, 2, 3]  # the shards go on at once
    h.answer(0.0, {shard: idle(0.0) for shard in range(4)})
    pause = wait_seconds(h, 0.0)
    assert pause == pytest.approx(0.025)  # the import is tried again after its own pause
    assert isinstance(h.step(pause), Maintain)
    assert h.engine.step_failed(pause, TRYAGAIN) is True
    second = wait_seconds(h, pause)
    assert second == pytest.approx(0.05)  # its backoff grows like a shard's
    step = h.step(pause + second)
    assert isinstance(step, Maintain)
    while isinstance(step, Maintain):  # Redis answers the import again: its steps, a few pages each
        nothing_to_import(step.flow)
        h.engine.maintenance_done(0)
        step = h.step(pause + second)
    assert isinstance(step, Wait)
    assert step.seconds == pytest.approx(h.settings.safety_wakeup_seconds - pause - second)


def test_a_lone_call_to_one_of_several_shards_that_fails_pauses_that_shard_alone() -> None:
    """A cycle of one call goes the single-call way (`step_failed` without a shard); it is still that shard's."""
    h = sharded(shards=2, rng_value=0.0)
    h.shard_calls(0.0)
    h.answer(0.0, {0: idle(0.0), 1: idle(0.0)})
    h.engine.notified_on(h.namespace.keyspaces[1].channel("orders"), str(server_ms(0.0)))
    step = h.step(0.0)
    assert isinstance(step, Cycle)
    assert step.more == ()
    assert h.shard_of_call(step.call) == 1

    assert h.engine.step_failed(0.0, TRYAGAIN) is True

    h.engine.notified_on(h.namespace.keyspaces[0].channel("orders"), str(server_ms(0.0)))
    assert list(h.shard_calls(0.0)) == [0]  # shard 0 goes on at once
    h.answer(0.0, {0: idle(0.0)})
    pause = wait_seconds(h, 0.0)
    assert pause == pytest.approx(0.025)
    assert list(h.shard_calls(pause)) == [1]
