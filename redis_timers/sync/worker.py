"""The blocking worker loop: handlers in a thread pool, notifications on a listener thread."""

from __future__ import annotations

import collections
import logging
import queue
import random
import threading
import time
from typing import Any

import redis

from redis_timers import events, server_errors
from redis_timers.engine import Cycle, Finished, Maintain, Probe, Run, Wait, WorkerEngine
from redis_timers.errors import REDIS_FAILURES
from redis_timers.registry import awaitable_result_error, generator_result_error
from redis_timers.settings import TimersSettings
from redis_timers.sync.driver import SyncDriver
from redis_timers.sync.lane import CONNECTION_ERRORS, SERVER_REPLY_ERRORS

logger = logging.getLogger("redis_timers")

LISTENER_JOIN_SECONDS = 5.0


class SyncWorker:
    def __init__(
        self,
        *,
        driver: SyncDriver,
        engine: WorkerEngine,
        context: dict[str, Any],
        settings: TimersSettings,
        listen: bool,
    ) -> None:
        self._driver = driver
        self._engine = engine
        self._context = context
        self._settings = settings
        self._stop_requested = threading.Event()
        self._listen = listen
        # Events for the loop, and one Event that wakes it. Runners wake the loop for finished runs once the
        # queue is empty or a quarter of the slots finished unreported; waking it for every quick handler
        # would hand the GIL back and forth once per timer.
        self._inbox: queue.SimpleQueue[events.Event] = queue.SimpleQueue()
        self._wakeup = threading.Event()
        self._report_every = max(1, engine.concurrency // 4)
        self._closed = threading.Event()
        # Handlers run on long-lived runner threads, started on demand up to the concurrency limit. Runs wait
        # in a deque; an idle runner parks on an Event of its own. One runner is woken (or started) at a time,
        # by whoever takes a run while more wait: a slow handler lets the next runner start at once, and quick
        # handlers are run back to back by one thread instead of bouncing the GIL between many.
        self._runner_lock = threading.Lock()
        self._queue: collections.deque[Run] = collections.deque()
        self._finished: list[tuple[Run, BaseException | None]] = []  # not yet told to the engine
        self._unreported = 0  # finished since the loop was last woken for them
        self._parked: list[threading.Event] = []
        self._waking = False
        self._runner_count = 0
        self._runners_closed = False
        self._rng = random.Random()
        self._listener_failures = 0
        """The notification connection's failures since it last heard from the server (for the backoff)."""

    def stop(self) -> None:
        """From any thread: stop claiming, let in-flight handlers finish within the grace period, return."""
        self._stop_requested.set()
        self._post(lambda now: None)

    def _post(self, event: events.Event) -> None:
        self._inbox.put(event)
        self._wakeup.set()

    def run(self) -> None:
        listener = threading.Thread(target=self._listen_for_notifications, name="redis-timers-listener", daemon=True)
        if self._listen and self._engine.channels:
            listener.start()
        try:
            try:
                self._loop()
            except KeyboardInterrupt:
                # Ctrl-C in the thread running the loop: stop gracefully, as a cancelled async worker does (the
                # interrupted round trip is replayed and its claims handed back), then re-raise. A second one
                # ends the stop.
                self._engine.request_stop(time.monotonic())
                self._loop()
                raise
        finally:
            self._closed.set()
            if listener.is_alive():
                # The listener notices within one poll; wait so that no thread reads the client after we return.
                listener.join(LISTENER_JOIN_SECONDS)
            # Idle runners exit; handlers still running after the grace period were handed back and end on
            # their own (runner threads are daemons, so they never keep the process alive).
            with self._runner_lock:
                self._runners_closed = True
                for parked in self._parked:
                    parked.set()

    def _loop(self) -> None:
        engine = self._engine
        while True:
            self._apply_pending_events()
            if self._stop_requested.is_set() and not engine.stopping:
                engine.request_stop(time.monotonic())
            step = engine.next_step(time.monotonic())
            if isinstance(step, Finished):
                if step.error is not None:
                    raise step.error
                return
            if isinstance(step, Wait):
                self._wait_for_event(step.seconds)
            elif isinstance(step, Cycle):
                sent_at = time.monotonic()
                try:
                    if step.more:  # a call to each of several shards, all in one round trip
                        outcomes = self._driver.execute_each(step.calls)
                    else:
                        reply = self._driver.execute(step.call)
                except REDIS_FAILURES as error:
                    if not engine.step_failed(time.monotonic(), error):
                        raise
                    continue
                except KeyboardInterrupt:
                    # The reply is lost, not the call: the stop in `run` replays it and hands its claims back.
                    engine.cycle_interrupted()
                    raise
                received_at = time.monotonic()
                if step.more:
                    runs = engine.calls_answered(outcomes, sent_at, received_at)
                else:
                    runs = engine.cycle_succeeded(reply, sent_at, received_at)
                with self._runner_lock:
                    self._queue.extend(runs)
                    self._wake_a_runner()
            elif isinstance(step, Probe):
                try:
                    engine.probe_answered(self._driver.drive(step.flow))
                except REDIS_FAILURES as error:
                    engine.probe_failed(error)
            elif isinstance(step, Maintain):
                try:
                    engine.maintenance_done(self._driver.drive(step.flow))
                except REDIS_FAILURES as error:
                    if not engine.step_failed(time.monotonic(), error):
                        raise

    def _wake_a_runner(self) -> None:
        """With the runner lock held: get one more runner going if runs wait and none is on its way."""
        if not self._queue or self._waking or self._runners_closed:
            return
        if self._parked:
            self._waking = True
            self._parked.pop().set()
        elif self._runner_count < self._engine.concurrency:
            self._waking = True
            self._runner_count += 1
            threading.Thread(target=self._run_handlers, name="redis-timers-handler", daemon=True).start()

    def _run_handlers(self) -> None:
        woken = True  # a new runner starts as the one on its way
        finished: tuple[Run, BaseException | None] | None = None
        while True:
            run: Run | None = None
            report = False
            with self._runner_lock:
                if finished is not None:
                    # Under the lock this runner takes anyway: cheaper than a queue per finished run.
                    self._finished.append(finished)
                    self._unreported += 1
                    finished = None
                if woken:
                    self._waking = False
                    woken = False
                if self._runners_closed:
                    return
                if self._queue:
                    run = self._queue.popleft()
                    self._wake_a_runner()
                else:
                    parked = threading.Event()
                    self._parked.append(parked)
                # Once the queue is empty, whatever runs now may take long: report what finished.
                if self._unreported and (not self._queue or self._unreported >= self._report_every):
                    report, self._unreported = True, 0
            if report:
                self._wakeup.set()
            if run is None:
                parked.wait()
                woken = True
                continue
            error: BaseException | None = None
            observer = self._engine.observer
            started = None if observer is None else observer.run_started(run)
            try:
                result = run.handler.handler(run.payload, self._context)
                if result is not None:  # return values are ignored, but an awaitable or a generator is work undone
                    error = awaitable_result_error(run.topic, result) or generator_result_error(run.topic, result)
            except BaseException as exc:  # Even SystemExit in a handler thread is that run failing.
                error = exc
            if observer is not None:
                observer.run_ended(run, started, error)
            finished = (run, error)

    def _apply_pending_events(self) -> None:
        self._wakeup.clear()  # before draining, so that an event posted meanwhile wakes the next wait
        with self._runner_lock:
            finished, self._finished = self._finished, []
        for index, (run, error) in enumerate(finished):
            try:
                self._engine.handler_finished(run, error)
            except BaseException:
                # Ctrl-C landed here: the stop that follows settles the rest (again from this one, which the
                # engine counts once), rather than hand back as never run what finished.
                with self._runner_lock:
                    self._finished[:0] = finished[index:]
                raise
        while True:
            try:
                event = self._inbox.get_nowait()
            except queue.Empty:
                return
            event(time.monotonic())

    def _wait_for_event(self, seconds: float) -> None:
        self._wakeup.wait(max(seconds, 0.0))

    def _listen_for_notifications(self) -> None:
        """Forward wake-ups to the loop; on any connection trouble, reconnect and make the loop re-claim."""
        while not self._closed.is_set():
            pubsub = None
            try:
                pubsub = self._driver.pubsub(self._listener_failures)
                channels = events.subscription(self._engine, pubsub.encoder)
                if not channels:
                    return  # nothing this client can hear: the safety claim finds every timer
                pubsub.subscribe(*channels)
                self._relay(pubsub, len(channels))
            except SERVER_REPLY_ERRORS + CONNECTION_ERRORS as error:
                # Unreachable, or an error reply to SUBSCRIBE or PING (LOADING, BUSY, NOPERM...): wait, then retry.
                # Counted until the server answers: SUBSCRIBE only sends, and its refusal comes with the first read.
                self._listener_failures += 1
                reported = server_errors.server_error(error) if isinstance(error, SERVER_REPLY_ERRORS) else error
                self._closed.wait(events.reconnect_pause(self._listener_failures, reported, self._settings, self._rng))
            finally:
                if pubsub is not None:
                    pubsub.close()

    def _relay(self, pubsub: Any, subscribed: int) -> None:
        watch = events.ConnectionWatch(self._settings.safety_wakeup_seconds, time.monotonic())
        while not self._closed.is_set():
            message = pubsub.get_message(timeout=events.LISTEN_POLL_SECONDS)
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
                pubsub.ping()
                watch.pinged(now)
