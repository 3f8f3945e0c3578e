"""`redis-timers worker module:attribute`: run an app's `Timers` until SIGTERM or SIGINT, then stop gracefully."""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

import anyio
import redis
import redis.asyncio

from redis_timers.aio.timers import Timers as AsyncTimers
from redis_timers.cli.redis_url import describe_client, redact_url
from redis_timers.cli.target import AnyTimers, TargetError, load_timers, use_redis_url
from redis_timers.sync.timers import Timers as SyncTimers

logger = logging.getLogger("redis_timers.cli")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run_worker(target: str, *, redis_url: str | None = None, concurrency: int | None = None) -> int:
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
    own_client = use_redis_url(timers, redis_url) if redis_url else None
    shutdown = Shutdown(timers)
    if isinstance(timers, AsyncTimers):
        assert own_client is None or isinstance(own_client, redis.asyncio.Redis)
        return anyio.run(_serve_async, timers, concurrency, own_client, shutdown)
    assert own_client is None or isinstance(own_client, redis.Redis)
    return _serve_sync(timers, concurrency, own_client, shutdown)


class Shutdown:
    """Turns the first stop signal into `timers.stop()`, and says what is going on."""

    def __init__(self, timers: AnyTimers) -> None:
        self._timers = timers
        self.signal_name: str | None = None

    def request(self, signum: int) -> None:
        name = signal.Signals(signum).name
        grace = self._timers.settings.shutdown_grace_seconds
        if self.signal_name is not None:
            logger.warning(
                "received %s while stopping: still waiting for in-flight handlers (up to %gs in all)", name, grace
            )
            return
        self.signal_name = name
        self._timers.stop()
        logger.info(
            "received %s: stopping gracefully: no new claims, in-flight handlers get up to %gs to finish, "
            "then unfinished timers are handed back",
            name,
            grace,
        )


def _log_startup(timers: AnyTimers, concurrency: int | None) -> None:
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
        redact_url(describe_client(timers.redis_client)),
    )
    logger.info("SIGTERM or SIGINT stops the worker gracefully")


def _log_stopped(shutdown: Shutdown) -> None:
    reason = f" after {shutdown.signal_name}" if shutdown.signal_name else ""
    logger.info("redis-timers worker stopped gracefully%s", reason)


async def _serve_async(
    timers: AsyncTimers, concurrency: int | None, own_client: redis.asyncio.Redis | None, shutdown: Shutdown
) -> int:
    try:
        with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:

            async def relay_signals() -> None:
                async for signum in signals:
                    shutdown.request(signum)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(relay_signals)
                _log_startup(timers, concurrency)
                try:
                    # Caught here, not outside the task group, so that it is not wrapped in an ExceptionGroup.
                    await timers.run_forever(concurrency=concurrency)
                except Exception:
                    logger.exception("redis-timers worker failed")
                    return 1
                finally:
                    tasks.cancel_scope.cancel()
    finally:
        if own_client is not None:
            await own_client.aclose()
    _log_stopped(shutdown)
    return 0


def _serve_sync(timers: SyncTimers, concurrency: int | None, own_client: redis.Redis | None, shutdown: Shutdown) -> int:
    failed = threading.Event()

    def work() -> None:
        try:
            timers.run_forever(concurrency=concurrency)
        except Exception:
            logger.exception("redis-timers worker failed")
            failed.set()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        shutdown.request(signum)

    # run_forever runs in a thread of its own, so the main thread, which runs signal handlers, only ever waits
    # in join(): `stop()` called from a handler can never find a lock that the interrupted code holds.
    thread = threading.Thread(target=work, name="redis-timers-worker")
    previous = {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}
    try:
        _log_startup(timers, concurrency)
        thread.start()
        thread.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if own_client is not None:
            own_client.close()
    if failed.is_set():
        return 1
    _log_stopped(shutdown)
    return 0
