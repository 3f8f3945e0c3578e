"""`redis-timers worker --metrics-port`: Prometheus metrics of the worker's timers, scraped over HTTP."""

from __future__ import annotations

import datetime
import os
import signal
import urllib.request
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from redis_timers.cli.embedded import free_port
from tests.cli.conftest import Spawn, scheduler_of
from tests.cli.metrics_app import TOPIC, FlakyJob
from tests.cli.processes import ROOT
from tests.harness import wait_until

NOW = datetime.timedelta(0)
FLAKY_ENV = {"TIMERS_MAX_ATTEMPTS": "2", "TIMERS_RETRY_BACKOFF_SECONDS": "0.01"}


def scrape(port: int) -> dict[tuple[str, str], float]:
    """Every sample of `/metrics` as {(sample name, its topic or le label): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "topic" in sample.labels:
                label = sample.labels.get("le", sample.labels["topic"])
                samples[(sample.name, label)] = sample.value
    return samples


@pytest.mark.parametrize("attribute", ["async_timers", "sync_timers"])
def test_worker_metrics_count_fired_retried_dead_lettered_and_lateness(
    spawn: Spawn, client: redis.Redis, redis_url: str, attribute: str
) -> None:
    scheduler = scheduler_of(client, TOPIC, FlakyJob)
    port = free_port()
    worker = spawn(
        "worker",
        f"tests.cli.metrics_app:{attribute}",
        "--redis-url",
        redis_url,
        "--metrics-port",
        str(port),
        **FLAKY_ENV,
    )
    assert f"Prometheus metrics on http://127.0.0.1:{port}/metrics" in worker.wait_for("Prometheus metrics on")
    worker.wait_for("redis-timers worker starting")

    for name in ("ok-1", "ok-2", "ok-3"):
        scheduler.set_timer(TOPIC, name, FlakyJob(name=name), NOW)
    scheduler.set_timer(TOPIC, "flaky", FlakyJob(name="flaky", failures=1), NOW)  # a retry, then fired
    scheduler.set_timer(TOPIC, "doomed", FlakyJob(name="doomed", failures=2), NOW)  # a retry, then a dead letter

    key = ("redis_timers_fired_total", TOPIC), ("redis_timers_dead_lettered_total", TOPIC)
    wait_until(lambda: all(scrape(port).get(each) == expected for each, expected in zip(key, (4, 1))), timeout=30)
    samples = scrape(port)
    assert samples[("redis_timers_fired_total", TOPIC)] == 4
    assert samples[("redis_timers_retried_total", TOPIC)] == 2
    assert samples[("redis_timers_dead_lettered_total", TOPIC)] == 1
    # Each of the 7 runs is observed once; none was later than a minute, and every one has a lateness >= 0.
    assert samples[("redis_timers_lateness_seconds_count", TOPIC)] == 7
    assert samples[("redis_timers_lateness_seconds_bucket", "60.0")] == 7
    assert samples[("redis_timers_lateness_seconds_bucket", "+Inf")] == 7
    assert 0 <= samples[("redis_timers_lateness_seconds_sum", TOPIC)] < 7 * 60
    assert ("redis_timers_lateness_seconds_bucket", "0.001") in samples  # the buckets start at a millisecond
    # The worker schedules nothing itself: retries are rescheduled by its round trips, not by set_timer.
    assert samples.get(("redis_timers_scheduled_total", TOPIC), 0) == 0
    assert [letter.timer_id for letter in scheduler.dead_letters()] == ["doomed"]

    worker.process.send_signal(signal.SIGTERM)
    assert worker.wait_exit() == 0, worker.output


def test_metrics_port_in_use_is_a_startup_error(spawn: Spawn, redis_url: str) -> None:
    port = free_port()
    first = spawn("worker", "tests.cli.metrics_app:sync_timers", "--redis-url", redis_url, "--metrics-port", str(port))
    first.wait_for("redis-timers worker starting")
    second = spawn("worker", "tests.cli.metrics_app:sync_timers", "--redis-url", redis_url, "--metrics-port", str(port))

    assert second.wait_exit() == 2
    assert f"cannot serve metrics on 127.0.0.1 port {port}" in second.output
    first.process.send_signal(signal.SIGTERM)
    assert first.wait_exit() == 0, first.output


def test_metrics_port_without_the_extra_is_a_startup_error(spawn: Spawn, redis_url: str, tmp_path: Path) -> None:
    # prometheus_client made unimportable in the worker's process, as in an install without the extra.
    (tmp_path / "prometheus_client.py").write_text('raise ImportError("No module named prometheus_client")\n')
    worker = spawn(
        "worker",
        "tests.cli.metrics_app:sync_timers",
        "--redis-url",
        redis_url,
        "--metrics-port",
        str(free_port()),
        PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}",
    )

    assert worker.wait_exit() == 2
    assert "--metrics-port needs the prometheus extra: pip install 'redis-timers[prometheus]'" in worker.output


def test_metrics_port_beside_the_apps_own_prometheus_observer_counts_once(
    spawn: Spawn, client: redis.Redis, redis_url: str
) -> None:
    """The app already has a `PrometheusObserver` on the default registry: the CLI serves it, without a second one."""
    scheduler = scheduler_of(client, TOPIC, FlakyJob)
    port = free_port()
    args = ("tests.cli.metrics_app:observed_sync_timers", "--redis-url", redis_url, "--metrics-port", str(port))
    worker = spawn("worker", *args)
    worker.wait_for("redis-timers worker starting")
    scheduler.set_timer(TOPIC, "once", FlakyJob(name="once"), NOW)
    wait_until(lambda: scrape(port).get(("redis_timers_fired_total", TOPIC)) == 1, timeout=30)
    assert scrape(port)[("redis_timers_lateness_seconds_count", TOPIC)] == 1
    worker.process.send_signal(signal.SIGTERM)
    assert worker.wait_exit() == 0, worker.output
