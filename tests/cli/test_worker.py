"""`redis-timers worker module:attribute` as a subprocess: runs the app's timers, stops gracefully on a signal."""

from __future__ import annotations

import datetime
import signal
import time

import pytest
import redis

from redis_timers.sync import Timers as SyncTimers
from tests.cli.app import DONE_KEY, TOPIC, Job, release_key
from tests.cli.conftest import Spawn

NOW = datetime.timedelta(0)
HANDLER_KINDS = ["async_timers", "async_timers_with_threads", "sync_timers"]
"""`async def` and plain `def` handlers on the async front end, plain `def` ones on the sync front end."""
EXIT_CODES = {"SIGTERM": 0, "SIGINT": 130}
"""After a graceful stop: 0 for SIGTERM (how supervisors ask a service to stop), 130 for Ctrl-C, as shells expect."""


@pytest.mark.parametrize(
    ("attribute", "signal_name", "url_from"),
    [
        ("async_timers", "SIGTERM", "option"),
        ("async_timers_with_threads", "SIGINT", "option"),
        ("sync_timers", "SIGTERM", "option"),
        ("make_async_timers", "SIGINT", "environment"),
        ("make_sync_timers", "SIGINT", "environment"),
    ],
)
def test_worker_handles_due_timer_then_stops_on_signal(
    spawn: Spawn,
    scheduler: SyncTimers,
    client: redis.Redis,
    redis_url: str,
    attribute: str,
    signal_name: str,
    url_from: str,
) -> None:
    stop_signal = signal.Signals[signal_name]
    target = f"tests.cli.app:{attribute}"
    if url_from == "option":
        worker = spawn("worker", target, "--redis-url", redis_url, "--concurrency", "4")
    else:
        worker = spawn("worker", target, REDIS_URL=redis_url)
    startup = worker.wait_for("redis-timers worker starting")
    front_end = "async" if "async" in attribute else "sync"
    assert f"{front_end} front end" in startup
    assert f"topic(s) [{TOPIC}]" in startup
    assert redis_url in startup
    assert "lease 30s" in startup
    assert ("concurrency 4" if url_from == "option" else "concurrency 100") in startup

    scheduler.set_timer(TOPIC, "job-1", Job(name="job-1"), NOW)
    worker.wait_for("handler finished job-1")
    worker.process.send_signal(stop_signal)

    assert worker.wait_exit() == EXIT_CODES[signal_name], worker.output
    assert f"received {stop_signal.name}: stopping gracefully" in worker.output
    assert f"redis-timers worker stopped gracefully after {stop_signal.name}" in worker.output
    assert client.lrange(DONE_KEY, 0, -1) == [b"job-1"]
    assert scheduler.get_timer(TOPIC, "job-1") is None  # acknowledged before the worker exited


@pytest.mark.parametrize("attribute", HANDLER_KINDS)
def test_sigterm_lets_in_flight_handler_finish_and_claims_nothing_new(
    spawn: Spawn, scheduler: SyncTimers, client: redis.Redis, redis_url: str, attribute: str
) -> None:
    worker = spawn("worker", f"tests.cli.app:{attribute}", "--redis-url", redis_url)
    scheduler.set_timer(TOPIC, "slow", Job(name="slow", hold=True), NOW)
    worker.wait_for("handler started slow")

    worker.process.send_signal(signal.SIGTERM)
    worker.wait_for("received SIGTERM: stopping gracefully")
    # Stopping means no new claims: this one is left for another worker.
    scheduler.set_timer(TOPIC, "after-stop", Job(name="after-stop"), NOW)
    assert worker.process.poll() is None, "the worker must wait for its in-flight handler"
    client.rpush(release_key("slow"), "go")

    assert worker.wait_exit() == 0, worker.output
    assert worker.index("handler finished slow") < worker.index("worker stopped gracefully after SIGTERM")
    assert client.lrange(DONE_KEY, 0, -1) == [b"slow"]
    assert scheduler.get_timer(TOPIC, "slow") is None  # the finished run was acknowledged, not handed back
    left = scheduler.get_timer(TOPIC, "after-stop")
    assert left is not None
    assert not left.running
    assert left.attempts == 0


@pytest.mark.parametrize("attribute", HANDLER_KINDS)
def test_handler_past_the_grace_period_is_handed_back_and_the_worker_still_exits(
    spawn: Spawn, scheduler: SyncTimers, client: redis.Redis, redis_url: str, attribute: str
) -> None:
    grace = 0.5
    worker = spawn(
        "worker", f"tests.cli.app:{attribute}", REDIS_URL=redis_url, TIMERS_SHUTDOWN_GRACE_SECONDS=str(grace)
    )
    scheduler.set_timer(TOPIC, "stuck", Job(name="stuck", hold=True), NOW)
    worker.wait_for("handler started stuck")

    signalled = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)

    # The handler holds on for 30 s; the process must not wait for it (its timer is another worker's by now).
    assert worker.wait_exit(timeout=15) == 0, worker.output
    assert time.monotonic() - signalled < grace + 5, worker.output
    assert "handed back" in worker.output
    assert "worker stopped gracefully after SIGTERM" in worker.output
    assert client.lrange(DONE_KEY, 0, -1) == []
    handed_back = scheduler.get_timer(TOPIC, "stuck")
    assert handed_back is not None
    assert not handed_back.running
    assert handed_back.attempts == 0  # a handed-back lease is not an attempt


@pytest.mark.parametrize(
    ("attribute", "first", "second"),
    [(kind, "SIGTERM", "SIGINT") for kind in HANDLER_KINDS] + [("sync_timers", "SIGINT", "SIGTERM")],
)
def test_a_second_signal_exits_at_once(
    spawn: Spawn, scheduler: SyncTimers, redis_url: str, attribute: str, first: str, second: str
) -> None:
    worker = spawn("worker", f"tests.cli.app:{attribute}", REDIS_URL=redis_url, TIMERS_SHUTDOWN_GRACE_SECONDS="60")
    scheduler.set_timer(TOPIC, "stuck", Job(name="stuck", hold=True), NOW)
    worker.wait_for("handler started stuck")
    worker.process.send_signal(signal.Signals[first])
    worker.wait_for(f"received {first}: stopping gracefully")

    signalled = time.monotonic()
    worker.process.send_signal(signal.Signals[second])

    assert worker.wait_exit(timeout=15) == 128 + signal.Signals[second], worker.output
    assert time.monotonic() - signalled < 5, worker.output
    assert f"received {second} while stopping: exiting at once" in worker.output
    assert "Traceback" not in worker.output
    left = scheduler.get_timer(TOPIC, "stuck")
    assert left is not None  # not lost: its lease runs out and another worker takes it
    assert left.running


def test_a_second_signal_after_the_graceful_stop_still_exits_at_once() -> None:
    # Once run_forever returned, serving gives the stop signals back their previous handlers (here the default
    # ones, as anyio's receiver and _serve_sync do), while the process may still wait for lingering handler
    # threads: a second signal then must still exit at once with 128 + its number, not die by the signal.
    from redis_timers.cli.worker import STOP_SIGNALS, Serving

    timers = SyncTimers(redis_client=redis.Redis(host="127.0.0.1", port=1))
    serving = Serving(timers, None, 1.0, "redis://127.0.0.1:1/0")
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    try:
        serving.shutdown.request(signal.SIGINT)
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)

        assert serving.stopped() == 130

        for signum in STOP_SIGNALS:
            assert signal.getsignal(signum) == serving.shutdown.exit_at_once
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        timers.redis_client.close()
