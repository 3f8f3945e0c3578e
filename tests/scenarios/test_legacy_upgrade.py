"""Rolling upgrades from the original library: what its processes write, change and cancel.

A process of the original library (the seed) keeps timers in `timers_timeline` (ZSET of
`topic--id` -> whole-second due time) and `timers_payloads` (HASH of the same members -> JSON);
its `set_timer` writes both, its `remove_timer` deletes both. The tests write exactly that by hand.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redis_timers import TimersSettings, legacy, scripts
from redis_timers.keys import Namespace
from redis_timers.ops import Command, Op, ScriptCall
from redis_timers.registry import HandlerRegistry
from redis_timers.router import Router
from redis_timers.scripts import LuaScript
from tests.harness import Front, Recorder, running, spec
from tests.scenarios.models import Job

TIMELINE = "timers_timeline"
PAYLOADS = "timers_payloads"
HOUR = 3600


def seed_set_timer(front: Front, member: str | bytes, due_second: float, payload: Job) -> None:
    """What the seed's `set_timer` writes."""
    mapping: dict[Any, float] = {member: due_second}
    front.raw.zadd(TIMELINE, mapping)
    front.raw.hset(PAYLOADS, member, payload.model_dump_json())


def seed_remove_timer(front: Front, member: str) -> None:
    """What the seed's `remove_timer` deletes."""
    front.raw.zrem(TIMELINE, member)
    front.raw.hdel(PAYLOADS, member)


def recording(front: Front, **kwargs: Any) -> tuple[Any, Recorder[Job]]:
    calls: Recorder[Job] = Recorder()
    return front.timers(spec("jobs", Job, lambda payload, context: calls.record(payload)), **kwargs), calls


# -- entries that cannot be imported ------------------------------------------------------------


def test_entries_that_cannot_be_imported_are_skipped_with_one_log_line(
    front: Front, caplog: pytest.LogCaptureFixture
) -> None:
    timers, calls = recording(front)
    now = int(time.time())
    seed_set_timer(front, b"jobs--\xff\xfe", now - 1, Job(n=1))  # an id that is not UTF-8
    seed_set_timer(front, "jobs--" + "x" * 1025, now - 1, Job(n=2))  # over the 1,024-byte limit
    seed_set_timer(front, "jobs--forever", float("inf"), Job(n=3))
    seed_set_timer(front, "jobs--never", float("-inf"), Job(n=4))
    seed_set_timer(front, "jobs--", now - 1, Job(n=7))  # an empty id
    seed_set_timer(front, "jobs--good", now - 1, Job(n=5))

    with caplog.at_level(logging.WARNING, logger="redis_timers"):
        timers.handle_ready_timers()

    assert calls.items == [Job(n=5)]
    refusals = [record for record in caplog.records if "cannot be imported" in record.getMessage()]
    assert len(refusals) == 1
    message = refusals[0].getMessage()
    assert message.startswith("5 timer(s) in 'timers_timeline'")
    assert "not UTF-8" in message
    assert "1024" in message
    assert "not a finite number" in message
    assert "must not be empty" in message
    # Left where they are, for someone to look at; the worker carries on.
    assert front.raw.zcard(TIMELINE) == 5
    with running(timers):
        timers.set_timer("jobs", "after", Job(n=6), datetime.timedelta(0))
        assert calls.wait_for(2)[-1] == Job(n=6)


# -- rolling upgrades: the newest write wins, whichever side made it ----------------------------


def test_a_seed_reschedule_after_the_import_wins(front: Front) -> None:
    timers, calls = recording(front)
    now = int(time.time())
    seed_set_timer(front, "jobs--a", now + HOUR, Job(n=1, note="first"))
    timers.handle_ready_timers()
    info = timers.get_timer("jobs", "a")
    assert info is not None
    assert info.payload == Job(n=1, note="first")
    assert front.raw.zcard(TIMELINE) == 0

    seed_set_timer(front, "jobs--a", now - 1, Job(n=2, note="rescheduled by a seed process"))
    timers.handle_ready_timers()

    assert calls.items == [Job(n=2, note="rescheduled by a seed process")]
    timers.handle_ready_timers()
    assert calls.items == [Job(n=2, note="rescheduled by a seed process")]
    assert front.raw.exists(TIMELINE, PAYLOADS) == 0
    assert front.timer_data() == []


def test_a_seed_cancel_after_the_import_is_honoured(front: Front) -> None:
    timers, calls = recording(front)
    seed_set_timer(front, "jobs--a", int(time.time()) + HOUR, Job(n=1))
    seed_set_timer(front, "jobs--b", int(time.time()) + HOUR, Job(n=2))
    timers.handle_ready_timers()
    assert timers.get_timer("jobs", "a") is not None

    seed_remove_timer(front, "jobs--a")
    timers.handle_ready_timers()

    assert timers.get_timer("jobs", "a") is None
    assert timers.get_timer("jobs", "b") is not None
    assert calls.items == []
    assert timers.remove_timer("jobs", "b") is True
    timers.handle_ready_timers()
    assert front.raw.exists(TIMELINE, PAYLOADS) == 0
    assert front.timer_data() == []


def test_a_new_library_reschedule_after_the_import_wins(front: Front) -> None:
    timers, calls = recording(front)
    seed_set_timer(front, "jobs--a", int(time.time()) + HOUR, Job(n=1, note="seed"))
    timers.handle_ready_timers()
    timers.set_timer("jobs", "a", Job(n=2, note="new"), datetime.timedelta(0))

    timers.handle_ready_timers()

    assert calls.items == [Job(n=2, note="new")]
    timers.handle_ready_timers()
    assert calls.items == [Job(n=2, note="new")]
    assert front.raw.exists(TIMELINE, PAYLOADS) == 0


def test_a_seed_cancel_of_a_running_imported_timer_removes_it(front: Front) -> None:
    """The cancel drops the lease, as `remove_timer` does: the run's end cannot bring the timer back."""
    gate, started = front.gate(), Recorder[Job]()

    def held(payload: Job, context: dict[str, Any]) -> None:
        started.record(payload)
        assert gate.wait()

    worker = front.timers(spec("jobs", Job, held, blocking=True))
    importer = front.timers(spec("jobs", Job, lambda payload, context: None))
    seed_set_timer(front, "jobs--a", int(time.time()) - 1, Job(n=1))
    single_pass = worker.background("handle_ready_timers")
    started.wait_for(1)
    seed_remove_timer(front, "jobs--a")  # the copy the import kept is gone too

    importer.handle_ready_timers()
    assert importer.get_timer("jobs", "a") is None
    gate.open()
    single_pass.result(timeout=20)
    assert importer.get_timer("jobs", "a") is None
    assert front.timer_data() == []


# -- a worker that dies between two steps of a pass -----------------------------------------------


def jobs_registry() -> HandlerRegistry:
    router = Router()
    router.handler(topic="jobs", schema=Job)(lambda payload, context: None)
    registry = HandlerRegistry(separator="--", accepts_async=False, front_end="test")
    registry.include(router)
    return registry


class HandDrivenPass:
    """An import pass run by hand, one call at a time, so that a test can act between two of its steps
    (as a process of the original library or another worker would) or stop it there (as a worker dying would)."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url)
        self._flow = legacy.import_legacy(Namespace("timers"), jobs_registry(), TimersSettings())
        self._op: Op | None = next(self._flow)

    def step(self) -> Op:
        """Run the next call; returns it."""
        op = self._op
        assert op is not None, "the pass is over"
        if isinstance(op, Command):
            reply = self._client.execute_command(*op.args)  # type: ignore[no-untyped-call]
        else:
            assert isinstance(op, ScriptCall), op  # the import makes no durable (pipelined) writes
            reply = self._client.eval(op.script.source, len(op.keys), *op.keys, *op.args)
        try:
            self._op = self._flow.send(reply)
        except StopIteration:
            self._op = None
        return op

    def step_through(self, script: LuaScript) -> None:
        """Run calls up to and including the first call of `script`."""
        while True:
            op = self.step()
            if isinstance(op, ScriptCall) and op.script is script:
                return

    def step_until_command(self) -> None:
        """Run calls up to the first plain command, without running it."""
        while not isinstance(self._op, Command):
            self.step()

    def step_until(self, script: LuaScript) -> None:
        """Run calls up to the first call of `script`, without running it."""
        while not (isinstance(self._op, ScriptCall) and self._op.script is script):
            self.step()

    def finish(self) -> None:
        while self._op is not None:
            self.step()

    def close(self) -> None:
        self._client.close()


def pass_until(url: str, last: LuaScript) -> None:
    """Run an import pass by hand and stop right after its first call of `last`, as a worker dying there would."""
    hand = HandDrivenPass(url)
    try:
        hand.step_through(last)
    except AssertionError:
        raise AssertionError(f"the pass never called {last.name}") from None
    finally:
        hand.close()


def full_pass(url: str) -> None:
    """An import pass and nothing else: no worker round trip runs what it imported."""
    hand = HandDrivenPass(url)
    try:
        hand.finish()
    finally:
        hand.close()


@contextlib.contextmanager
def without_import(front: Front) -> Iterator[tuple[Any, Recorder[Job]]]:
    yield recording(front, settings=TimersSettings(legacy_import=False))


@pytest.mark.parametrize("last", [scripts.IMPORT_LEGACY, scripts.REMOVE_LEGACY], ids=["imported", "moved"])
def test_a_pass_that_dies_after_a_step_neither_loses_nor_repeats_a_timer(front: Front, last: LuaScript) -> None:
    seed_set_timer(front, "jobs--a", int(time.time()) - 1, Job(n=1))
    pass_until(front.url, last)
    # Another worker (not importing) runs the imported timer before any import pass comes again.
    with without_import(front) as (other, other_calls):
        other.handle_ready_timers()
        assert other_calls.items == [Job(n=1)]

    timers, calls = recording(front)
    timers.handle_ready_timers()
    timers.handle_ready_timers()

    assert calls.items == [], "the timer was imported again after it had run"
    assert front.raw.exists(TIMELINE, PAYLOADS) == 0
    assert front.timer_data() == []


def test_a_pass_that_dies_while_following_an_imported_timer_loses_nothing(front: Front) -> None:
    seed_set_timer(front, "jobs--a", int(time.time()) - 1, Job(n=1))
    timers, calls = recording(front)
    timers.handle_ready_timers()
    assert calls.items == [Job(n=1)]
    pass_until(front.url, scripts.SETTLE_LEGACY)  # the receipt is gone, the payload's copy not yet

    # The copy is left behind (never run: it is on no timeline); a seed process can still reuse the id.
    assert front.raw.hkeys(PAYLOADS) == ["jobs--a"]
    seed_set_timer(front, "jobs--a", int(time.time()) - 1, Job(n=2))
    timers.handle_ready_timers()
    assert calls.items == [Job(n=1), Job(n=2)]


# -- switched off ---------------------------------------------------------------------------------


@pytest.fixture
def namespace_only_url(front: Front) -> Iterator[str]:
    """A user that may touch the library's keys and channels only: any read of the seed's keys is refused."""
    front.raw.acl_setuser(
        "namespace-only",
        enabled=True,
        passwords=["+secret"],
        keys=["{timers}:*"],
        channels=["{timers}:*"],
        commands=["+@all"],
    )
    front.raw.acl_log_reset()
    host, port = front.url.removeprefix("redis://").split("/")[0].split(":")
    try:
        yield f"redis://namespace-only:secret@{host}:{port}"
    finally:
        front.raw.acl_deluser("namespace-only")


def test_with_the_legacy_import_off_nothing_seed_era_is_read(front: Front, namespace_only_url: str) -> None:
    seed_set_timer(front, "jobs--old", int(time.time()) - 1, Job(n=0))
    timers, calls = recording(front, url=namespace_only_url, settings=TimersSettings(legacy_import=False))

    timers.set_timer("jobs", "new", Job(n=1), datetime.timedelta(0))
    timers.handle_ready_timers()
    with running(timers):
        timers.set_timer("jobs", "newer", Job(n=2), datetime.timedelta(0))
        calls.wait_for(2)

    assert calls.items == [Job(n=1), Job(n=2)]
    assert front.raw.acl_log() == []
    assert front.raw.zrange(TIMELINE, 0, -1) == ["jobs--old"]

    # The same user with the import on does reach for the seed's keys, and is refused.
    importing, _ = recording(front, url=namespace_only_url)
    refused: BaseException | None = None
    try:
        importing.handle_ready_timers()
    except Exception as error:  # whichever error the front end makes of NOPERM
        refused = error
    assert refused is not None
    assert [entry["object"] for entry in front.raw.acl_log()] == [TIMELINE]


def test_between_two_passes_a_seed_write_counts_as_newer_than_a_new_library_write(front: Front) -> None:
    timers, calls = recording(front)
    seed_set_timer(front, "jobs--a", int(time.time()) + HOUR, Job(n=1, note="seed, imported"))
    timers.handle_ready_timers()
    timers.set_timer("jobs", "a", Job(n=2, note="new library"), datetime.timedelta(hours=1))
    seed_set_timer(front, "jobs--a", int(time.time()) - 1, Job(n=3, note="seed, again"))

    timers.handle_ready_timers()

    assert calls.items == [Job(n=3, note="seed, again")]


# -- a process of the original library writing between two steps of a pass -----------------------


def never_early(calls: Recorder[tuple[Job, float]]) -> list[tuple[Job, float]]:
    """The handler calls that started before their payload's `due` (an epoch second in `note`)."""
    return [(job, started) for job, started in calls.items if started < float(job.note)]


def timing_recording(front: Front, **kwargs: Any) -> tuple[Any, Recorder[tuple[Job, float]]]:
    calls: Recorder[tuple[Job, float]] = Recorder()
    handler = spec("jobs", Job, lambda payload, context: calls.record((payload, time.time())))
    return front.timers(handler, **kwargs), calls


def due(n: int, second: int) -> Job:
    """A payload that says the epoch second before which its handler must not start."""
    return Job(n=n, note=str(second))


def test_a_seed_reschedule_between_the_read_and_the_payloads_never_fires_early(front: Front) -> None:
    """The pass reads the timeline, then the payloads: a seed write between the two must not pair the new payload
    with the old (earlier) due time."""
    now = int(time.time())
    seed_set_timer(front, "jobs--a", now - 1, due(1, now - 1))
    hand = HandDrivenPass(front.url)
    try:
        hand.step_until_command()  # the timeline is read, the payloads not yet
        seed_set_timer(front, "jobs--a", now + HOUR, due(2, now + HOUR))
        hand.finish()
    finally:
        hand.close()
    worker, calls = timing_recording(front, settings=TimersSettings(legacy_import=False))
    worker.handle_ready_timers()
    assert never_early(calls) == []

    full_pass(front.url)  # the next pass takes the seed's newer write
    info = worker.get_timer("jobs", "a")
    assert info is not None
    assert info.payload == due(2, now + HOUR)
    assert info.due_at == datetime.datetime.fromtimestamp(now + HOUR, tz=datetime.timezone.utc)


def test_a_seed_reschedule_between_the_follow_up_reads_never_fires_early(front: Front) -> None:
    """Following an imported timer reads the original timeline and the payload's copy: a seed reschedule between
    the two reads must not be taken for a payload rewritten at the imported due time."""
    now = int(time.time())
    seed_set_timer(front, "jobs--a", now - 1, due(1, now - 1))
    full_pass(front.url)
    hand = HandDrivenPass(front.url)
    try:
        hand.step_through(scripts.LEGACY_RECEIPTS)
        hand.step()  # the first of the two reads of the original keys
        seed_set_timer(front, "jobs--a", now + HOUR, due(2, now + HOUR))
        hand.finish()
    finally:
        hand.close()
    worker, calls = timing_recording(front, settings=TimersSettings(legacy_import=False))
    worker.handle_ready_timers()
    assert never_early(calls) == []

    full_pass(front.url)
    info = worker.get_timer("jobs", "a")
    assert info is not None
    assert info.payload == due(2, now + HOUR)


def test_a_pass_that_read_a_receipt_another_pass_replaced_never_fires_early(front: Front) -> None:
    """Two workers import at once: one reads a receipt, the other imports a seed reschedule of that timer (a new
    receipt, the member off the original timeline); the first must not re-import the new payload at the old time."""
    now = int(time.time())
    seed_set_timer(front, "jobs--a", now - 1, due(1, now - 1))
    full_pass(front.url)
    slow = HandDrivenPass(front.url)
    try:
        slow.step_through(scripts.LEGACY_RECEIPTS)
        seed_set_timer(front, "jobs--a", now + HOUR, due(2, now + HOUR))
        full_pass(front.url)  # the other worker's pass
        slow.finish()
    finally:
        slow.close()
    worker, calls = timing_recording(front, settings=TimersSettings(legacy_import=False))
    worker.handle_ready_timers()
    assert never_early(calls) == []
    info = worker.get_timer("jobs", "a")
    assert info is not None
    assert info.payload == due(2, now + HOUR)
    assert info.due_at == datetime.datetime.fromtimestamp(now + HOUR, tz=datetime.timezone.utc)


@pytest.mark.parametrize("when", ["after the payloads", "before the removal"])
def test_a_seed_cancel_during_a_pass_does_not_make_it_step_over_a_timer(front: Front, when: str) -> None:
    """Pages of the original timeline are read by rank: a member the seed deleted meanwhile is no longer in front
    of the next page, so counting it there would skip the page's first timer."""
    now = int(time.time())
    pipe = front.raw.pipeline(transaction=False)
    for n in range(legacy.LEGACY_BATCH + 1):
        pipe.zadd(TIMELINE, {f"jobs--{n:04d}": now - 1})
        pipe.hset(PAYLOADS, f"jobs--{n:04d}", Job(n=n).model_dump_json())
    pipe.execute()
    hand = HandDrivenPass(front.url)
    try:
        hand.step_until_command()
        if when == "after the payloads":
            hand.step()
        else:
            hand.step_until(scripts.REMOVE_LEGACY)
        seed_remove_timer(front, "jobs--0000")
        hand.finish()
    finally:
        hand.close()
    worker, _ = recording(front, settings=TimersSettings(legacy_import=False))
    last = f"{legacy.LEGACY_BATCH:04d}"
    assert worker.get_timer("jobs", last) is not None, "the pass stepped over the next page's first timer"
    assert front.raw.zcard(TIMELINE) == 0


# -- cost ------------------------------------------------------------------------------------------


def test_a_pass_reads_no_payload_it_neither_imports_nor_finds_changed(front: Front) -> None:
    """Every pass (once a minute, per worker) reads the whole original timeline and follows every imported timer:
    the payloads of other topics' timers and the unchanged copies of imported ones must not cross the network."""
    timers, calls = recording(front)
    later = int(time.time()) + HOUR
    big = "x" * 10_000
    for n in range(100):
        seed_set_timer(front, f"invoices--{n}", later, Job(n=n, note=big))  # no handler here
        seed_set_timer(front, f"jobs--{n}", later, Job(n=n, note=big))
    timers.handle_ready_timers()  # imports the jobs (and reads their payloads once)
    assert front.raw.hlen("{timers}:legacy:jobs") == 100

    front.raw.config_resetstat()
    timers.handle_ready_timers()
    sent = int(front.raw.info("stats")["total_net_output_bytes"])

    # 100 payloads of 10 kB each would be 1 MB; members, receipts and scores are a few kB.
    assert sent < 100_000, f"the pass received {sent} bytes"
    assert calls.items == []
