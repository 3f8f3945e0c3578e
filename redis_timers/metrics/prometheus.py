"""Prometheus metrics of a worker's timers (`pip install redis-timers[prometheus]`).

```python
from redis_timers.metrics.prometheus import PrometheusObserver, start_exporter

timers = Timers(redis_client=client, observer=PrometheusObserver())
start_exporter(9464)  # /metrics on 127.0.0.1:9464; or `redis-timers worker --metrics-port 9464`
```
"""

from __future__ import annotations

from typing import Any

import prometheus_client

from redis_timers.observe import ObservedRun, TimersObserver

LATENESS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds: from a millisecond, a healthy worker's lateness, to a minute, a worker that was down."""
DEFAULT_HOST = "127.0.0.1"
"""Where the exporter listens unless told otherwise: this host only; metrics can say what a service does."""


class PrometheusObserver(TimersObserver):
    """Counts timers scheduled, fired, retried and dead-lettered, and observes each run's lateness, per topic.

    The metrics, each labelled with `topic`: `redis_timers_scheduled_total` (written by this process's
    `set_timer`/`set_timers`), `redis_timers_fired_total` (runs that succeeded), `redis_timers_retried_total`
    (runs that failed and are due again), `redis_timers_dead_lettered_total` (timers moved to dead letters)
    and the histogram `redis_timers_lateness_seconds` (how long after its due time each run started).
    """

    def __init__(self, registry: prometheus_client.CollectorRegistry = prometheus_client.REGISTRY) -> None:
        self.registry = registry
        labels = ("topic",)
        self._scheduled = prometheus_client.Counter(
            "redis_timers_scheduled", "Timers written by this process", labels, registry=registry
        )
        self._fired = prometheus_client.Counter(
            "redis_timers_fired", "Handler runs that succeeded (their timers are done)", labels, registry=registry
        )
        self._retried = prometheus_client.Counter(
            "redis_timers_retried", "Handler runs that failed, their timers due again", labels, registry=registry
        )
        self._dead_lettered = prometheus_client.Counter(
            "redis_timers_dead_lettered", "Timers moved to the dead letters", labels, registry=registry
        )
        self._lateness = prometheus_client.Histogram(
            "redis_timers_lateness_seconds",
            "How long after its due time each handler run started",
            labels,
            registry=registry,
            buckets=LATENESS_BUCKETS,
        )
        # Each topic's children, looked up once: `labels()` takes a lock and builds a key each time.
        self._children: dict[tuple[int, str], Any] = {}

    def _child(self, metric: Any, topic: str) -> Any:
        key = (id(metric), topic)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(topic)
        return child

    def scheduled(self, topic: str, timer_id: str) -> None:
        self._child(self._scheduled, topic).inc()

    def run_started(self, run: ObservedRun) -> object:
        lateness = run.lateness_ms
        if lateness is not None:
            self._child(self._lateness, run.topic).observe(max(0.0, lateness) / 1000)
        return None

    def fired(self, run: ObservedRun) -> None:
        self._child(self._fired, run.topic).inc()

    def retried(self, run: ObservedRun, error: str, delay_ms: int) -> None:
        self._child(self._retried, run.topic).inc()

    def dead_lettered(self, topic: str, timer_id: str, attempts: int, error: str) -> None:
        self._child(self._dead_lettered, topic).inc()


def start_exporter(
    port: int, host: str = DEFAULT_HOST, registry: prometheus_client.CollectorRegistry = prometheus_client.REGISTRY
) -> None:
    """Serve `registry` as `/metrics` on `host:port`, from a daemon thread (prometheus_client's own server)."""
    prometheus_client.start_http_server(port, addr=host, registry=registry)
