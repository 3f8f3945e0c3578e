"""Lease tokens stay unique, whatever was deleted by hand."""

from __future__ import annotations

import datetime

from tests.harness import Front, Gate, HandlerFunc, Recorder, spec
from tests.scenarios.models import Job

NOW = datetime.timedelta(0)


def held_until_opened(gate: Gate, started: Recorder[Job]) -> HandlerFunc:
    def handler(payload: Job, context: dict[str, object]) -> None:
        started.record(payload)
        assert gate.wait(), "the test never opened the gate"

    return handler


def test_a_stale_ack_cannot_delete_a_live_run_after_the_state_hash_is_deleted(front: Front) -> None:
    stale_gate, live_gate = front.gate(), front.gate()
    stale_started, live_started = Recorder[Job](), Recorder[Job]()
    stale = front.timers(spec("jobs", Job, held_until_opened(stale_gate, stale_started), blocking=True))
    live = front.timers(spec("jobs", Job, held_until_opened(live_gate, live_started), blocking=True))

    stale.set_timer("jobs", "a", Job(n=1), NOW)
    stale_pass = stale.background("handle_ready_timers")
    stale_started.wait_for(1)
    # Someone deletes the claim counter's hash; then the timer is set again and another worker claims it.
    assert front.raw.delete("{timers}:state:jobs") == 1
    live.set_timer("jobs", "a", Job(n=2), NOW)
    live_pass = live.background("handle_ready_timers")
    assert live_started.wait_for(1) == [Job(n=2)]

    stale_gate.open()
    stale_pass.result(timeout=20)  # its ack has been sent: a stale one
    info = live.get_timer("jobs", "a")
    assert info is not None, "the stale run's ack deleted the live run"
    assert info.running is True
    assert info.payload == Job(n=2)

    live_gate.open()
    live_pass.result(timeout=20)
    assert live.get_timer("jobs", "a") is None
    assert front.timer_data() == []
