"""`redis-timers worker module:attribute`: run an app's `Timers` until SIGTERM or SIGINT, then stop gracefully."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
from types import FrameType
from typing import Any

import anyio

from redis_timers.aio.timers import Timers as AsyncTimers
from redis_timers.cli.connection_check import (
    CHECKED_ERRORS,
    DEFAULT_CONNECT_TIMEOUT_SECONDS,
    RedisUnusable,
    check_async,
    check_sync,
    explain,
)
from redis_timers.cli.process import exit_now
from redis_timers.cli.redis_url import describe_client, redact_url
from redis_timers.cli.target import AnyTimers, TargetError, load_timers, use_redis_url
from redis_timers.observe import Observers, TimersObserver, combine
from redis_timers.sync.timers import Timers as SyncTimers

logger = logging.getLogger("redis_timers.cli")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run_worker(
    target: str,
    *,
    redis_url: str | None = None,
    cluster: bool = False,
    concurrency: int | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
    metrics: tuple[str, int] | None = None,
) -> int:
    """Exit code: 0 (or 130 after SIGINT) once stopped, 1 if the worker failed, 2 if it could not start.

    `cluster`: `redis_url` names a node of a Redis Cluster, and the worker runs on a cluster client of it.
    `metrics`: (host, port) to serve Prometheus metrics on, beside any observer the app has.
    """
    if redis_url:
        # Exported before the app is imported, so that clients the app builds itself go to the same server.
        os.environ["REDIS_URL"] = redis_url
    try:
        timers = load_timers(target)
    except TargetError as error:
        logger.error("%s", error)
        return 2
    if not timers.registry.topics:
        logger.error("%s has no handlers: include a router before running a worker", target)
        return 2
    if metrics is not None and not _export_metrics(timers, *metrics):
        return 2
    own_client = None
    if redis_url:
        try:
            own_client = use_redis_url(timers, redis_url, cluster=cluster)
        except CHECKED_ERRORS as error:  # a sync cluster client reads its slot map as it is made
            logger.error("redis-timers worker cannot start: %s", explain(error, redact_url(redis_url), connect_timeout))
            return 2
    serving = Serving(timers, concurrency, connect_timeout, redact_url(describe_client(timers.redis_client)))
    if isinstance(timers, AsyncTimers):
        return anyio.run(_serve_async, timers, own_client, serving)
    return _serve_sync(timers, own_client, serving)


def counts_on_default_registry(observer: TimersObserver | None) -> bool:
    """Whether `observer` (or one of several) is a `PrometheusObserver` counting on the default registry."""
    import prometheus_client

    from redis_timers.metrics.prometheus import PrometheusObserver

    members = observer.observers if isinstance(observer, Observers) else (observer,)
    return any(isinstance(each, PrometheusObserver) and each.registry is prometheus_client.REGISTRY for each in members)


def _export_metrics(timers: AnyTimers, host: str, port: int) -> bool:
    """Add the Prometheus observer to `timers` and serve its metrics; False (logged) if that cannot be done."""
    try:
        from redis_timers.metrics.prometheus import PrometheusObserver, start_exporter
    except ImportError as error:
        logger.error("--metrics-port needs the prometheus extra: pip install 'redis-timers[prometheus]' (%s)", error)
        return False
    try:
        start_exporter(port, host)
    except OSError as error:
        logger.error("cannot serve metrics on %s port %d: %s", host, port, error)
        return False
    if not counts_on_default_registry(timers.observer):
        # An app's own PrometheusObserver already counts on the registry served here: a second would be refused
        # (its metric names are taken) and would count every timer twice.
        timers.observer = combine(timers.observer, PrometheusObserver())
    logger.info("Prometheus metrics on http://%s:%d/metrics", host, port)
    return True


@dataclasses.dataclass
class Serving:
    """What both ways of serving share: how to run, where, and how to report its start, failure and end."""

    timers: AnyTimers
    concurrency: int | None
    connect_timeout: float
    where: str
    """The Redis URL, without its password."""

    def __post_init__(self) -> None:
        self.shutdown = Shutdown(self.timers)

    def cannot_start(self, error: RedisUnusable) -> int:
        logger.error("redis-timers worker cannot start: %s", error)
        return 2

    def failed(self, error: Exception) -> int:
        if isinstance(error, CHECKED_ERRORS):
            # A Redis or library error says what happened in one line; a traceback would only bury it.
            logger.error("redis-timers worker failed: %s", explain(error, self.where))
        else:
            logger.error("redis-timers worker failed", exc_info=error)
        return 1

    def stopped(self) -> int:
        if self.shutdown.signal_name:
            # Serving restored the stop signals' previous handlers (anyio's receiver, `_serve_sync`'s finally),
            # but the process has not ended yet: it may wait for lingering threads (`end_process`). A second
            # signal then still exits at once with 128 + its number, not by the default action.
            self.shutdown.exit_at_once_on_signals()
        reason = f" after {self.shutdown.signal_name}" if self.shutdown.signal_name else ""
        logger.info("redis-timers worker stopped gracefully%s", reason)
        return self.shutdown.exit_code


class Shutdown:
    """Turns the first stop signal into `timers.stop()`, any later one into an immediate exit, and says so."""

    def __init__(self, timers: AnyTimers) -> None:
        self._timers = timers
        self.signal_name: str | None = None

    @property
    def exit_code(self) -> int:
        """After a graceful stop: 0 when asked with SIGTERM (or not by a signal), 130 after SIGINT, as shells expect."""
        return 128 + signal.SIGINT if self.signal_name == signal.SIGINT.name else 0

    def request(self, signum: int) -> None:
        if self.signal_name is not None:
            self.exit_at_once(signum, None)
        self.signal_name = signal.Signals(signum).name
        # From here on a stop signal is handled where it lands, in the main thread, even if the event loop or
        # the thread waiting for run_forever is busy: a second signal must end the process whatever it runs.
        self.exit_at_once_on_signals()
        self._timers.stop()
        logger.info(
            "received %s: stopping gracefully: no new claims, in-flight handlers get up to %gs to finish, "
            "then unfinished timers are handed back (send SIGTERM or SIGINT again to exit at once)",
            self.signal_name,
            self._timers.settings.shutdown_grace_seconds,
        )

    def exit_at_once_on_signals(self) -> None:
        for stop_signal in STOP_SIGNALS:
            signal.signal(stop_signal, self.exit_at_once)

    def exit_at_once(self, signum: int, frame: FrameType | None) -> None:
        logger.warning(
            "received %s while stopping: exiting at once; timers still being handled are not handed back, "
            "other workers take them when their leases run out (within %gs)",
            signal.Signals(signum).name,
            self._timers.settings.lease_seconds,
        )
        exit_now(128 + signum)


def _log_startup(serving: Serving) -> None:
    timers, concurrency = serving.timers, serving.concurrency
    settings = timers.settings
    topics = timers.registry.topics
    logger.info(
        "redis-timers worker starting (pid %d): %s front end, %d topic(s) [%s], concurrency %d, lease %gs, "
        "shutdown grace %gs, Redis %s",
        os.getpid(),
        timers.front_end,
        len(topics),
        ", ".join(topics),
        concurrency or settings.concurrent_processing_limit,
        settings.lease_seconds,
        settings.shutdown_grace_seconds,
        serving.where,
    )
    logger.info("SIGTERM or SIGINT stops the worker gracefully; a second one exits at once")


async def _serve_async(timers: AsyncTimers, own_client: Any, serving: Serving) -> int:
    try:
        try:
            await check_async(timers.redis_client, serving.where, serving.connect_timeout)
        except RedisUnusable as error:
            return serving.cannot_start(error)
        with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:

            async def relay_signals() -> None:
                async for signum in signals:
                    serving.shutdown.request(signum)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(relay_signals)
                _log_startup(serving)
                try:
                    # Caught here, not outside the task group, so that it is not wrapped in an ExceptionGroup.
                    await timers.run_forever(concurrency=serving.concurrency)
                except Exception as error:
                    return serving.failed(error)
                finally:
                    tasks.cancel_scope.cancel()
    finally:
        if own_client is not None:
            await own_client.aclose()
    return serving.stopped()


def _serve_sync(timers: SyncTimers, own_client: Any, serving: Serving) -> int:
    failures: list[Exception] = []

    def work() -> None:
        try:
            timers.run_forever(concurrency=serving.concurrency)
        except Exception as error:
            failures.append(error)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        serving.shutdown.request(signum)

    try:
        check_sync(timers.redis_client, serving.where, serving.connect_timeout)
    except RedisUnusable as error:
        if own_client is not None:
            own_client.close()
        return serving.cannot_start(error)
    # run_forever runs in a thread of its own, so the main thread, which runs signal handlers, only ever waits
    # in join(): `stop()` called from a handler can never find a lock that the interrupted code holds.
    thread = threading.Thread(target=work, name="redis-timers-worker")
    previous = {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}
    try:
        _log_startup(serving)
        thread.start()
        thread.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if own_client is not None:
            own_client.close()
    if failures:
        return serving.failed(failures[0])
    return serving.stopped()
