"""The asyncio worker loop: handlers as tasks (plain `def`s in threads), notifications on a listener task."""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import logging
import random
import time
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import redis.asyncio
import redis.exceptions

from redis_timers import events, server_errors
from redis_timers.aio.driver import AsyncDriver
from redis_timers.aio.lane import CONNECTION_ERRORS, SERVER_REPLY_ERRORS
from redis_timers.engine import Cycle, Finished, Maintain, Probe, Run, Wait, WorkerEngine
from redis_timers.errors import REDIS_FAILURES, ShardLayoutError
from redis_timers.registry import generator_result_error, is_async_callable
from redis_timers.settings import TimersSettings

logger = logging.getLogger("redis_timers")

PUBSUB_RECONNECT_ERRORS = (AttributeError,)
"""What redis-py's asyncio pub/sub may raise when it reconnects by itself inside `get_message` to a node that
has just gone (a cluster node SIGKILLed, under RESP2: its connection's writer is already None): the
connection is lost like any other, and the listener connects again, elsewhere."""
EVENT_LOOP_TIMER_SLACK_SECONDS = 0.0015
"""asyncio rounds a timer's wait up to the next millisecond; a worker wakes this much early, then yields."""


def _task_cancelling() -> bool:
    """Whether this task has a cancellation request outstanding (Python 3.11+ counts them).

    The worker never cancels a runner's task directly (the hand-back cancels its scope), but asyncio.run
    does, for whatever is left when it closes the loop; and so does a handler that cancels its own task.
    Such a task must end: running on would leave asyncio.run waiting for it forever.
    """
    cancelling = getattr(asyncio.current_task(), "cancelling", None)
    return cancelling is not None and cancelling() > 0


class AsyncWorker:
    def __init__(
        self,
        *,
        driver: AsyncDriver,
        engine: WorkerEngine,
        context: dict[str, Any],
        settings: TimersSettings,
        listen: bool,
    ) -> None:
        self._driver = driver
        self._engine = engine
        self._context = context
        self._settings = settings
        self._listen = listen
        # Events for the loop: a plain list and one Event to wake it. Everything runs on the event loop's
        # thread, and a batch of handler completions costs one wake-up instead of one stream hand-off each.
        self._events: list[events.Event] = []
        self._wakeup = anyio.Event()
        self._thread_limiter = anyio.CapacityLimiter(engine.concurrency)
        # Handlers run on a pool of long-lived runner tasks, grown on demand up to the concurrency limit
        # (starting a task per timer costs more than the timer). Runs wait in a deque; an idle runner parks
        # on an Event of its own. One parked runner is woken at a time, by whoever takes a run while more
        # wait: a handler that suspends lets the next runner start at once, and quick handlers are run
        # back to back by one runner without waking the others.
        self._queue: collections.deque[Run] = collections.deque()
        self._parked: collections.deque[anyio.Event] = collections.deque()
        self._waking = False
        self._runner_scopes: list[anyio.CancelScope] = []
        self._stop_requested = False
        self._rng = random.Random()
        self._listener_failures = 0
        """The notification connection's failures since it last heard from the server (for the backoff)."""

    def stop(self) -> None:
        self._stop_requested = True
        self._post(lambda now: None)

    async def run(self) -> None:
        failure: BaseException | None = None
        async with anyio.create_task_group() as tasks:
            if self._listen and self._engine.channels:
                tasks.start_soon(self._listen_for_notifications)
            try:
                await self._loop(tasks)
            except (*REDIS_FAILURES, ShardLayoutError) as error:
                failure = error  # raised below as itself, not inside the task group's exception group
            except anyio.get_cancelled_exc_class():
                # Cancelled from outside: still stop gracefully, shielded, within the grace period; and, as the
                # shield keeps out every later cancellation, no longer than the stop may take (its replay of the
                # interrupted round trip may go to a server that never answers).
                with anyio.CancelScope(shield=True):
                    now = time.monotonic()
                    self._engine.request_stop(now)
                    with anyio.move_on_after(self._engine.stop_seconds_left(now)):
                        await self._loop(tasks)
                raise
            finally:
                # Finished: every run is settled or was handed back after the grace period.
                for scope in self._runner_scopes:
                    scope.cancel()
                tasks.cancel_scope.cancel()
        if failure is not None:
            raise failure

    async def _loop(self, tasks: anyio.abc.TaskGroup) -> None:
        engine = self._engine
        while True:
            self._apply_pending_events()
            if self._stop_requested and not engine.stopping:
                engine.request_stop(time.monotonic())
            step = engine.next_step(time.monotonic())
            if isinstance(step, Finished):
                if step.error is not None:
                    raise step.error
                return
            if isinstance(step, Wait):
                await self._wait_for_event(step.seconds)
            elif isinstance(step, Cycle):
                sent_at = time.monotonic()
                try:
                    if step.more:  # a call to each of several shards, all in one round trip
                        outcomes = await self._driver.execute_each(step.calls)
                    else:
                        reply = await self._driver.execute(step.call)
                except REDIS_FAILURES as error:
                    if not engine.step_failed(time.monotonic(), error):
                        raise
                    continue
                except anyio.get_cancelled_exc_class():
                    # The reply is lost, not the call: the stop below replays it and hands its claims back.
                    engine.cycle_interrupted()
                    raise
                received_at = time.monotonic()
                if step.more:
                    self._queue.extend(engine.calls_answered(outcomes, sent_at, received_at))
                else:
                    self._queue.extend(engine.cycle_succeeded(reply, sent_at, received_at))
                self._wake_a_runner()
                while len(self._runner_scopes) < engine.in_flight:
                    self._runner_scopes.append(anyio.CancelScope(shield=True))
                    tasks.start_soon(self._runner, self._runner_scopes[-1])
            elif isinstance(step, Probe):
                try:
                    engine.probe_answered(await self._driver.drive(step.flow))
                except REDIS_FAILURES as error:
                    engine.probe_failed(error)
            elif isinstance(step, Maintain):
                try:
                    engine.maintenance_done(await self._driver.drive(step.flow))
                except REDIS_FAILURES as error:
                    if not engine.step_failed(time.monotonic(), error):
                        raise

    async def _runner(self, scope: anyio.CancelScope) -> None:
        try:
            await self._run_handlers(scope)
        finally:
            # A runner whose task was cancelled ends; the loop starts another one if runs need it.
            self._runner_scopes.remove(scope)

    async def _run_handlers(self, scope: anyio.CancelScope) -> None:
        # Shielded so that cancelling run_forever lets handlers finish within the grace period.
        with scope:
            while True:
                if not self._queue:
                    parked = anyio.Event()
                    self._parked.append(parked)
                    await parked.wait()
                    self._waking = False
                    continue
                run = self._queue.popleft()
                self._wake_a_runner()
                error: BaseException | None = None
                observer = self._engine.observer
                started = None if observer is None else observer.run_started(run)
                try:
                    await self._call_handler(run)
                except anyio.get_cancelled_exc_class() as exc:
                    if observer is not None:
                        observer.run_ended(run, started, exc)
                    if scope.cancel_called:
                        raise  # handed back after the grace period: its outcome no longer counts
                    # The handler's own (say from awaiting a future that something else cancelled), or a
                    # cancellation of this task that the worker didn't make: either way the run failed.
                    self._post(functools.partial(self._handler_finished, run, exc))
                    if _task_cancelling():
                        # End this runner, without raising: a CancelledError out of a task would cancel its
                        # task group, which is the whole worker.
                        return
                    continue
                except BaseException as exc:  # SystemExit too: no handler ends the worker (asyncio would stop)
                    error = exc
                if observer is not None:
                    observer.run_ended(run, started, error)
                self._post(functools.partial(self._handler_finished, run, error))

    async def _call_handler(self, run: Run) -> None:
        func = run.handler.handler
        result: object
        if is_async_callable(func):
            result = await func(run.payload, self._context)
        else:
            result = await anyio.to_thread.run_sync(
                functools.partial(func, run.payload, self._context),
                limiter=self._thread_limiter,
                # Past the grace period the run is handed back; the thread may go on, unawaited.
                abandon_on_cancel=True,
            )
        while inspect.isawaitable(result):
            # Work left in an awaitable: returned by a plain `def` (a decorator's plain wrapper around an
            # `async def`), by an `async def` that forgot an `await`, or by another awaitable. Acking the run
            # without it would drop the timer unhandled.
            result = await result
        error = generator_result_error(run.topic, result)
        if error is not None:
            raise error

    def _wake_a_runner(self) -> None:
        if self._queue and self._parked and not self._waking:
            self._waking = True
            self._parked.popleft().set()

    def _handler_finished(self, run: Run, error: BaseException | None, now: float) -> None:
        self._engine.handler_finished(run, error)

    def _post(self, event: events.Event) -> None:
        self._events.append(event)
        if not self._wakeup.is_set():
            self._wakeup.set()

    def _apply_pending_events(self) -> None:
        if self._wakeup.is_set():
            self._wakeup = anyio.Event()
        pending, self._events = self._events, []
        now = time.monotonic()
        for event in pending:
            event(now)

    async def _wait_for_event(self, seconds: float) -> None:
        if not self._events:
            deadline = time.monotonic() + seconds
            with anyio.move_on_after(seconds - EVENT_LOOP_TIMER_SLACK_SECONDS):
                await self._wakeup.wait()
            # The event loop's timers end on whole milliseconds, late: yield until the exact moment instead.
            while not self._events and time.monotonic() < deadline:
                await anyio.lowlevel.checkpoint()
        self._apply_pending_events()

    async def _listen_for_notifications(self) -> None:
        """Forward wake-ups to the loop; on any connection trouble, reconnect and make the loop re-claim."""
        while True:
            pubsub = None
            try:
                pubsub = await self._driver.pubsub(self._listener_failures)
                channels = events.subscription(self._engine, pubsub.encoder)
                if not channels:
                    return  # nothing this client can hear: the safety claim finds every timer
                await pubsub.subscribe(*channels)
                await self._relay(pubsub, len(channels))
            except SERVER_REPLY_ERRORS + CONNECTION_ERRORS + PUBSUB_RECONNECT_ERRORS as error:
                # Unreachable, or an error reply to SUBSCRIBE or PING (LOADING, BUSY, NOPERM...): wait, then retry.
                # Counted until the server answers: SUBSCRIBE only sends, and its refusal comes with the first read.
                self._listener_failures += 1
                reported = server_errors.server_error(error) if isinstance(error, SERVER_REPLY_ERRORS) else error
                await anyio.sleep(events.reconnect_pause(self._listener_failures, reported, self._settings, self._rng))
            finally:
                if pubsub is not None:
                    with anyio.CancelScope(shield=True):
                        await pubsub.aclose()

    async def _relay(self, pubsub: Any, subscribed: int) -> None:
        watch = events.ConnectionWatch(self._settings.safety_wakeup_seconds, time.monotonic())
        while True:
            message = await pubsub.get_message(timeout=watch.seconds_to_next_check(time.monotonic()))
            now = time.monotonic()
            if message is not None:
                watch.heard(now)
                self._listener_failures = 0  # subscribed again: the next outage is reported afresh
                event = events.event_for_message(self._engine, message, pubsub.encoder.encode, subscribed)
                if event is not None:
                    self._post(event)
            elif watch.dead(now):
                raise redis.exceptions.ConnectionError("no reply to PING on the notification connection")
            elif watch.ping_due(now):
                await pubsub.ping()
                watch.pinged(now)
