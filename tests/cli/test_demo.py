"""`redis-timers demo`: end to end as a subprocess, and its measuring helpers."""

from __future__ import annotations

import io
import random
import re
import time

import pytest
import redis

from redis_timers.cli.demo import (
    LEAD_SECONDS,
    NAMESPACE,
    Greeting,
    Recorder,
    ServerClock,
    Summary,
    calibrate,
    percentile,
    plan_timers,
)
from tests.cli.conftest import Spawn

SUMMARY = re.compile(
    r"^fired (?P<fired>\d+)/(?P<expected>\d+), lateness p50 (?P<p50>[\d.]+) ms, p99 (?P<p99>[\d.]+) ms, "
    r"max (?P<max>[\d.]+) ms, early: (?P<early>\d+)$"
)


@pytest.mark.parametrize("front_end", ["async", "sync"])
def test_demo_fires_every_timer_on_time(spawn: Spawn, redis_url: str, client: redis.Redis, front_end: str) -> None:
    demo = spawn("demo", "--redis-url", redis_url, "--count", "12", "--spread", "1", "--front-end", front_end)

    assert demo.wait_exit() == 0, demo.output
    summary = next(match for line in demo.lines if (match := SUMMARY.match(line)))
    assert summary["fired"] == summary["expected"] == "12"
    assert summary["early"] == "0"
    assert float(summary["p50"]) <= float(summary["p99"]) <= float(summary["max"])
    assert sum(1 for line in demo.lines if re.match(r"^\s+timer\s+\d+\s+due \+", line)) == 12
    assert f"{front_end} front end" in demo.output
    assert "worker stopped gracefully" in demo.output
    assert client.keys(f"{{{NAMESPACE}}}*") == []  # the demo tidies up after itself


def test_demo_starts_and_stops_an_embedded_server_without_a_url(spawn: Spawn) -> None:
    demo = spawn("demo", "--count", "3", "--spread", "0.2")

    assert demo.wait_exit() == 0, demo.output
    assert "(embedded, started for this demo)" in demo.output
    assert any(SUMMARY.match(line) for line in demo.lines)
    assert demo.lines[-1] == "embedded server shut down"


def test_calibration_tracks_the_server_clock(client: redis.Redis) -> None:
    clock = calibrate(client)
    seconds, microseconds = client.time()
    assert abs(clock.now_ms() - (seconds * 1000 + microseconds / 1000)) < 50
    assert 0 <= clock.uncertainty_ms < 50


def test_planned_timers_fall_due_in_whole_ms_within_the_spread() -> None:
    planned = plan_timers(50, 2.0, 1_000_000.25, random.Random(7))
    assert len({item.timer_id for item in planned}) == 50
    for item in planned:
        assert 1_000_000.25 + LEAD_SECONDS * 1000 <= item.payload.due_ms <= 1_000_000.25 + (LEAD_SECONDS + 2) * 1000 + 1
        assert item.activate_at.timestamp() * 1000 == pytest.approx(item.payload.due_ms, abs=1e-3)
        assert item.activate_at.tzinfo is not None


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile([3.0], 0.99) == 3


def test_summary_fails_on_an_early_or_a_missing_firing() -> None:
    assert Summary(2, [0.5, 1.5], early=0, duplicates=0).ok
    assert not Summary(3, [0.5, 1.5], early=0, duplicates=0).ok
    assert not Summary(2, [-3.0, 1.5], early=1, duplicates=0).ok
    assert Summary(2, [0.5, 1.5], early=0, duplicates=0).line() == (
        "fired 2/2, lateness p50 0.50 ms, p99 1.50 ms, max 1.50 ms, early: 0"
    )
    assert Summary(2, [], early=0, duplicates=0).line() == "fired 0/2, early: 0"


def test_recorder_flags_a_firing_before_its_due_time() -> None:
    clock = ServerClock(offset_ms=0.0, uncertainty_ms=0.05)
    now_ms = clock.now_ms()
    out = io.StringIO()
    recorder = Recorder(clock, now_ms, 2, out)

    assert not recorder.fired(Greeting(number=1, due_ms=int(now_ms) - 5, text="late"))
    assert recorder.fired(Greeting(number=2, due_ms=int(now_ms) + 60_000, text="early"))
    recorder.fired(Greeting(number=2, due_ms=int(now_ms) + 60_000, text="again"))

    summary = recorder.summary()
    assert summary.early == 1
    assert summary.duplicates == 1
    assert not summary.ok
    lines = out.getvalue().splitlines()
    assert "ms late" in lines[0]
    assert "ms EARLY" in lines[1]
    assert "again" in lines[2]
    assert time.monotonic() * 1000 - now_ms < 60_000
