"""Scenario 6: a worker killed with SIGKILL mid-handler loses nothing; another takes over after the lease."""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from redis_timers import TimersSettings
from tests.harness import Front, Recorder, datetime_to_ms, server_time_ms, spec, wait_until
from tests.scenarios.models import Job
from tests.scenarios.worker_process import STARTED_KEY, TOPIC, CrashPayload

REPO_ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 1
SHARDS = 4


@pytest.fixture
def worker_process(front: Front) -> Iterator[subprocess.Popen[bytes]]:
    """A worker of the same front end, in its own process, with a short lease (and the front's shards)."""
    yield from _worker_process(front, shards=front.shards)


@pytest.fixture
def sharded_worker_process(front: Front) -> Iterator[subprocess.Popen[bytes]]:
    """The same, over a namespace of SHARDS shards."""
    yield from _worker_process(front, shards=SHARDS)


def _worker_process(front: Front, *, shards: int) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.scenarios.worker_process",
            front.kind,
            front.url,
            str(LEASE_SECONDS),
            str(shards),
            *(["--cluster"] if front.cluster else []),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        assert process.stderr is not None
        process.stderr.close()


@pytest.mark.cluster
def test_a_killed_worker_loses_nothing(front: Front, worker_process: subprocess.Popen[bytes]) -> None:
    calls: Recorder[tuple[int, int]] = Recorder()

    def handler(payload: CrashPayload, context: dict[str, Any]) -> None:
        calls.record((payload.n, server_time_ms(front.raw)))

    timers = front.timers(spec(TOPIC, CrashPayload, handler), settings=TimersSettings(lease_seconds=LEASE_SECONDS))
    timers.set_timer(TOPIC, "victim", CrashPayload(n=42), datetime.timedelta(0))

    # Polling the other process's observable state: its handler writes a key when it starts.
    wait_until(lambda: front.raw.exists(STARTED_KEY) == 1 or worker_process.poll() is not None, timeout=30)
    assert worker_process.poll() is None, worker_process.stderr.read().decode() if worker_process.stderr else ""
    assert front.raw.get(STARTED_KEY) == "42"
    held = timers.get_timer(TOPIC, "victim")
    assert held is not None
    assert held.running is True
    assert held.attempts == 1

    worker_process.send_signal(signal.SIGKILL)
    worker_process.wait(10)
    # Nobody renews the lease any more: it ends at the lease_expires_at seen now (under load, the short
    # lease may have run out already: then `running` is false and the lease seen before the kill is the bound).
    orphaned = timers.get_timer(TOPIC, "victim")
    assert orphaned is not None
    assert orphaned.due_at == held.due_at, "due_at stays the due time while leased"
    last_seen = orphaned if orphaned.running else held
    assert last_seen.lease_expires_at is not None
    lease_end_ms = datetime_to_ms(last_seen.lease_expires_at)

    timers.start_worker()
    ((n, started_ms),) = calls.wait_for(1, timeout=15)
    timers.stop_worker()
    assert n == 42
    assert started_ms >= lease_end_ms, "taken over before the dead worker's lease ran out"
    assert started_ms - lease_end_ms < 3000, "taken over long after the lease ran out"
    assert len(calls) == 1
    assert timers.get_timer(TOPIC, "victim") is None
    assert front.timer_data() == [STARTED_KEY]


def test_a_worker_killed_while_it_holds_timers_of_every_shard_loses_none(
    front: Front, sharded_worker_process: subprocess.Popen[bytes]
) -> None:
    """Each lease lives in its timer's shard: every one of them runs out, and another worker takes each over."""
    calls: Recorder[int] = Recorder()
    timers = front.timers(
        spec(TOPIC, CrashPayload, lambda payload, context: calls.record(payload.n)),
        settings=TimersSettings(lease_seconds=LEASE_SECONDS, shards=SHARDS),
    )
    ids = [f"v{n}" for n in range(12)]
    assert {timers.timers.namespace.keyspace_for(TOPIC, timer_id).shard for timer_id in ids} == set(range(SHARDS))
    for n, timer_id in enumerate(ids):
        timers.set_timer(TOPIC, timer_id, CrashPayload(n=n), datetime.timedelta(0))

    # Polling the other process's observable state: every timer is leased to it (its handlers never return).
    def all_held() -> bool:
        infos = [timers.get_timer(TOPIC, timer_id) for timer_id in ids]
        return all(info is not None and info.running for info in infos) or sharded_worker_process.poll() is not None

    wait_until(all_held, timeout=30)
    assert sharded_worker_process.poll() is None
    sharded_worker_process.send_signal(signal.SIGKILL)
    sharded_worker_process.wait(10)

    timers.start_worker()
    calls.wait_for(len(ids), timeout=30)
    timers.stop_worker()
    assert sorted(calls.items) == list(range(len(ids)))
    assert all(timers.get_timer(TOPIC, timer_id) is None for timer_id in ids)


def _fork(work: Callable[[], None]) -> int:
    """Run `work` in a forked child that exits right after (status 0 if it returned)."""
    pid = os.fork()
    if pid == 0:  # the child
        status = 1
        try:
            work()
            status = 0
        finally:
            os._exit(status)
    return pid


def _exited(pid: int) -> bool:
    done, _ = os.waitpid(pid, os.WNOHANG)
    return done == pid


@pytest.mark.parametrize("front", ["sync"], indirect=True)  # forking a process that runs an event loop is unsafe
def test_workers_forked_from_one_instance_never_share_claims(front: Front) -> None:
    """A `Timers` built before a fork (gunicorn --preload, multiprocessing) runs in several processes at once."""
    release = "scenario:release"
    handled = "scenario:handled"

    def handler(payload: Job, context: dict[str, Any]) -> None:
        front.raw.rpush(handled, f"{os.getpid()}:{payload.n}")
        front.raw.blpop([release], timeout=30)  # held until the test lets go: the claims stay in flight

    timers = front.timers(spec("jobs", Job, handler))
    total = 20
    for n in range(total):
        timers.set_timer("jobs", f"t{n}", Job(n=n), datetime.timedelta(0))

    children = [_fork(timers.handle_ready_timers)]
    try:
        # Polling other processes' observable state: the first child holds every timer.
        wait_until(lambda: front.raw.llen(handled) >= total)
        children.append(_fork(timers.handle_ready_timers))
        # The second child finds nothing due (all leased) and exits, unless it takes the first one's claims.
        wait_until(lambda: _exited(children[1]) or front.raw.llen(handled) > total)
        runs = cast(list[str], front.raw.lrange(handled, 0, -1))
        assert len(runs) == total, f"{len(runs) - total} timer(s) run by both processes at once"
    finally:
        front.raw.rpush(release, *["go"] * (2 * total))
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
