"""The worker's decisions, free of I/O and of the clock.

A front end asks `next_step(now)` what to do, does it, and reports back: replies of
cycles, handler outcomes, notifications, failures and stop requests. `now` is the front
end's monotonic clock in seconds; the engine maps server milliseconds onto it.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import random
import secrets
from collections.abc import Callable
from typing import Any, NamedTuple

import pydantic

from redis_timers import codec, flows, legacy, scripts, server_errors, wire
from redis_timers.errors import STOP_REQUESTS, SettingsError
from redis_timers.keys import Keyspace, Namespace
from redis_timers.ops import Flow, ScriptCall
from redis_timers.registry import HandlerRegistry
from redis_timers.retry import cycle_failure_pause, retry_delay_ms
from redis_timers.router import Handler
from redis_timers.settings import TimersSettings
from redis_timers.timing import ServerClock

logger = logging.getLogger("redis_timers")

MAX_CLAIM_BATCH = 1000
"""Most timers one round trip claims, whatever the concurrency: a round trip's script blocks the server."""
MAX_SETTLEMENTS_PER_CYCLE = 1000
"""Most settlements one round trip carries; the rest go in the next one, sent at once (see `_cycle_call`)."""
STOP_FLUSH_SECONDS = 5.0
"""After the grace period, how long a stopping worker keeps trying to hand leases back to an unreachable Redis."""
GATHER_SECONDS = 0.001
"""Longest a busy worker waits for more handlers to finish before a round trip (see `_gather_until`)."""
RENEW_AFTER_FRACTION = 1 / 3
"""A lease is renewed once a third of it has passed, so two renewals can fail before it runs out."""


def log_failure(level: int, message: str, args: tuple[object, ...], error: BaseException) -> None:
    """Log a handler's failure with its traceback; without it if formatting that raises.

    The traceback reads the exception class's `__qualname__` and `__module__`, which a metaclass
    can make raise anything: the failure is settled already, and logging it must not kill the worker.
    """
    try:
        logger.log(level, message, *args, exc_info=error)
    except STOP_REQUESTS:
        raise
    except BaseException:
        logger.log(level, message + " (its traceback could not be formatted)", *args)


def invalid_payload(error: BaseException) -> str:
    """Why a stored payload was refused: pydantic's report, or what the schema's own code raised."""
    if isinstance(error, pydantic.ValidationError):
        return str(error)
    return f"its validation raised {codec.describe_error(error)}"


@dataclasses.dataclass(frozen=True)
class Cycle:
    """Run this script call, then report `cycle_succeeded` or `step_failed`."""

    call: ScriptCall


@dataclasses.dataclass(frozen=True)
class Maintain:
    """Drive this flow (importing seed-era timers), then report `maintenance_done` or `step_failed`."""

    flow: Flow[int]


@dataclasses.dataclass(frozen=True)
class Wait:
    """Wait up to `seconds` for an event (handler done, notification, stop), then ask again."""

    seconds: float


@dataclasses.dataclass(frozen=True)
class Finished:
    """Nothing left to do: return, or raise `error` if there is one."""

    error: BaseException | None = None
    """A stop request (`KeyboardInterrupt`, `SystemExit`) raised while a claimed payload was validated."""


Step = Cycle | Maintain | Wait | Finished


@dataclasses.dataclass(eq=False, slots=True)
class Run:
    """One claimed timer whose handler the front end must call as `handler(payload, context)`."""

    run_id: int
    topic: str
    timer_id: str
    token: str
    attempts: int
    handler: Handler[Any]
    payload: pydantic.BaseModel
    topic_index: int
    renew_at_ms: float
    key: bytes
    """How settlements name this run on the wire (see `wire.py`)."""


class Settlement(NamedTuple):
    """What to tell Redis about one run; a tuple because a busy worker makes one per timer."""

    kind: bytes
    """One of `wire.ACK`, `RETRY`, `DEAD`, `RELEASE`, `RENEW`."""
    encoded: bytes
    """The whole settlement as `cycle.lua` reads it."""


def settle(kind: bytes, key: bytes, tail: bytes = b"") -> Settlement:
    return Settlement(kind, kind + key + tail)


class WorkerEngine:
    def __init__(
        self,
        *,
        keyspace: Keyspace,
        registry: HandlerRegistry,
        settings: TimersSettings,
        rng: random.Random,
        single_pass: bool,
        concurrency: int | None = None,
        layout_check: Callable[[], Flow[int]] | None = None,
    ) -> None:
        self._keyspace = keyspace
        # The namespace's shard count, checked before the first round trip (a maintenance step, so that an
        # outage at start is ridden out like any other); None once checked, or when the Timers checked it already.
        self._layout_check = layout_check
        self._registry = registry
        self._settings = settings
        self._rng = rng
        self._single_pass = single_pass
        self._topics = registry.topics
        self._handlers = [registry.find(topic) for topic in self._topics]
        self._validators = [handler.schema.__pydantic_validator__.validate_json for handler in self._handlers]
        self._attempt_limits = [handler.max_attempts or settings.max_attempts for handler in self._handlers]
        self._topic_keys = tuple(itertools.chain.from_iterable(map(keyspace.topic_keys, self._topics)))
        # Each round trip records its claims under a key of its own; the id moves on only once a reply
        # arrives, so a cycle retried after a lost reply gets the same claims back instead of new ones.
        # From the OS, not from `rng`: processes forked from one Timers share its generator's state.
        self._worker_id = secrets.token_hex(8)
        self._cycle_number = 0
        self._previous_record = keyspace.claim_record(f"{self._worker_id}:none")
        self.concurrency = settings.concurrent_processing_limit if concurrency is None else concurrency
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise SettingsError(f"concurrency must be an int >= 1, got {self.concurrency!r}")
        self._lease_ms = round(settings.lease_seconds * 1000)
        self._renew_every_ms = self._lease_ms * RENEW_AFTER_FRACTION
        self._clock = ServerClock()
        self._run_ids = itertools.count(1)
        self._in_flight: dict[int, Run] = {}
        self._pending: list[Settlement] = []
        self._sent: list[Settlement] = []
        self._asked = 0
        self._rotation = 0
        # Server ms of the earliest timer of our topics: None = unknown (claim to learn it), inf = none.
        self._next_due: float | None = None
        # A worker that could claim claims at least once per safety interval, whatever it believes the next
        # due time is: a lost notification then delays a timer by one interval at most.
        self._safety_claim_at = 0.0
        self._failures = 0
        self._paused_until = 0.0
        # A round trip whose reply never came (the front end was interrupted while waiting): it may have
        # claimed timers, so it is sent again, even while stopping, to get those claims back and release them.
        self._replay_due = False
        self._imports = bool(self._topics) and settings.legacy_import
        self._importing = False  # the step out is the import (a Maintain), for what a failure of it says
        self._next_import_at = 0.0 if self._imports else math.inf
        self._stop_deadline: float | None = None
        self._finished = False
        self._stop_error: BaseException | None = None
        self._cutoff: int | None = None
        self._gathering_since: float | None = None
        self._pass_exhausted = False
        self.stale_settlements = 0

    # -- what to do next ------------------------------------------------------------------

    def next_step(self, now: float) -> Step:
        if self._finished:
            return Finished(self._stop_error)
        if now < self._paused_until:
            resume_at = self._paused_until
            if self._stop_deadline is not None:
                # A pause that ends past the flush bound leads to no further try: stop waiting there.
                resume_at = min(resume_at, self._stop_deadline + STOP_FLUSH_SECONDS)
            if now < resume_at:
                return Wait(resume_at - now)
        if self._stop_deadline is not None:
            return self._stopping_step(now)
        if self._layout_check is not None:
            return Maintain(self._layout_check())
        if now >= self._next_import_at:
            self._next_import_at = (
                math.inf if self._single_pass else now + self._settings.legacy_import_interval_seconds
            )
            self._importing = True
            namespace = Namespace(self._keyspace.namespace, self._keyspace.shards)
            return Maintain(legacy.import_legacy(namespace, self._registry, self._settings))
        self._plan_renewals(now)
        if self._pending or self._wants_claim(now):
            gather_until = self._gather_until(now)
            if now < gather_until:
                return Wait(gather_until - now)
            return Cycle(self._cycle_call(claim=True))
        if self._single_pass and self._pass_exhausted and not self._in_flight:
            self._finished = True
            return Finished(self._stop_error)
        return Wait(self._wait_seconds(now))

    def _stopping_step(self, now: float) -> Step:
        assert self._stop_deadline is not None
        if now >= self._stop_deadline + STOP_FLUSH_SECONDS:
            # Redis stayed unreachable: the leases will simply run out and other workers take over.
            self._finished = True
            return Finished(self._stop_error)
        if now >= self._stop_deadline and self._in_flight:
            # Grace is over: hand the leases back so other workers can take these timers at once.
            for run in self._in_flight.values():
                self._pending.append(settle(wire.RELEASE, run.key))
            logger.warning("stopping with %d handler(s) unfinished; their timers are handed back", len(self._in_flight))
            self._in_flight.clear()
        self._plan_renewals(now)
        if self._pending or self._replay_due:
            return Cycle(self._cycle_call(claim=False))
        if not self._in_flight:
            self._finished = True
            return Finished(self._stop_error)
        return Wait(min(self._stop_deadline - now, self._renewal_wait(now)))

    def _gather_until(self, now: float) -> float:
        """While most slots are busy, wait a moment for more handlers to finish, then settle and claim at once.

        A round trip per finished handler would cap a busy worker at the round-trip rate; a short window
        (GATHER_SECONDS) lets one round trip settle and refill a quarter of the slots or more.
        """
        free = self.concurrency - len(self._in_flight)
        if not self._in_flight or free >= max(1, self.concurrency // 4):
            self._gathering_since = None
            return now
        if self._gathering_since is None:
            self._gathering_since = now
        return self._gathering_since + GATHER_SECONDS

    def _wants_claim(self, now: float) -> bool:
        if len(self._in_flight) >= self.concurrency or (self._single_pass and self._pass_exhausted):
            return False
        if self._next_due is None or (self._topics and now >= self._safety_claim_at):
            return True
        server_now = self._clock.server_now_ms(now)
        return server_now is not None and self._next_due <= math.floor(server_now)

    def _wait_seconds(self, now: float) -> float:
        wait = min(self._settings.safety_wakeup_seconds, self._renewal_wait(now), self._next_import_at - now)
        next_due = self._next_due
        claiming = len(self._in_flight) < self.concurrency and not (self._single_pass and self._pass_exhausted)
        if claiming and self._topics:
            wait = min(wait, self._safety_claim_at - now)
            if next_due is not None and next_due != math.inf:
                wait = min(wait, self._clock.seconds_until(math.ceil(next_due), now))
        return wait

    def _renewal_wait(self, now: float) -> float:
        if not self._in_flight:
            return math.inf
        earliest = min(run.renew_at_ms for run in self._in_flight.values())
        return self._clock.seconds_until(math.ceil(earliest), now)

    def _plan_renewals(self, now: float) -> None:
        server_now = self._clock.server_now_ms(now)
        if server_now is None:
            return
        for run in self._in_flight.values():
            if run.renew_at_ms <= server_now:
                self._pending.append(settle(wire.RENEW, run.key))
                run.renew_at_ms = server_now + self._renew_every_ms

    def _cycle_call(self, *, claim: bool) -> ScriptCall:
        # Bounded like the claims, so that no concurrency makes one call too big for the script (or the
        # server's patience); what is left is still pending, so the next step is another round trip at once.
        if len(self._pending) <= MAX_SETTLEMENTS_PER_CYCLE:
            self._sent, self._pending = self._pending, []
        else:
            self._sent = self._pending[:MAX_SETTLEMENTS_PER_CYCLE]
            self._pending = self._pending[MAX_SETTLEMENTS_PER_CYCLE:]
        self._asked = min(self.concurrency - len(self._in_flight), MAX_CLAIM_BATCH) if claim else 0
        n_topics = len(self._topics)
        args: list[Any] = [
            self._lease_ms,
            self._asked,
            "" if self._cutoff is None else self._cutoff,
            self._keyspace.channel_prefix,
            n_topics,
            *self._topics,
            self._rotation,
            b"".join([settlement.encoded for settlement in self._sent]),
        ]
        self._rotation = (self._rotation + 1) % max(1, n_topics)
        record = self._keyspace.claim_record(f"{self._worker_id}:{self._cycle_number}")
        keys = (self._keyspace.dead_letters, record, self._previous_record, *self._topic_keys)
        return ScriptCall(scripts.CYCLE, keys, tuple(args))

    # -- what happened --------------------------------------------------------------------

    def cycle_succeeded(self, reply: list[Any], sent_at: float, received_at: float) -> list[Run]:
        """Record a cycle's reply; returns the runs whose handlers the front end must start now."""
        now_ms, next_due, stale, examined = int(reply[0]), int(reply[1]), int(reply[2]), int(reply[3])
        self._clock.observe(now_ms, sent_at, received_at)
        self._gathering_since = None
        self._safety_claim_at = received_at + self._settings.safety_wakeup_seconds
        self._previous_record = self._keyspace.claim_record(f"{self._worker_id}:{self._cycle_number}")
        self._cycle_number += 1
        self._failures = 0
        self._sent = []
        self._replay_due = False
        if stale:
            # Expected when a timer was rescheduled or removed while its handler ran, or its lease ran out.
            logger.debug("%d settlement(s) no longer held their lease and were dropped", stale)
            self.stale_settlements += stale
        self._next_due = math.inf if next_due < 0 else next_due
        if self._single_pass and self._cutoff is None:
            # The pass handles what is due by the end of the millisecond it started in: a timer set with no delay
            # just before it is due at the next whole millisecond (scores from now round up), so the pass waits
            # that long for it rather than miss it. Claims never take a timer before its due time.
            self._cutoff = now_ms + 1
        runs: list[Run] = []
        renew_at_ms = now_ms + self._renew_every_ms
        handlers, validators, in_flight, run_ids = self._handlers, self._validators, self._in_flight, self._run_ids
        claims = wire.claims(reply[4])
        if self._stop_deadline is not None:
            # Claims reach a stopping worker only from a replayed round trip: hand them back at once.
            self._pending.extend(settle(wire.RELEASE, claim.key) for claim in claims)
            claims = []
        for index, (attempts, topic_index, token, raw_id, body, key) in enumerate(claims):
            handler = handlers[topic_index - 1]
            timer_id = raw_id.decode("utf-8", "surrogateescape")
            limit = self._attempt_limits[topic_index - 1]
            if attempts > limit:
                # Attempts are counted at claim time, so its last run neither succeeded nor failed: its worker
                # died (or its lease ran out) every time. Running it again could crash the next worker too.
                reason = (
                    f"claimed {attempts} times without finishing (worker died or lease ran out); "
                    f"the limit is {limit} attempt(s)"
                )
                logger.error("timer %r/%r %s; moved to dead letters", handler.topic, timer_id, reason)
                self._pending.append(settle(wire.DEAD, key, wire.with_error(reason)))
                continue
            try:
                payload = validators[topic_index - 1](body)
                if not isinstance(payload, handler.schema):
                    flows.of_schema(handler.schema, payload)  # raises, saying what it validated into
            except STOP_REQUESTS as stop:
                self._stop_while_claiming(stop, runs, claims[index + 1 :], received_at)
                return []
            except BaseException as error:  # anything else a validator raises is this payload's fault
                # Retrying cannot help a payload that no longer fits its schema: dead-letter it, run the others.
                logger.error("timer %r/%r has an invalid payload; moved to dead letters", handler.topic, timer_id)
                reason = f"payload does not validate against {handler.schema.__name__}: {invalid_payload(error)}"
                self._pending.append(settle(wire.DEAD, key, wire.with_error(reason)))
                continue
            # Positional: a busy worker makes one per timer (fields in declaration order).
            run_id = next(run_ids)
            run = Run(
                run_id,
                handler.topic,
                timer_id,
                token.decode(),
                attempts,
                handler,
                payload,
                topic_index,
                renew_at_ms,
                key,
            )
            in_flight[run_id] = run
            runs.append(run)
        if examined < self._asked and not (self._cutoff is not None and self._next_due <= self._cutoff):
            self._pass_exhausted = True
        return runs

    def _stop_while_claiming(
        self, stop: BaseException, started: list[Run], unvalidated: list[wire.Claim], now: float
    ) -> None:
        """A stop request raised in a validator: stop gracefully, then raise it (see `Finished.error`).

        Not the payload's fault (a signal handler may raise it wherever the loop is), so not a dead letter.
        The rest of this reply's claims are handed back, not left to their leases: those would count as
        attempts, and a validator that raises it itself would take its batch-mates to dead letters with it.
        Its own timer keeps its lease, an attempt, so that such a validator ends in dead letters in the end.
        """
        for run in started:
            del self._in_flight[run.run_id]
            self._pending.append(settle(wire.RELEASE, run.key))
        self._pending.extend(settle(wire.RELEASE, claim.key) for claim in unvalidated)
        self._stop_error = stop
        self.request_stop(now)

    def maintenance_done(self, imported: int) -> None:
        self._layout_check = None
        self._importing = False
        if imported:
            logger.info("imported %d timer(s) written by an earlier redis-timers version", imported)
            self._next_due = None

    def cycle_interrupted(self) -> None:
        """The front end gave up waiting for a cycle's reply (it was cancelled or interrupted).

        The call may have run: its settlements are pending again, and the next round trip, even while
        stopping, re-sends it under the same claim record (replaying its claims, which a stopping
        worker then hands back).
        """
        self._pending = self._sent + self._pending
        self._sent = []
        self._next_due = None
        self._replay_due = True

    def step_failed(self, now: float, error: BaseException) -> bool:
        """A cycle or maintenance step failed: Redis was unreachable or answered with an error.

        Returns False when the caller should re-raise: in a single pass, and for an error that will not pass
        on its own (a wrong password, an ACL that forbids the worker's keys, a key of the wrong type), which
        someone must fix; waiting for it would only hide it.
        """
        self._pending = [s for s in self._sent if s.kind != wire.RENEW] + self._pending
        self._sent = []
        self._next_due = None
        importing, self._importing = self._importing, False
        permanent = not server_errors.is_outage(error)
        if importing and permanent:
            # Say which call it was: a user who never had the original library's keys (an ACL without them)
            # would otherwise see a bare NOPERM from a worker whose own keys all work.
            logger.error(
                "Redis refused the import of timers written by the original library (keys %r and %r): %s. Grant"
                " the worker those keys, or switch the import off with TIMERS_LEGACY_IMPORT=0 if none are left",
                self._settings.timeline_key,
                self._settings.payloads_key,
                codec.describe_error(error),
            )
        if self._single_pass:
            return False
        if permanent:
            logger.error(
                "the worker stops: Redis refused its call and will until the cause is fixed (%s). No timer is lost:"
                " they stay in Redis, and those it was running are due again when their leases end",
                codec.describe_error(error),
            )
            return False
        self._failures += 1
        pause = cycle_failure_pause(self._failures, self._settings, self._rng)
        self._paused_until = now + pause
        if self._imports:
            # The import may be what failed; try it again as soon as Redis answers.
            self._next_import_at = min(self._next_import_at, self._paused_until)
        logger.warning("Redis unavailable (%s); retrying in %.2fs", codec.describe_error(error), pause)
        return True

    def handler_finished(self, run: Run, error: BaseException | None) -> None:
        if self._in_flight.pop(run.run_id, None) is None:
            return  # Already handed back at shutdown; its outcome no longer counts.
        if error is None:
            self._pending.append(settle(wire.ACK, run.key))
            return
        description = codec.describe_error(error)
        limit = self._attempt_limits[run.topic_index - 1]
        if run.attempts >= limit:
            self._pending.append(settle(wire.DEAD, run.key, wire.with_error(description)))
            log_failure(
                logging.ERROR,
                "timer %r/%r failed %d time(s); moved to dead letters: %s",
                (run.topic, run.timer_id, run.attempts, description),
                error,
            )
            return
        delay_ms = retry_delay_ms(run.attempts, self._settings, self._rng)
        self._pending.append(settle(wire.RETRY, run.key, wire.with_error(description, delay_ms)))
        log_failure(
            logging.WARNING,
            "timer %r/%r failed (attempt %d of %d); retrying in %.1fs: %s",
            (run.topic, run.timer_id, run.attempts, limit, delay_ms / 1000, description),
            error,
        )

    def notified(self, topic: str, due_ms: int) -> None:
        """Another process scheduled a timer of `topic` earlier than the head we knew."""
        if self._next_due is not None and topic in self._topics:
            self._next_due = min(self._next_due, due_ms)

    def notified_on(self, channel: str | bytes, data: str | bytes) -> None:
        channel_name = codec.text(channel)
        prefix = self._keyspace.channel_prefix
        if channel_name.startswith(prefix):
            try:
                due_ms = int(codec.text(data))
            except ValueError:
                return
            self.notified(channel_name[len(prefix) :], due_ms)

    @property
    def channels(self) -> list[str]:
        return [self._keyspace.channel(topic) for topic in self._topics]

    def rearm(self) -> None:
        """Notifications may have been missed (reconnect): claim once to learn the next due time."""
        self._next_due = None

    def request_stop(self, now: float, grace: float | None = None) -> None:
        if self._stop_deadline is None:
            self._stop_deadline = now + (self._settings.shutdown_grace_seconds if grace is None else grace)
            self._paused_until = 0.0

    def stop_seconds_left(self, now: float) -> float:
        """While stopping: how long the stop may still take, the grace period and the flush after it.

        A front end that can interrupt its own calls bounds a stop's round trips with it: one to a server
        that holds the call (a pause, a partition) would otherwise outlast the stop, however long it takes.
        """
        assert self._stop_deadline is not None, "not stopping"
        return max(0.0, self._stop_deadline + STOP_FLUSH_SECONDS - now)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def stopping(self) -> bool:
        return self._stop_deadline is not None
