"""Scenario 6: a worker killed with SIGKILL mid-handler loses nothing; another takes over after the lease."""

from __future__ import annotations

import datetime
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_timers import TimersSettings
from tests.harness import Front, Recorder, datetime_to_ms, server_time_ms, spec, wait_until
from tests.scenarios.worker_process import STARTED_KEY, TOPIC, CrashPayload

REPO_ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 1


@pytest.fixture
def worker_process(front: Front) -> Iterator[subprocess.Popen[bytes]]:
    """A worker of the same front end, in its own process, with a short lease."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.scenarios.worker_process", front.kind, front.url, str(LEASE_SECONDS)],
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
    # Nobody renews the lease any more: it ends at the due_at seen now.
    orphaned = timers.get_timer(TOPIC, "victim")
    assert orphaned is not None
    assert orphaned.running is True
    lease_end_ms = datetime_to_ms(orphaned.due_at)

    timers.start_worker()
    ((n, started_ms),) = calls.wait_for(1, timeout=15)
    timers.stop_worker()
    assert n == 42
    assert started_ms >= lease_end_ms, "taken over before the dead worker's lease ran out"
    assert started_ms - lease_end_ms < 3000, "taken over long after the lease ran out"
    assert len(calls) == 1
    assert timers.get_timer(TOPIC, "victim") is None
    assert front.timer_data() == [STARTED_KEY]
