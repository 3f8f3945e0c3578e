"""The legacy import remembers what its last full pass saw: a pass that finds the original keys unchanged reads
no page of the original timeline, and every kind of write a process of the original library makes is still
noticed by the next pass. Passes are run by hand (`LegacyImport` with an `ImportMemory`, as a worker's engine
runs them) against the real server; the worker's own use of it runs through both front ends."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from redis_timers import TimersSettings, legacy, scripts
from redis_timers.keys import Namespace
from redis_timers.ops import Command, Op, ScriptCall
from tests.harness import Front, running, spec, wait_until
from tests.scenarios.models import Job
from tests.scenarios.test_legacy_upgrade import (
    HOUR,
    PAYLOADS,
    TIMELINE,
    jobs_registry,
    seed_remove_timer,
    seed_set_timer,
)

UNHANDLED = 2_000


def run_pass(client: redis.Redis, memory: legacy.ImportMemory) -> list[Op]:
    """One pass of the import with `memory`, step after step; returns the calls it made."""
    job = legacy.LegacyImport(Namespace("timers"), jobs_registry(), TimersSettings(), memory)
    ops: list[Op] = []
    while (step := job.next_step()) is not None:
        reply = None
        try:
            while True:
                op = step.send(reply)
                ops.append(op)
                if isinstance(op, Command):
                    reply = client.execute_command(*op.args)  # type: ignore[no-untyped-call]
                else:
                    assert isinstance(op, ScriptCall), op
                    reply = client.eval(op.script.source, len(op.keys), *op.keys, *op.args)
        except StopIteration:
            pass
    return ops


def pages_read(ops: list[Op]) -> int:
    return sum(1 for op in ops if isinstance(op, ScriptCall) and op.script is scripts.READ_LEGACY)


def payloads_read(ops: list[Op]) -> list[str]:
    """The members whose payloads the pass asked for (HMGET of the original payloads)."""
    return [
        member.decode() if isinstance(member, bytes) else str(member)
        for op in ops
        if isinstance(op, Command) and op.args[0] == "HMGET"
        for member in op.args[2:]
    ]


@pytest.fixture
def client(front: Front) -> Iterator[redis.Redis]:
    seeded = redis.Redis.from_url(front.url)
    later = int(time.time()) + HOUR
    # Many seed-era timers of a topic no worker here handles, and one of ours.
    seeded.zadd(TIMELINE, {f"invoices--{n}": later + n for n in range(UNHANDLED)})
    seeded.hset(PAYLOADS, mapping={f"invoices--{n}": Job(n=n).model_dump_json() for n in range(UNHANDLED)})
    try:
        yield seeded
    finally:
        seeded.close()


def settled(client: redis.Redis) -> legacy.ImportMemory:
    """A memory after the passes a worker makes first: one that imports, one that finds nothing more to do."""
    memory = legacy.ImportMemory()
    first = run_pass(client, memory)
    assert pages_read(first) == UNHANDLED // legacy.LEGACY_BATCH + 1
    run_pass(client, memory)
    assert memory.fingerprint is not None
    return memory


def test_a_pass_that_finds_nothing_new_reads_no_page_and_no_payload(front: Front, client: redis.Redis) -> None:
    seed_set_timer(front, "jobs--mine", int(time.time()) + HOUR, Job(n=1))
    memory = legacy.ImportMemory()
    first = run_pass(client, memory)
    assert payloads_read(first) == ["jobs--mine"], "only the payloads of handled topics are read"
    assert front.raw.zscore("{timers}:timeline:jobs", "mine") is not None
    run_pass(client, memory)

    quiet = run_pass(client, memory)

    assert pages_read(quiet) == 0
    assert payloads_read(quiet) == []
    assert len(quiet) <= 3, quiet  # the fingerprint (two calls) and one page of receipts


def test_a_new_seed_write_is_imported_by_the_next_pass(front: Front, client: redis.Redis) -> None:
    memory = settled(client)
    seed_set_timer(front, "jobs--new", int(time.time()) + HOUR, Job(n=2))

    ops = run_pass(client, memory)

    assert pages_read(ops) > 0
    info = front.timers(spec("jobs", Job, lambda payload, context: None)).get_timer("jobs", "new")
    assert info is not None
    assert info.payload == Job(n=2)


def test_a_seed_rewrite_with_the_same_score_is_imported_by_the_next_pass(front: Front, client: redis.Redis) -> None:
    due = int(time.time()) + HOUR
    seed_set_timer(front, "jobs--same", due, Job(n=1))
    memory = settled(client)

    seed_set_timer(front, "jobs--same", due, Job(n=2))  # the same due second, another payload
    run_pass(client, memory)

    info = front.timers(spec("jobs", Job, lambda payload, context: None)).get_timer("jobs", "same")
    assert info is not None
    assert info.payload == Job(n=2)


def test_a_seed_cancel_is_honoured_by_the_next_pass(front: Front, client: redis.Redis) -> None:
    seed_set_timer(front, "jobs--gone", int(time.time()) + HOUR, Job(n=1))
    memory = settled(client)
    assert front.raw.zscore("{timers}:timeline:jobs", "gone") is not None

    seed_remove_timer(front, "jobs--gone")
    run_pass(client, memory)

    assert front.raw.zscore("{timers}:timeline:jobs", "gone") is None


def test_a_seed_write_and_a_seed_fire_in_one_interval_are_noticed(front: Front, client: redis.Redis) -> None:
    """One member more and one less: the size is the same, the first entry is not."""
    memory = settled(client)
    seed_remove_timer(front, "invoices--0")  # the earliest, fired by a process of the original library
    seed_set_timer(front, "jobs--new", int(time.time()) + HOUR, Job(n=3))

    run_pass(client, memory)

    assert front.raw.zscore("{timers}:timeline:jobs", "new") is not None


def test_every_tenth_pass_is_a_full_one(front: Front, client: redis.Redis) -> None:
    memory = settled(client)
    reads = [pages_read(run_pass(client, memory)) for _ in range(2 * legacy.FULL_PASS_EVERY)]
    full = [n for n, pages in enumerate(reads) if pages]
    assert len(full) == 2, reads  # a change a fingerprint cannot see still waits ten intervals at most
    assert full[1] - full[0] == legacy.FULL_PASS_EVERY


def test_a_worker_does_not_read_the_original_timeline_again_while_nothing_changes(
    front: Front, client: redis.Redis
) -> None:
    """Regression: every pass (each `legacy_import_interval_seconds`) read every page of the original timeline."""

    def calls(command: str) -> int:
        return int(front.raw.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))

    settings = TimersSettings(legacy_import_interval_seconds=0.01, safety_wakeup_seconds=60)
    timers = front.timers(spec("jobs", Job, lambda payload, context: None), settings=settings)
    front.raw.config_resetstat()
    with running(timers):
        # Each pass takes the fingerprint (one ZCARD, two ZRANGEs); a full one then reads five pages (a ZRANGE
        # each): 100 passes of which one in ten is full read about 50 pages; were each full, 500. (The bytes sent
        # no longer tell: a page of other topics' entries comes back as its size alone.)
        wait_until(lambda: calls("zcard") >= 100, timeout=60)
        passes, ranges = calls("zcard"), calls("zrange")
    pages = ranges - 2 * passes  # and the few a cycle of this idle worker reads (the head of its one topic)
    full_pass_pages = UNHANDLED // legacy.LEGACY_BATCH + 1
    assert pages <= full_pass_pages * (passes // legacy.FULL_PASS_EVERY + 2) + 20, (passes, pages)


def test_a_full_pass_gets_back_none_of_the_entries_of_other_topics(front: Front, client: redis.Redis) -> None:
    """Regression: every page of a full pass came back whole (a member and a score per entry, 100,000 of them in the
    benchmark's `legacy` row), and the asyncio worker parsed them all in its event loop, stalling other timers."""
    seed_set_timer(front, "jobs--mine", int(time.time()) + HOUR, Job(n=1))
    front.raw.config_resetstat()

    ops = run_pass(client, legacy.ImportMemory())

    sent = int(front.raw.info("stats")["total_net_output_bytes"])
    assert pages_read(ops) == UNHANDLED // legacy.LEGACY_BATCH + 1  # every page is still read (and counted)
    assert payloads_read(ops) == ["jobs--mine"]
    assert front.raw.zscore("{timers}:timeline:jobs", "mine") is not None
    assert sent < UNHANDLED, sent  # less than a byte per entry of other topics: only each page's size comes back


def test_a_page_keeps_exactly_the_entries_a_worker_would_import_or_refuse(front: Front) -> None:
    """`read_legacy` splits a member at its first separator, as `legacy_entry` does, and compares bytes."""
    seeded = redis.Redis.from_url(front.url)
    entries = {
        b"jobs--1": 1,
        b"jobs--a--b": 2,  # the id holds the separator
        b"jobs--": 3,  # handled, refused later (empty id)
        b"jobs2--1": 4,  # another topic that starts like one handled here
        b"job--1": 5,
        b"jobs": 6,  # no separator
        b"\xff--1": 7,  # a topic that is not text
        b"--jobs--1": 8,  # an empty topic
    }
    try:
        seeded.zadd(TIMELINE, entries)
        reply = seeded.eval(scripts.READ_LEGACY.source, 1, TIMELINE, 0, 99, "--", "jobs", "other")
    finally:
        seeded.close()
    size, *flat = reply
    assert size == len(entries)
    assert flat[0::2] == [b"jobs--1", b"jobs--a--b", b"jobs--"]
    assert [legacy.legacy_entry(member, b"1", jobs_registry(), "--") is None for member in entries] == [
        False,
        False,
        False,
        True,
        True,
        True,
        True,
        True,
    ]
