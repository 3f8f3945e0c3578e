"""WorkerEngine driven step by step: a fake monotonic `now`, scripted cycle replies, no Redis."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import pytest

from redis_timers import legacy, scripts
from redis_timers.engine import (
    GATHER_SECONDS,
    MAX_CLAIM_BATCH,
    STOP_FLUSH_SECONDS,
    UNREGISTERED,
    Cycle,
    Finished,
    Maintain,
    Wait,
)
from redis_timers.errors import (
    TimersAuthenticationError,
    TimersConnectionError,
    TimersOutOfMemoryError,
    TimersPermissionError,
    TimersServerError,
    TimersUnavailableError,
)
from redis_timers.ops import Command, ScriptCall
from redis_timers.retry import MAX_CYCLE_FAILURE_PAUSE_SECONDS
from redis_timers.timing import FLOOR_CORRECTION_MS
from tests.unit.engine_harness import (
    ORDERS,
    REMINDERS,
    Harness,
    asked,
    claim,
    kinds,
    server_ms,
    settlements,
    wait_seconds,
)
from tests.unit.support import BASE_MS, Order, Reminder, assert_single_slot, nothing_to_import

BYTES_OR_STR = pytest.mark.parametrize("as_bytes", [False, True], ids=["decoded", "raw-bytes"])
OUTAGE = TimersConnectionError("Redis is unreachable")

HALF_MS = FLOOR_CORRECTION_MS / 1000
"""The clock reads the server's rounded-down `now` as half a millisecond later."""


# -- start-up -------------------------------------------------------------------------------


def test_first_step_imports_seed_timers_then_a_cycle_claims() -> None:
    h = Harness()

    first = h.step(0.0)
    assert isinstance(first, Maintain)
    ops, imported = nothing_to_import(first.flow)
    fingerprint, _, read = ops[:3]
    assert isinstance(fingerprint, ScriptCall)
    assert fingerprint.script is scripts.LEGACY_FINGERPRINT
    assert isinstance(read, ScriptCall)
    assert read.script is scripts.READ_LEGACY
    assert read.keys == ("timers_timeline",)
    h.engine.maintenance_done(imported)

    call = h.cycle(0.0)
    assert call.script is scripts.CYCLE
    dead, record, previous, heads, topic_set = call.keys
    assert dead == "{timers}:dead"
    assert record.startswith("{timers}:claim:")
    assert record.endswith(":0")
    assert previous.startswith("{timers}:claim:")
    assert previous.endswith(":none")
    assert heads == "{timers}:heads"
    assert topic_set == "{timers}:topics:" + hashlib.sha1(b"orders\nreminders", usedforsecurity=False).hexdigest()
    assert_single_slot(call.keys, "timers")
    # lease ms, claim limit, cutoff ('' = now), channel prefix, tag, rotation, how often the heads of the topic set are
    # rebuilt (the safety interval), no settlements, and no topics: the server has them (see below when it has not).
    assert call.args == (30_000, 100, "", "{timers}:wake:", "{timers}", 0, 8000, b"", "")


def test_a_shard_without_the_topic_set_gets_it_in_the_next_call_with_the_settlements_again() -> None:
    h = Harness()
    [run] = h.start(claim(ORDERS, "o-1", "1.1"))
    h.engine.handler_finished(run, None)
    first = h.cycle(0.1)
    assert first.args[7:] == (b"a1:1.1:3:o-1", "")

    h.reply(0.1, next_due=UNREGISTERED)  # the server lost the set (flushed): the call did nothing

    again = h.cycle(0.1)
    assert again.keys == first.keys, "the same claim record: the first call ran nothing"
    assert again.args[7:] == (b"a1:1.1:3:o-1", 2, "orders", "reminders")
    h.reply(0.1, next_due=server_ms(60.0))

    assert isinstance(h.step(0.2), Wait)
    h.engine.rearm()
    assert h.cycle(0.2).args[7:] == (b"", ""), "registered once: later calls name no topic"


def test_maintenance_runs_again_after_the_import_interval() -> None:
    h = Harness(legacy_import_interval_seconds=60, safety_wakeup_seconds=600)
    h.start()

    assert isinstance(h.step(59.9), Wait)
    assert isinstance(h.step(60.0), Maintain)


def test_an_import_that_moved_timers_makes_the_worker_claim() -> None:
    h = Harness(legacy_import_interval_seconds=1)
    h.start(next_due=server_ms(100.0))
    assert isinstance(h.step(0.5), Wait)

    h.maintain(1.0, imported=3)

    assert isinstance(h.step(1.0), Cycle)


def test_a_worker_without_topics_never_imports() -> None:
    h = Harness(empty=True)

    call = h.cycle(0.0)

    assert call.keys[0] == "{timers}:dead"
    assert len(call.keys) == 5  # dead letters, the two claim records, the heads and the (empty) topic set
    assert call.args == (30_000, 100, "", "{timers}:wake:", "{timers}", 0, 8000, b"", "")
    h.reply(0.0)
    assert wait_seconds(h, 1000.0) > 0, "no safety claim: it has nothing to claim"


# -- claiming -------------------------------------------------------------------------------


@BYTES_OR_STR
def test_claimed_timers_become_runs(as_bytes: bool) -> None:
    h = Harness()

    runs = h.start(
        claim(ORDERS, "o-1", "7.1", attempts=2),
        claim(REMINDERS, "r\0odd--id", "8.1", attempts=1),
        as_bytes=as_bytes,
    )

    assert [(run.topic, run.timer_id, run.token, run.attempts, run.topic_index) for run in runs] == [
        ("orders", "o-1", "7.1", 2, ORDERS),
        ("reminders", "r\0odd--id", "8.1", 1, REMINDERS),
    ]
    assert runs[0].payload == Order(order_id=1)
    assert runs[1].payload == Reminder(text="call mum")
    assert runs[0].handler is h.registry.find("orders")
    assert runs[0].run_id != runs[1].run_id
    assert h.engine.in_flight == 2


def test_claims_never_exceed_free_slots() -> None:
    h = Harness(concurrency=3)
    h.maintain()
    assert asked(h.cycle(0.0)) == 3
    first = h.reply(0.0, claim(ORDERS, "a", "1.1"), claim(ORDERS, "b", "1.2"), next_due=server_ms(0.0))

    # A backlog is due at once: claim again, but only for the one free slot.
    assert asked(h.cycle(0.0)) == 1
    h.reply(0.0, claim(ORDERS, "c", "2.1"), next_due=server_ms(0.0))

    # Full: no claim although timers are due; wait for a handler instead.
    assert isinstance(h.step(0.0), Wait)
    assert isinstance(h.step(0.5), Wait)

    h.engine.handler_finished(first[0], None)
    call = h.cycle(0.5)
    assert asked(call) == 1
    assert kinds(call) == ["ack"]


def test_claim_limit_follows_concurrency_and_is_capped_per_batch() -> None:
    assert asked(Harness(empty=True, concurrent_processing_limit=7).cycle(0.0)) == 7
    assert asked(Harness(empty=True, concurrent_processing_limit=7, concurrency=2).cycle(0.0)) == 2
    assert asked(Harness(empty=True, concurrency=5000).cycle(0.0)) == MAX_CLAIM_BATCH


def test_claims_rotate_the_first_topic_for_fairness() -> None:
    h = Harness()
    h.maintain()
    rotations = []
    for _ in range(3):
        call = h.cycle(0.0)
        rotations.append(call.args[5])
        h.reply(0.0, next_due=server_ms(0.0))

    assert rotations == [0, 1, 0]


# -- waiting --------------------------------------------------------------------------------


def test_wait_follows_next_due_through_the_server_clock_offset() -> None:
    h = Harness()
    h.maintain(10.0)
    h.cycle(10.0)
    # Sent at 10.0, answered at 10.2: the server's 5_000_000 ms is monotonic 10.1.
    h.engine.cycle_succeeded([5_000_000, 5_001_000, 0, 0, b""], 10.0, 10.2)

    assert wait_seconds(h, 10.2) == pytest.approx(0.9 - HALF_MS)
    assert wait_seconds(h, 10.6) == pytest.approx(0.5 - HALF_MS)
    assert isinstance(h.step(11.1), Cycle)


def test_no_claim_before_next_due_by_the_servers_clock() -> None:
    h = Harness()
    due = server_ms(0.0) + 2500
    h.start(next_due=due)

    assert wait_seconds(h, 0.0) == pytest.approx(2.5 - HALF_MS)
    assert wait_seconds(h, 2.499) == pytest.approx(0.001 - HALF_MS)
    assert isinstance(h.step(2.5), Cycle)


@pytest.mark.parametrize("next_due", [-1, BASE_MS + 3_600_000], ids=["nothing-scheduled", "due-in-an-hour"])
def test_idle_wait_is_capped_by_the_safety_wakeup(next_due: int) -> None:
    h = Harness(safety_wakeup_seconds=2.5, legacy_import_interval_seconds=3600)
    h.start(next_due=next_due)

    assert wait_seconds(h, 0.0) == pytest.approx(2.5)
    # Once per interval an idle worker claims anyway, in case a notification was lost (one round trip).
    assert isinstance(h.step(2.5), Cycle)
    h.reply(2.5, next_due=next_due)
    assert wait_seconds(h, 2.5) == pytest.approx(2.5)


def test_a_notification_shortens_the_wait() -> None:
    h = Harness()
    h.start(next_due=server_ms(5.0))
    assert wait_seconds(h, 1.0) == pytest.approx(4.0 - HALF_MS)

    h.engine.notified("orders", server_ms(1.5))
    assert wait_seconds(h, 1.0) == pytest.approx(0.5 - HALF_MS)

    h.engine.notified("orders", server_ms(3.0))  # later than what we know: changes nothing
    h.engine.notified("invoices", server_ms(1.1))  # not our topic
    assert wait_seconds(h, 1.0) == pytest.approx(0.5 - HALF_MS)
    assert isinstance(h.step(1.5), Cycle)


@pytest.mark.parametrize("as_bytes", [False, True])
def test_notified_on_reads_channel_and_data(as_bytes: bool) -> None:
    h = Harness()
    h.start()
    assert wait_seconds(h, 0.0) == pytest.approx(8.0)

    def raw(text: str) -> str | bytes:
        return text.encode() if as_bytes else text

    h.engine.notified_on(raw("{other}:wake:orders"), raw(str(server_ms(0.1))))
    h.engine.notified_on(raw("{timers}:wake:orders"), raw("soon"))
    assert wait_seconds(h, 0.0) == pytest.approx(8.0)

    h.engine.notified_on(raw("{timers}:wake:reminders"), raw(str(server_ms(0.25))))
    assert wait_seconds(h, 0.0) == pytest.approx(0.25 - HALF_MS)


def test_channels_are_one_per_topic() -> None:
    assert Harness().engine.channels == ["{timers}:wake:orders", "{timers}:wake:reminders"]


def test_rearm_forces_a_claim() -> None:
    h = Harness()
    h.start()
    assert isinstance(h.step(1.0), Wait)

    h.engine.rearm()

    assert isinstance(h.step(1.0), Cycle)


# -- handler outcomes -----------------------------------------------------------------------


@BYTES_OR_STR
def test_success_is_acked_in_the_next_cycle(as_bytes: bool) -> None:
    h = Harness()
    [run] = h.start(claim(ORDERS, "o-1", "3.1"), as_bytes=as_bytes)

    h.engine.handler_finished(run, None)
    call = h.cycle(0.1)

    assert settlements(call) == [("ack", ORDERS, "o-1", "3.1", 0, "")]
    assert h.engine.in_flight == 0
    h.reply(0.1)
    assert isinstance(h.step(0.1), Wait)  # nothing left to send
    assert h.engine.stale_settlements == 0


def test_settlements_on_the_wire() -> None:
    """One string: `'<kind><topic index>:<token>:<id length>:<id>'`, then `'<delay_ms>:<error length>:<error>'`
    for a retry and `'<error length>:<error>'` for a dead letter."""
    h = Harness(max_attempts=2, rng_value=0.0)
    ok, flaky, doomed = h.start(
        claim(ORDERS, "o-1", "1.1"), claim(ORDERS, "o-2", "1.2"), claim(REMINDERS, "r-1", "1.3", attempts=2)
    )
    h.engine.handler_finished(ok, None)
    h.engine.handler_finished(flaky, RuntimeError("x"))
    h.engine.handler_finished(doomed, RuntimeError("y"))

    call = h.cycle(0.1)

    assert call.args[7:] == (b"a1:1.1:3:o-1r1:1.2:3:o-21000:15:RuntimeError: xd2:1.3:3:r-115:RuntimeError: y", "")


def test_ids_with_colons_survive_the_claim_reply() -> None:
    h = Harness()

    [run] = h.start(claim(ORDERS, "tenant:42:order:7", "9.1", attempts=3))

    assert (run.timer_id, run.token, run.attempts) == ("tenant:42:order:7", "9.1", 3)


def test_settlements_are_sent_once() -> None:
    h = Harness()
    [run] = h.start(claim(ORDERS, "o-1", "3.1"))
    h.engine.handler_finished(run, None)
    h.cycle(0.1)
    h.reply(0.1, next_due=server_ms(0.1))

    assert settlements(h.cycle(0.1)) == []


@pytest.mark.parametrize(("attempts", "delay_ms"), [(1, 1000), (2, 2000), (3, 4000), (4, 8000)])
def test_a_failure_is_retried_with_exponential_backoff(attempts: int, delay_ms: int) -> None:
    h = Harness(max_attempts=10, retry_backoff_seconds=1.0, rng_value=0.0)
    [run] = h.start(claim(ORDERS, "o-1", "3.1", attempts=attempts))

    h.engine.handler_finished(run, RuntimeError("boom"))

    assert settlements(h.cycle(0.1)) == [("retry", ORDERS, "o-1", "3.1", delay_ms, "RuntimeError: boom")]


def test_retry_jitter_only_adds_and_stays_inside_the_cap() -> None:
    h = Harness(retry_backoff_seconds=0.5, retry_backoff_max_seconds=3.0, max_attempts=20, rng_value=0.999)
    runs = h.start(claim(ORDERS, "a", "1.1", attempts=1), claim(ORDERS, "b", "1.2", attempts=10))

    for run in runs:
        h.engine.handler_finished(run, ValueError("x"))
    delays = [settlement[4] for settlement in settlements(h.cycle(0.1))]

    assert delays == [math.ceil(500 * (1 + 0.25 * 0.999)), 3000]


# A claim past the limit never runs (see test_handler_quirks.py), so 3 is the last attempt a handler can fail.
@pytest.mark.parametrize(("attempts", "kind"), [(2, "retry"), (3, "dead")])
def test_failure_at_max_attempts_goes_to_dead_letters_with_its_error(attempts: int, kind: str) -> None:
    h = Harness(max_attempts=3)
    [run] = h.start(claim(ORDERS, "o-1", "3.1", attempts=attempts))

    h.engine.handler_finished(run, KeyError("missing"))

    [settlement] = settlements(h.cycle(0.1))
    assert settlement[0] == kind
    assert settlement[5] == "KeyError: 'missing'"
    if kind == "dead":
        assert settlement[4] == 0


def test_a_handlers_max_attempts_overrides_the_setting() -> None:
    h = Harness(handler_max_attempts={"orders": 1, "reminders": 9}, max_attempts=2)
    runs = h.start(claim(ORDERS, "o-1", "1.1", attempts=1), claim(REMINDERS, "r-1", "1.2", attempts=2))

    for run in runs:
        h.engine.handler_finished(run, RuntimeError("no"))

    assert kinds(h.cycle(0.1)) == ["dead", "retry"]


def test_a_long_error_text_is_truncated() -> None:
    h = Harness(max_attempts=1)
    [run] = h.start(claim(ORDERS, "o-1", "1.1"))

    h.engine.handler_finished(run, RuntimeError("e" * 10_000))

    [settlement] = settlements(h.cycle(0.1))
    error = str(settlement[5])
    assert error.startswith("RuntimeError: eee")
    assert error.endswith("...")
    assert len(error) == 4003


@BYTES_OR_STR
@pytest.mark.parametrize("body", ['{"text": "a reminder, not an order"}', "not json", ""])
def test_a_payload_that_does_not_validate_goes_to_dead_letters_at_once(as_bytes: bool, body: str) -> None:
    h = Harness()

    runs = h.start(claim(ORDERS, "o-1", "4.1", body=body), claim(ORDERS, "o-2", "4.2"), as_bytes=as_bytes)

    assert [run.timer_id for run in runs] == ["o-2"]
    assert h.engine.in_flight == 1
    [settlement] = settlements(h.cycle(0.0))
    assert settlement[:5] == ("dead", ORDERS, "o-1", "4.1", 0)
    assert str(settlement[5]).startswith("payload does not validate against Order")


def test_stale_settlements_are_counted() -> None:
    h = Harness()
    h.start()
    h.engine.rearm()
    h.cycle(1.0)
    h.reply(1.0, stale=2)
    h.engine.rearm()
    h.cycle(2.0)
    h.reply(2.0, stale=1)

    assert h.engine.stale_settlements == 3


# -- lease renewal --------------------------------------------------------------------------


def test_a_lease_is_renewed_after_a_third_of_it() -> None:
    h = Harness(lease_seconds=3)
    [run] = h.start(claim(ORDERS, "o-1", "5.1"))

    assert wait_seconds(h, 0.0) == pytest.approx(1.0 - HALF_MS)
    assert wait_seconds(h, 0.999) == pytest.approx(0.001 - HALF_MS)
    call = h.cycle(1.0)
    assert call.args[0] == 3000
    assert settlements(call) == [("renew", ORDERS, "o-1", "5.1", 0, "")]
    h.reply(1.0)

    # The next renewal is another third later.
    assert wait_seconds(h, 1.0) == pytest.approx(1.0 + HALF_MS)
    assert settlements(h.cycle(2.0)) == [("renew", ORDERS, "o-1", "5.1", 0, "")]
    h.reply(2.0)

    h.engine.handler_finished(run, None)
    assert kinds(h.cycle(2.5)) == ["ack"]
    h.reply(2.5)
    assert wait_seconds(h, 2.5) == pytest.approx(8.0)  # nothing left to renew


def test_default_lease_is_renewed_after_ten_seconds() -> None:
    h = Harness(safety_wakeup_seconds=60)
    h.start(claim(ORDERS, "o-1", "5.1"))

    assert wait_seconds(h, 0.0) == pytest.approx(10.0 - HALF_MS)
    assert kinds(h.cycle(10.0)) == ["renew"]


# -- stopping -------------------------------------------------------------------------------


def test_stop_with_nothing_in_flight_finishes_at_once() -> None:
    h = Harness()
    h.start(next_due=server_ms(0.0))  # a backlog is due, but a stopping worker claims nothing

    h.engine.request_stop(0.0)

    assert h.engine.stopping
    assert isinstance(h.step(0.0), Finished)
    assert isinstance(h.step(5.0), Finished)


def test_stop_waits_for_runs_until_the_grace_deadline_then_hands_leases_back() -> None:
    h = Harness()
    done, slow = h.start(claim(ORDERS, "o-1", "1.1"), claim(ORDERS, "o-2", "1.2"), next_due=server_ms(0.0))

    h.engine.request_stop(1.0, grace=5.0)
    assert wait_seconds(h, 1.0) == pytest.approx(5.0)

    h.engine.handler_finished(done, None)
    call = h.cycle(2.0)
    assert asked(call) == 0  # settle, but claim nothing more
    assert settlements(call) == [("ack", ORDERS, "o-1", "1.1", 0, "")]
    h.reply(2.0, next_due=server_ms(0.0))
    assert wait_seconds(h, 2.0) == pytest.approx(4.0)

    call = h.cycle(6.0)
    assert asked(call) == 0
    assert settlements(call) == [("release", ORDERS, "o-2", "1.2", 0, "")]
    assert h.engine.in_flight == 0
    h.reply(6.0)
    assert isinstance(h.step(6.0), Finished)

    # The released run ends later: its outcome no longer counts.
    h.engine.handler_finished(slow, RuntimeError("too late"))
    assert isinstance(h.step(7.0), Finished)


def test_stop_uses_the_shutdown_grace_setting_by_default() -> None:
    h = Harness(shutdown_grace_seconds=2.0)
    h.start(claim(ORDERS, "o-1", "1.1"))

    h.engine.request_stop(1.0)
    h.engine.request_stop(2.0)  # a second request does not move the deadline

    assert wait_seconds(h, 1.0) == pytest.approx(2.0)
    assert kinds(h.cycle(3.0)) == ["release"]


def test_leases_are_still_renewed_while_stopping() -> None:
    h = Harness(lease_seconds=3)
    h.start(claim(ORDERS, "o-1", "1.1"))
    h.engine.request_stop(0.0, grace=10.0)

    assert wait_seconds(h, 0.0) == pytest.approx(1.0 - HALF_MS)
    call = h.cycle(1.0)
    assert asked(call) == 0
    assert kinds(call) == ["renew"]


def test_stop_gives_up_when_redis_stays_unreachable() -> None:
    h = Harness(rng_value=0.0)
    h.start(claim(ORDERS, "o-1", "1.1"))
    h.engine.request_stop(0.0, grace=1.0)

    now = 1.0
    assert kinds(h.cycle(now)) == ["release"]
    assert h.engine.step_failed(now, OUTAGE)
    while not isinstance(step := h.step(now), Finished):
        if isinstance(step, Wait):
            now += step.seconds
        else:
            assert isinstance(step, Cycle)
            assert kinds(step.call) == ["release"]  # handed back again and again
            assert h.engine.step_failed(now, OUTAGE)
        assert now < 1.0 + STOP_FLUSH_SECONDS + 10

    assert now >= 1.0 + STOP_FLUSH_SECONDS


def test_stop_cancels_a_pause_after_a_failure() -> None:
    h = Harness()
    [run] = h.start(claim(ORDERS, "o-1", "1.1"))
    h.engine.handler_finished(run, None)
    h.cycle(0.0)
    h.engine.step_failed(0.0, OUTAGE)
    assert isinstance(h.step(0.0), Wait)

    h.engine.request_stop(0.0)

    assert kinds(h.cycle(0.0)) == ["ack"]


# -- failed steps ---------------------------------------------------------------------------


def test_a_failed_cycle_requeues_settlements_but_not_renewals() -> None:
    h = Harness(lease_seconds=3, rng_value=0.0)
    finished, _slow = h.start(claim(ORDERS, "o-1", "1.1"), claim(ORDERS, "o-2", "1.2"))
    h.engine.handler_finished(finished, None)
    call = h.cycle(1.0)
    assert kinds(call) == ["ack", "renew"]

    assert h.engine.step_failed(1.0, OUTAGE) is True

    pause = wait_seconds(h, 1.0)
    h.maintain(1.0 + pause)  # the import is retried as soon as Redis answers again
    call = h.cycle(1.0 + pause)
    assert settlements(call) == [("ack", ORDERS, "o-1", "1.1", 0, "")]
    assert asked(call) == 99  # after a failure the engine claims again to learn the next due time


def fail_every_step(h: Harness, now: float, failures: int) -> tuple[float, list[float]]:
    """Redis is down: every step the engine asks for (cycle or import) fails. Returns the time and the pauses."""
    pauses = []
    h.engine.rearm()  # the notification connection dropped too
    for _ in range(failures):
        step = h.step(now)
        assert isinstance(step, (Cycle, Maintain)), step
        assert h.engine.step_failed(now, OUTAGE) is True
        pause = wait_seconds(h, now)
        pauses.append(pause)
        now += pause
    return now, pauses


@pytest.mark.parametrize(("rng_value", "jitter"), [(0.0, 0.5), (0.5, 1.25), (1.0, 2.0)])
def test_failed_steps_pause_with_capped_exponential_backoff_and_jitter(rng_value: float, jitter: float) -> None:
    h = Harness(rng_value=rng_value, handling_sleep=0.05)
    h.start()

    now, pauses = fail_every_step(h, 0.0, 10)

    assert pauses == pytest.approx([min(0.05 * 2**n * jitter, 5.0) for n in range(10)])

    # Redis is back: a success resets the backoff.
    h.maintain(now)
    h.cycle(now)
    h.reply(now)
    _, [pause] = fail_every_step(h, now, 1)
    assert pause == pytest.approx(0.05 * jitter)


def test_a_failed_import_is_retried_as_soon_as_the_pause_ends() -> None:
    h = Harness(rng_value=0.0)
    assert isinstance(h.step(0.0), Maintain)

    assert h.engine.step_failed(0.0, OUTAGE) is True

    assert wait_seconds(h, 0.0) == pytest.approx(0.025)
    h.maintain(0.025)
    assert isinstance(h.step(0.025), Cycle)


# -- single pass (handle_ready_timers) ------------------------------------------------------


@pytest.mark.parametrize("single_pass", [False, True])
def test_with_the_legacy_import_off_nothing_is_imported_even_after_a_failure(single_pass: bool) -> None:
    h = Harness(single_pass=single_pass, legacy_import=False, legacy_import_interval_seconds=1)

    assert isinstance(h.step(0.0), Cycle)
    if not single_pass:
        assert h.engine.step_failed(0.0, OUTAGE) is True
        for now in (10.0, 100.0):
            assert not isinstance(h.step(now), Maintain)


def test_single_pass_claims_up_to_the_first_replys_server_time() -> None:
    h = Harness(single_pass=True, concurrency=2)
    h.maintain()
    first = h.cycle(0.0)
    assert first.args[2] == ""
    runs = h.reply(0.0, claim(ORDERS, "a", "1.1"), claim(ORDERS, "b", "1.2"), next_due=server_ms(0.0))

    h.engine.handler_finished(runs[0], None)
    later = h.cycle(3.0)

    assert later.args[2] == server_ms(0.0) + 1
    assert asked(later) == 1


def test_single_pass_waits_for_a_timer_due_within_its_first_millisecond() -> None:
    # set_timer with no delay just before the pass: due at the next whole millisecond, not claimable yet.
    h = Harness(single_pass=True, concurrency=2)
    h.maintain()
    h.cycle(0.0)
    h.reply(0.0, next_due=server_ms(0.0) + 1)

    wait = h.step(0.0)
    assert isinstance(wait, Wait)
    assert 0 < wait.seconds <= 0.002
    h.cycle(0.002)
    [run] = h.reply(0.002, claim(ORDERS, "a", "1.1"))
    h.engine.handler_finished(run, None)
    h.cycle(0.003)
    h.reply(0.003, next_due=server_ms(0.0) + 2)  # due after the pass's first millisecond: left for later

    assert isinstance(h.step(0.003), Finished)


def test_single_pass_finishes_once_a_claim_comes_back_short_and_nothing_runs() -> None:
    h = Harness(single_pass=True, concurrency=3)
    h.maintain()
    h.cycle(0.0)
    runs = h.reply(0.0, claim(ORDERS, "a", "1.1"), claim(ORDERS, "b", "1.2"))
    assert isinstance(h.step(0.0), Wait)

    h.engine.handler_finished(runs[0], None)
    h.engine.handler_finished(runs[1], RuntimeError("x"))
    assert kinds(h.cycle(0.1)) == ["ack", "retry"]
    h.reply(0.1)

    assert isinstance(h.step(0.1), Finished)
    assert isinstance(h.step(100.0), Finished)


def test_single_pass_keeps_claiming_while_claims_come_back_full() -> None:
    h = Harness(single_pass=True, concurrency=1)
    h.maintain()
    h.cycle(0.0)
    [run] = h.reply(0.0, claim(ORDERS, "a", "1.1"), next_due=server_ms(0.0))
    h.engine.handler_finished(run, None)
    h.cycle(0.1)
    [run] = h.reply(0.1, claim(ORDERS, "b", "1.2"), next_due=server_ms(0.0))
    h.engine.handler_finished(run, None)
    h.cycle(0.2)
    h.reply(0.2)

    assert isinstance(h.step(0.2), Finished)


def test_single_pass_with_nothing_due_finishes_after_one_claim() -> None:
    h = Harness(single_pass=True)
    h.maintain()
    h.cycle(0.0)
    h.reply(0.0, next_due=server_ms(60.0))

    assert isinstance(h.step(0.0), Finished)


def test_single_pass_imports_only_once_and_reraises_failures() -> None:
    h = Harness(single_pass=True, concurrency=1, legacy_import_interval_seconds=1)
    h.maintain()
    h.cycle(0.0)
    [run] = h.reply(0.0, claim(ORDERS, "a", "1.1"), next_due=server_ms(0.0))
    assert isinstance(h.step(5.0), Wait)

    h.engine.handler_finished(run, None)
    h.cycle(5.0)
    assert h.engine.step_failed(5.0, OUTAGE) is False


def test_single_pass_does_not_spin_while_handlers_run() -> None:
    h = Harness(single_pass=True, concurrency=10)
    h.maintain()
    h.cycle(0.0)
    # One timer claimed (fewer than asked: the pass is exhausted); another one falls due at 0.1 s.
    h.reply(0.0, claim(ORDERS, "slow", "1.1"), next_due=server_ms(0.1))

    assert wait_seconds(h, 0.5) > 0.0


# -- things that must not crash a worker ----------------------------------------------------


def test_a_long_outage_does_not_crash_the_worker() -> None:
    h = Harness(rng_value=1.0)
    h.start()

    now, pauses = fail_every_step(h, 0.0, 1100)

    assert max(pauses) == pytest.approx(MAX_CYCLE_FAILURE_PAUSE_SECONDS)  # the cap, jitter included
    assert now > 3600


def test_a_handler_failing_many_times_is_retried_at_the_capped_delay() -> None:
    h = Harness(max_attempts=5000, retry_backoff_max_seconds=60.0)
    [run] = h.start(claim(ORDERS, "o-1", "1.1", attempts=1100))

    h.engine.handler_finished(run, RuntimeError("still failing"))

    assert settlements(h.cycle(0.1))[0][:5] == ("retry", ORDERS, "o-1", "1.1", 60_000)


def test_concurrency_defaults_to_the_setting() -> None:
    assert Harness(concurrent_processing_limit=4).engine.concurrency == 4
    assert Harness(concurrent_processing_limit=4, concurrency=9).engine.concurrency == 9


def test_a_negative_concurrency_is_refused() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        Harness(concurrency=-1)


def test_claim_records_advance_only_when_a_reply_arrives() -> None:
    """A cycle retried after a lost reply names the same claim record, so the script replays its claims."""
    h = Harness()
    h.maintain(0.0)
    first = h.cycle(0.0)
    assert h.engine.step_failed(0.0, OUTAGE) is True
    h.maintain(10.0)  # the import is retried first after an outage
    retried = h.cycle(10.0)
    assert retried.keys[1] == first.keys[1]  # same record: the script hands back what the lost reply claimed

    h.reply(10.0, next_due=server_ms(10.0))  # more is due: the worker claims again at once
    following = h.cycle(10.0)
    assert following.keys[1] != first.keys[1]
    assert following.keys[2] == first.keys[1]  # the answered call's record is deleted by the next one


def test_a_busy_worker_gathers_finished_runs_briefly_before_a_round_trip() -> None:
    """With fewer than a quarter of the slots free, settle and refill together after at most GATHER_SECONDS."""
    h = Harness(concurrency=8)
    runs = h.start(*(claim(ORDERS, f"o-{n}", f"1.{n}") for n in range(8)), next_due=server_ms(0.0))

    h.engine.handler_finished(runs[0], None)
    step = h.step(0.0)
    assert isinstance(step, Wait)
    assert step.seconds == pytest.approx(GATHER_SECONDS)
    assert kinds(h.cycle(GATHER_SECONDS)) == ["ack"]  # the window is over: one round trip for what finished
    h.reply(GATHER_SECONDS, next_due=server_ms(0.0))

    h.engine.handler_finished(runs[1], None)
    h.engine.handler_finished(runs[2], None)
    assert kinds(h.cycle(0.01)) == ["ack", "ack"]  # a quarter of the slots free: no waiting


def test_a_worker_with_nothing_in_flight_never_gathers() -> None:
    h = Harness(concurrency=8)
    [run] = h.start(claim(ORDERS, "o-1", "1.1"))
    h.engine.handler_finished(run, None)
    assert kinds(h.cycle(0.0)) == ["ack"]


@pytest.mark.parametrize(
    "outage",
    [
        TimersUnavailableError("READONLY You can't write against a read only replica."),
        TimersUnavailableError("BUSY Redis is busy running a script."),
        TimersUnavailableError("LOADING Redis is loading the dataset in memory"),
        TimersOutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'."),
    ],
    ids=lambda error: error.code,
)
def test_a_server_outage_is_waited_out_like_unreachability(outage: TimersServerError) -> None:
    h = Harness(rng_value=0.0)
    [run] = h.start(claim(ORDERS, "o-1", "1.1"))
    h.engine.handler_finished(run, None)
    assert kinds(h.cycle(1.0)) == ["ack"]

    assert h.engine.step_failed(1.0, outage) is True

    pause = wait_seconds(h, 1.0)
    assert pause > 0  # backs off: no hot loop
    h.maintain(1.0 + pause)
    assert settlements(h.cycle(1.0 + pause)) == [("ack", ORDERS, "o-1", "1.1", 0, "")]  # replayed, not lost


@pytest.mark.parametrize(
    "refusal",
    [
        TimersPermissionError("NOPERM User app has no permissions to access the '{timers}:dead' key"),
        TimersAuthenticationError("WRONGPASS invalid username-password pair or user is disabled."),
        TimersServerError("WRONGTYPE Operation against a key holding the wrong kind of value"),
    ],
    ids=lambda error: error.code,
)
def test_a_permanent_refusal_stops_the_worker_with_a_clear_log(
    refusal: TimersServerError, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness()
    [run] = h.start(claim(ORDERS, "o-1", "1.1"))
    h.engine.handler_finished(run, None)
    h.cycle(1.0)

    with caplog.at_level("ERROR", logger="redis_timers"):
        assert h.engine.step_failed(1.0, refusal) is False

    [record] = [record for record in caplog.records if record.levelname == "ERROR"]
    assert refusal.code in record.getMessage()
    assert "the worker stops" in record.getMessage()
    assert "No timer is lost" in record.getMessage()


# -- the legacy import, a page at a time ----------------------------------------------------------


def unhandled_page() -> list[int]:
    """The server's reply for a full page of the original timeline, all of a topic no worker here handles: its
    size, and none of its entries (`read_legacy` leaves other topics' out)."""
    return [legacy.LEGACY_BATCH]


def answer_import_step(flow: Any, page: list[Any]) -> list[Any]:
    """Drive one step of the import: the fingerprint (if asked), then `page` for the read; returns its calls."""
    ops: list[Any] = []
    reply: Any = None
    try:
        while True:
            op = flow.send(reply)
            ops.append(op)
            if isinstance(op, Command):
                reply = 7
            elif op.script is scripts.LEGACY_FINGERPRINT:
                reply = [b"1000", b"", b"", b"", b""]
            else:
                assert op.script is scripts.READ_LEGACY, op
                reply = page
    except StopIteration:
        return ops


def test_the_worker_makes_its_round_trips_between_the_pages_of_an_import_pass() -> None:
    """Regression: a whole pass (every page of the original timeline) ran before the worker's next round trip."""
    h = Harness()
    step = h.step(0.0)
    assert isinstance(step, Maintain)
    ops = answer_import_step(step.flow, unhandled_page())
    assert [op.script for op in ops if isinstance(op, ScriptCall)] == [scripts.LEGACY_FINGERPRINT, scripts.READ_LEGACY]
    h.engine.maintenance_done(0)

    for page in range(1, 4):
        h.cycle(0.0)  # the round trip the worker needs comes before the next page
        h.reply(0.0, next_due=server_ms(0.0))  # and more is due at once
        step = h.step(0.0)
        assert isinstance(step, Maintain), step
        ops = answer_import_step(step.flow, unhandled_page())
        assert len(ops) == 1, "one page per step"
        assert ops[0].args[:2] == (page * legacy.LEGACY_BATCH, (page + 1) * legacy.LEGACY_BATCH - 1)
        h.engine.maintenance_done(0)


def test_an_idle_worker_runs_the_pages_of_an_import_pass_back_to_back() -> None:
    h = Harness(legacy_import_interval_seconds=1, safety_wakeup_seconds=600)
    h.start()  # the first pass, and the first round trip: nothing is due
    for _ in range(3):
        step = h.step(1.0)
        assert isinstance(step, Maintain), step
        answer_import_step(step.flow, unhandled_page())
        h.engine.maintenance_done(0)
