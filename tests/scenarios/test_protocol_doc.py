"""What docs/protocol.md says about the keys and scripts on the server, checked on it through both front ends."""

from __future__ import annotations

import datetime
from pathlib import Path

from redis_timers import TimersSettings
from tests.harness import Front, Recorder, running, spec, wait_until
from tests.scenarios.models import Job

NOW = datetime.timedelta(0)
PROTOCOL = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")


def test_the_library_loads_its_scripts_again_after_a_script_flush(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, lambda payload, context: None))
    timers.set_timer("jobs", "before", Job(n=1), datetime.timedelta(hours=1))

    assert "redis-py does not load scripts for it" in PROTOCOL
    front.raw.script_flush()  # the server now answers NOSCRIPT to every EVALSHA
    timers.set_timer("jobs", "after", Job(n=2), datetime.timedelta(hours=1))

    info = timers.get_timer("jobs", "after")
    assert info is not None
    assert info.payload == Job(n=2)
    assert timers.remove_timer("jobs", "before")


def test_a_claim_record_is_a_string_that_expires_with_the_lease(front: Front) -> None:
    gate = front.gate()
    started: Recorder[int] = Recorder()

    def hold(payload: Job, context: dict[str, object]) -> None:
        started.record(payload.n)
        gate.wait()

    settings = TimersSettings(lease_seconds=30)
    timers = front.timers(spec("jobs", Job, hold, blocking=True), settings=settings)
    timers.set_timer("jobs", "held", Job(n=1), NOW)
    # With its one slot busy the worker makes no round trip until the lease needs renewing (10 s), and the
    # next round trip is what deletes the record.
    with running(timers, concurrency=1):
        started.wait_for(1)
        records = [key for key in front.all_keys() if key.startswith("{timers}:claim:")]
        assert records, front.all_keys()
        for record in records:
            assert front.raw.type(record) == "string"
            assert 0 < front.raw.pttl(record) <= 30_000
        assert any("held" in str(front.raw.get(record)) for record in records)  # the claims string
        assert "| `{ns}:claim:<worker>:<n>` | STRING |" in PROTOCOL
        gate.open()
        wait_until(lambda: front.raw.zcard("{timers}:timeline:jobs") == 0)


def test_a_claim_record_holds_no_copy_of_the_payloads_it_claimed(front: Front) -> None:
    """While handlers hold big payloads, the record names the claims (topic, token, id) and no more."""
    gate = front.gate()
    started: Recorder[int] = Recorder()

    def hold(payload: Job, context: dict[str, object]) -> None:
        started.record(payload.n)
        gate.wait()

    big = "x" * 100_000
    timers = front.timers(spec("jobs", Job, hold, blocking=True), settings=TimersSettings(lease_seconds=30))
    for n in range(4):
        timers.set_timer("jobs", f"big-{n}", Job(n=n, note=big), NOW)
    with running(timers, concurrency=4):
        started.wait_for(4)
        records = [key for key in front.all_keys() if key.startswith("{timers}:claim:")]
        assert records, front.all_keys()
        total = sum(int(front.raw.strlen(record)) for record in records)
        assert 0 < total < 1_000, total  # four claims of 400 KB of payloads: a few dozen bytes each
        assert sum(int(front.raw.memory_usage(record) or 0) for record in records) < 2_000
        assert "the claim record names each claim" in PROTOCOL
        gate.open()
        wait_until(lambda: front.raw.zcard("{timers}:timeline:jobs") == 0)
