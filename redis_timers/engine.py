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
from collections.abc import Callable, Sequence
from typing import Any

import pydantic

from redis_timers import codec, flows, legacy, probe, scripts, server_errors, wire
from redis_timers.errors import STOP_REQUESTS, SettingsError
from redis_timers.keys import Namespace
from redis_timers.observe import Guarded
from redis_timers.ops import Flow, ScriptCall
from redis_timers.registry import HandlerRegistry
from redis_timers.retry import cycle_failure_pause, retry_delay_ms
from redis_timers.router import Handler
from redis_timers.settings import TimersSettings
from redis_timers.shards import Settlement, ShardState, claim_shares, new_shard_states

logger = logging.getLogger("redis_timers")

MAX_CLAIM_BATCH = 1000
"""Most timers one round trip claims, whatever the concurrency: a round trip's script blocks the server."""
MAX_SETTLEMENTS_PER_CYCLE = 1000
"""Most settlements one round trip carries; the rest go in the next one, sent at once (see `_cycle_call`)."""
STOP_FLUSH_SECONDS = 5.0
"""After the grace period, how long a stopping worker keeps trying to hand leases back to an unreachable Redis."""
GATHER_SECONDS = 0.001
"""Longest a busy worker waits for more handlers to finish before a round trip (see `_gather_until`)."""
UNREGISTERED = -2
"""A cycle's next due time when the shard does not have the worker's topic set (see cycle.lua)."""
RENEW_AFTER_FRACTION = 1 / 3
"""A lease is renewed once a third of it has passed, so two renewals can fail before it runs out."""


def log_failure(
    level: int, message: str, args: tuple[object, ...], error: BaseException, fields: dict[str, object]
) -> None:
    """Log a handler's failure with its traceback; without it if formatting that raises.

    The traceback reads the exception class's `__qualname__` and `__module__`, which a metaclass
    can make raise anything: the failure is settled already, and logging it must not kill the worker.
    """
    try:
        logger.log(level, message, *args, exc_info=error, extra=fields)
    except STOP_REQUESTS:
        raise
    except BaseException:
        logger.log(level, message + " (its traceback could not be formatted)", *args, extra=fields)


def lateness_ms(token: str, started_ms: float) -> float | None:
    """How long after its due time a claim started: its token ends with the due time (see `cycle.lua`)."""
    _, _, due = token.rpartition(".")
    return started_ms - int(due) if due.isdigit() and token.count(".") == 2 else None


def log_fields(topic: str, timer_id: str, attempt: int, lateness: float | None) -> dict[str, object]:
    """The `extra` fields of a log record about one run (docs/operations.md, "Logs")."""
    return {"topic": topic, "timer_id": timer_id, "attempt": attempt, "lateness_ms": lateness}


def invalid_payload(error: BaseException) -> str:
    """Why a stored payload was refused: pydantic's report, or what the schema's own code raised."""
    if isinstance(error, pydantic.ValidationError):
        return str(error)
    return f"its validation raised {codec.describe_error(error)}"


@dataclasses.dataclass(frozen=True)
class Cycle:
    """Send these script calls, one per shard that needs one, all at once; then report how each went.

    A cycle of one call (always, with one shard): `cycle_succeeded` or `step_failed`. A cycle of several:
    each call's reply or error, in order, to `calls_answered`; or `step_failed` if none could be sent.
    """

    call: ScriptCall
    """The first call (the only one, with one shard)."""
    more: tuple[ScriptCall, ...] = ()
    """The other shards' calls: sent with the first, concurrently, in one network round trip."""

    @property
    def calls(self) -> tuple[ScriptCall, ...]:
        return (self.call, *self.more)


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
    """A stop request (`KeyboardInterrupt`, `SystemExit`) raised while a claimed payload was validated, or the
    error of one shard's call that the worker stops for (see `WorkerEngine.calls_answered`)."""


@dataclasses.dataclass(frozen=True)
class Probe:
    """Drive this flow (an idle worker's safety check, one call per node: see `probe.py`), then report its
    result to `probe_answered`, or the error that ended it to `probe_failed`."""

    flow: Flow[list[probe.Outcome]]


Step = Cycle | Maintain | Probe | Wait | Finished


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
    shard: int = 0
    """The shard it was claimed from, which its settlements go to."""
    started_ms: float = 0.0
    """When its claim's reply arrived, on its shard's clock (server ms): the run starts then."""
    trace: str | None = None
    """The trace context carried with the timer (a W3C traceparent), if it was scheduled under a span."""

    @property
    def lateness_ms(self) -> float | None:
        return lateness_ms(self.token, self.started_ms)

    def log_fields(self) -> dict[str, object]:
        return log_fields(self.topic, self.timer_id, self.attempts, self.lateness_ms)


def settle(kind: bytes, key: bytes, tail: bytes = b"") -> Settlement:
    return Settlement(kind, kind + key + tail)


class WorkerEngine:
    def __init__(
        self,
        *,
        namespace: Namespace,
        registry: HandlerRegistry,
        settings: TimersSettings,
        rng: random.Random,
        single_pass: bool,
        concurrency: int | None = None,
        layout_check: Callable[[], Flow[int]] | None = None,
        observer: Guarded | None = None,
    ) -> None:
        self._namespace = namespace
        self.observer = observer
        """Told of each run's start, end and outcome (`observe.py`); None costs one test per event."""
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
        # Each round trip records its claims under a key of its own; the id moves on only once a reply
        # arrives, so a cycle retried after a lost reply gets the same claims back instead of new ones.
        # From the OS, not from `rng`: processes forked from one Timers share its generator's state.
        self._worker_id = secrets.token_hex(8)
        self._shards = new_shard_states(namespace.keyspaces, self._topics, self._worker_id)
        self._shard_by_channel_prefix = {shard.keyspace.channel_prefix: shard for shard in self._shards}
        # The shards of the cycle out now, in the order of its calls; reused, not reallocated, per cycle.
        self._outstanding: list[ShardState] = []
        self._wanting: list[int] = []
        self._first_extra_claim = 0  # which shard gets a claim budget's remainder first (see `claim_shares`)
        self.concurrency = settings.concurrent_processing_limit if concurrency is None else concurrency
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise SettingsError(f"concurrency must be an int >= 1, got {self.concurrency!r}")
        self._lease_ms = round(settings.lease_seconds * 1000)
        self._renew_every_ms = self._lease_ms * RENEW_AFTER_FRACTION
        self._repair_every_ms = round(settings.safety_wakeup_seconds * 1000)
        self._run_ids = itertools.count(1)
        self._in_flight: dict[int, Run] = {}
        # A worker that could claim claims from each shard at least once per safety interval, whatever it believes
        # the shard's next due time is: a lost notification then delays a timer by one interval at most.
        # A step that failed as a whole (the import, or a cycle none of whose calls could be sent) pauses every
        # shard; a call that failed alone pauses its shard alone (`ShardState.paused_until`).
        # With several shards, a shard whose only reason for a call is that check is probed instead (`probe.py`):
        # one read-only call per node for all of its shards, then claims from those with a timer due only. Not in
        # a single pass, which claims from every shard until it is done.
        self._probing = len(self._shards) > 1 and bool(self._topics) and not single_pass
        self._probed: list[ShardState] = []  # the shards of the probe out now
        self._probe_sent_at = 0.0
        self._probe_cursor = 0  # the first topic whose timelines the next probe reads (`probe.scanned`)
        self._failures = 0
        self._paused_until = 0.0
        self._imports = bool(self._topics) and settings.legacy_import
        self._importing = False  # the step out is the import (a Maintain), for what a failure of it says
        self._import_failures = 0  # in a row, when they pause the import alone (several shards)
        self._next_import_at = 0.0 if self._imports else math.inf
        # A pass of the import is steps of a page each; between two, the worker makes a round trip if it
        # needs one, so firing never waits for a whole pass (a single pass imports first, as it always did).
        self._import_job: legacy.LegacyImport | None = None
        self._import_memory = legacy.ImportMemory()
        self._import_turn = True
        self._stop_deadline: float | None = None
        self._finished = False
        self._stop_error: BaseException | None = None
        self._gathering_since: float | None = None
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
        if self._import_job is None and now >= self._next_import_at:
            self._next_import_at = (
                math.inf if self._single_pass else now + self._settings.legacy_import_interval_seconds
            )
            self._import_job = legacy.LegacyImport(self._namespace, self._registry, self._settings, self._import_memory)
            self._import_turn = True  # a pass begins before the next round trip, as a whole one used to
        if self._import_turn or self._single_pass:
            import_step = self._import_step()
            if import_step is not None:
                return import_step
        self._plan_renewals(now)
        wanting = self._wanting
        wanting.clear()
        settling = needed = False
        checks_due = 0  # shards whose only reason for a call is their safety check, when they are probed
        claiming = len(self._in_flight) < self.concurrency
        for shard in self._shards:
            if now < shard.paused_until:
                continue
            if shard.pending:
                settling = True
            elif not claiming:
                continue
            elif self._wants_claim(shard, now):
                needed = True
            elif self._check_due(shard, now):
                checks_due += 1
            else:
                continue
            # A call that settles claims too, as with one shard: the round trip is made anyway. And a round trip
            # made anyway does the safety checks due too (a call each, in the same round trip): a busy shard's
            # calls must not hold back the others' checks.
            if claiming:
                wanting.append(shard.index)
        if checks_due and not (needed or settling):
            return self._probe(now)
        if wanting or settling:
            gather_until = self._gather_until(now)
            if now < gather_until:
                return self._import_step() or Wait(gather_until - now)
            self._import_turn = True
            return self._cycle(now, wanting)
        if self._single_pass and not self._in_flight and all(shard.pass_exhausted for shard in self._shards):
            self._finished = True
            return Finished(self._stop_error)
        return self._import_step() or Wait(self._wait_seconds(now))

    def _import_step(self) -> Maintain | None:
        """The import's next step, if a pass is under way; None once it is over (or there is none)."""
        job = self._import_job
        if job is None:
            return None
        flow = job.next_step()
        if flow is None:
            self._import_job = None
            return None
        self._importing = True
        self._import_turn = False
        return Maintain(flow)

    def _stopping_step(self, now: float) -> Step:
        assert self._stop_deadline is not None
        flush_bound = self._stop_deadline + STOP_FLUSH_SECONDS
        if now >= flush_bound:
            # Redis stayed unreachable: the leases will simply run out and other workers take over.
            self._finished = True
            return Finished(self._stop_error)
        if now >= self._stop_deadline and self._in_flight:
            # Grace is over: hand the leases back so other workers can take these timers at once.
            for run in self._in_flight.values():
                self._shards[run.shard].pending.append(settle(wire.RELEASE, run.key))
            logger.warning("stopping with %d handler(s) unfinished; their timers are handed back", len(self._in_flight))
            self._in_flight.clear()
        self._plan_renewals(now)
        self._wanting.clear()
        resume_at = math.inf  # when a shard that backs off may try its hand-back again
        for shard in self._shards:
            if shard.pending or shard.replay_due:
                if now >= shard.paused_until:
                    return self._cycle(now, self._wanting)
                resume_at = min(resume_at, shard.paused_until, flush_bound)
        if not self._in_flight and resume_at == math.inf:
            self._finished = True
            return Finished(self._stop_error)
        wait = resume_at - now
        if self._in_flight:
            wait = min(wait, self._stop_deadline - now, self._renewal_wait(now))
        return Wait(wait)

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

    def _wants_claim(self, shard: ShardState, now: float) -> bool:
        if self._single_pass and shard.pass_exhausted:
            return False
        if shard.next_due is None:
            return True
        if self._topics and now >= shard.safety_claim_at and not (self._probing and shard.probe_answers):
            return True
        server_now = shard.clock.server_now_ms(now)
        return server_now is not None and shard.next_due <= math.floor(server_now)

    def _check_due(self, shard: ShardState, now: float) -> bool:
        """Whether `shard` is due its safety check, and a probe makes it (see `_wants_claim`)."""
        return self._probing and shard.probe_answers and now >= shard.safety_claim_at

    def _probe(self, now: float) -> Probe:
        """A probe of every shard that has no call to make now, not only of those due their check (`_wanting`).

        Each shard's interval runs from its last call, so shards drift apart as they get claim calls at other
        times; probed apart, they would cost a call each per interval again. A shard probed early costs its node
        nothing more (it is in that node's call anyway), and from then on they are checked together.
        """
        self._probed = [shard for shard in self._shards if now >= shard.paused_until and shard.probe_answers]
        self._probe_sent_at = now
        batch = probe.scanned(self._topics, self._probe_cursor)
        self._probe_cursor = (self._probe_cursor + len(batch)) % len(self._topics)
        return Probe(probe.probe([(shard.keyspace, shard.topic_set) for shard in self._probed], batch))

    def probe_answered(self, outcomes: Sequence[probe.Outcome]) -> None:
        """Each probed shard's outcome: a shard with a timer due is claimed from at once; one whose node refused
        the probe gets its own claim call, as without the probe; the others' next check is an interval on."""
        probed, self._probed = self._probed, []
        next_check = self._probe_sent_at + self._settings.safety_wakeup_seconds
        for shard, outcome in zip(probed, outcomes):
            if isinstance(outcome, BaseException):
                self._probe_refused(shard, outcome)
                continue
            shard.safety_claim_at = next_check
            shard.rebuild_heads = shard.rebuild_heads or outcome.rebuild
            if outcome.due:
                shard.next_due = None  # claim to learn it
            else:
                shard.next_due = math.inf if outcome.lowest is None else outcome.lowest

    def probe_failed(self, error: BaseException) -> None:
        """The probe as a whole failed (a node unreachable): each shard gets its own claim call, and those of a
        node that is down back off alone (see `step_failed`)."""
        probed, self._probed = self._probed, []
        for shard in probed:
            self._probe_refused(shard, error)

    def _probe_refused(self, shard: ShardState, error: BaseException) -> None:
        shard.probe_answers = False  # until its next claim call succeeds (`cycle_succeeded`)
        # A key that is not its node's is a slot map that trails a slot moved for good: the driver reads it again.
        if not server_errors.is_outage(error) and not server_errors.names_a_moved_key(error) and self._probing:
            # A server that cannot run the probe (no script flags before Redis 7) never will: probe no more.
            self._probing = False
            logger.info(
                "safety checks are one claim call per shard: the server refused the probe (%s)",
                codec.describe_error(error),
            )

    def _wait_seconds(self, now: float) -> float:
        wait = min(self._settings.safety_wakeup_seconds, self._renewal_wait(now), self._next_import_at - now)
        claiming = len(self._in_flight) < self.concurrency and bool(self._topics)
        for shard in self._shards:
            shard_wait = math.inf
            if shard.pending:
                shard_wait = 0.0  # only while the shard backs off (else the step is a cycle)
            elif claiming and not (self._single_pass and shard.pass_exhausted):
                shard_wait = shard.safety_claim_at - now
                next_due = shard.next_due
                if next_due is None:
                    shard_wait = 0.0  # only while the shard backs off (else the step is a cycle)
                elif next_due != math.inf:
                    shard_wait = min(shard_wait, shard.clock.seconds_until(math.ceil(next_due), now))
            if shard_wait < wait:
                wait = min(wait, max(shard_wait, shard.paused_until - now))
        return wait

    def _renewal_wait(self, now: float) -> float:
        if not self._in_flight:
            return math.inf
        shards = self._shards
        if len(shards) == 1:
            earliest = min(run.renew_at_ms for run in self._in_flight.values())
            return shards[0].clock.seconds_until(math.ceil(earliest), now)
        return min(
            shards[run.shard].clock.seconds_until(math.ceil(run.renew_at_ms), now) for run in self._in_flight.values()
        )

    def _plan_renewals(self, now: float) -> None:
        if not self._in_flight:
            return
        shards = self._shards
        if len(shards) == 1:
            server_now = shards[0].clock.server_now_ms(now)
            if server_now is None:
                return
            pending = shards[0].pending
            for run in self._in_flight.values():
                if run.renew_at_ms <= server_now:
                    pending.append(settle(wire.RENEW, run.key))
                    run.renew_at_ms = server_now + self._renew_every_ms
            return
        # Each lease runs on its own shard's clock.
        server_nows = [shard.clock.server_now_ms(now) for shard in shards]
        for run in self._in_flight.values():
            shard_now = server_nows[run.shard]
            if shard_now is not None and run.renew_at_ms <= shard_now:
                shards[run.shard].pending.append(settle(wire.RENEW, run.key))
                run.renew_at_ms = shard_now + self._renew_every_ms

    def _cycle(self, now: float, wanting: list[int]) -> Cycle:
        """One call per shard in `wanting` (sharing the free slots) or with settlements to send (or replay).

        Only shards that are not backing off; the caller has made sure there is at least one. A stopping
        worker claims nothing.
        """
        stopping = self._stop_deadline is not None
        free = 0 if stopping else self.concurrency - len(self._in_flight)
        outstanding = self._outstanding
        outstanding.clear()
        shards = self._shards
        if len(shards) == 1:
            outstanding.append(shards[0])
            return Cycle(self._cycle_call(shards[0], min(free, MAX_CLAIM_BATCH)))
        shares: list[int] = []
        if wanting:
            shares, self._first_extra_claim = claim_shares(free, wanting, len(shards), self._first_extra_claim)
        calls = []
        position = 0
        for shard in shards:
            share = 0
            if position < len(wanting) and wanting[position] == shard.index:
                share = min(shares[position], MAX_CLAIM_BATCH)
                position += 1
            if now < shard.paused_until:
                continue
            if share or shard.pending or (stopping and shard.replay_due):
                outstanding.append(shard)
                calls.append(self._cycle_call(shard, share))
        return Cycle(calls[0], tuple(calls[1:]))

    def _cycle_call(self, shard: ShardState, asked: int) -> ScriptCall:
        # Bounded like the claims, so that no concurrency makes one call too big for the script (or the
        # server's patience); what is left is still pending, so the next step is another round trip at once.
        if len(shard.pending) <= MAX_SETTLEMENTS_PER_CYCLE:
            shard.sent, shard.pending = shard.pending, []
        else:
            shard.sent = shard.pending[:MAX_SETTLEMENTS_PER_CYCLE]
            shard.pending = shard.pending[MAX_SETTLEMENTS_PER_CYCLE:]
        shard.asked = asked
        n_topics = len(self._topics)
        keyspace = shard.keyspace
        args: list[Any] = [
            self._lease_ms,
            asked,
            "" if shard.cutoff is None else shard.cutoff,
            keyspace.channel_prefix,
            keyspace.tag,
            shard.rotation,
            # The heads index is kept by every write script, but not by processes of earlier versions: once per
            # safety interval a call rebuilds the entries of our topics, so their timers fire within one interval.
            # Negative: rebuild them now whatever the schedule (a probe found a timeline due that the index is not).
            -self._repair_every_ms if shard.rebuild_heads else self._repair_every_ms,
            b"".join([settlement.encoded for settlement in shard.sent]),
        ]
        if not shard.registered:
            # The call names no topic: the shard keeps the set, registered when the server answers that it does not
            # have it (a first worker of this set, a flushed server, one restarted without persistence, failed over).
            args += [n_topics, *self._topics]
        else:
            args.append("")
        shard.rotation = (shard.rotation + 1) % max(1, n_topics)
        shard.record = record = shard.claim_record
        keys = (keyspace.dead_letters, record, shard.previous_record, keyspace.heads, shard.topic_set)
        return ScriptCall(scripts.CYCLE, keys, tuple(args))

    # -- what happened --------------------------------------------------------------------

    def cycle_succeeded(
        self, reply: list[Any], sent_at: float, received_at: float, shard_index: int | None = None
    ) -> list[Run]:
        """Record a cycle's reply; returns the runs whose handlers the front end must start now.

        `shard_index`: the shard whose call this replies to; by default the only call of the cycle.
        """
        if shard_index is None:
            outstanding = self._outstanding
            shard = outstanding[0] if outstanding else self._shards[0]
            outstanding.clear()
        else:
            shard = self._shards[shard_index]
        now_ms, next_due, stale, examined = int(reply[0]), int(reply[1]), int(reply[2]), int(reply[3])
        shard.clock.observe(now_ms, sent_at, received_at)
        self._gathering_since = None
        if next_due == UNREGISTERED:
            # The shard does not have our topic set: the call did nothing. Send it again at once, with the set.
            shard.registered = False
            shard.pending = shard.sent + shard.pending
            shard.sent = []
            shard.next_due = None
            return []
        shard.registered = True
        shard.rebuild_heads = False
        shard.probe_answers = True
        shard.safety_claim_at = received_at + self._settings.safety_wakeup_seconds
        shard.previous_record = shard.record
        shard.cycle_number += 1
        self._failures = 0
        shard.failures = 0
        shard.sent = []
        shard.replay_due = False
        if stale:
            # Expected when a timer was rescheduled or removed while its handler ran, or its lease ran out.
            logger.debug("%d settlement(s) no longer held their lease and were dropped", stale)
            self.stale_settlements += stale
        shard.next_due = math.inf if next_due < 0 else next_due
        if self._single_pass and shard.cutoff is None:
            # The pass handles what is due by the end of the millisecond it started in: a timer set with no delay
            # just before it is due at the next whole millisecond (scores from now round up), so the pass waits
            # that long for it rather than miss it. Claims never take a timer before its due time.
            shard.cutoff = now_ms + 1
        runs: list[Run] = []
        renew_at_ms = now_ms + self._renew_every_ms
        # The reply's arrival on this shard's clock: when its runs start (their lateness), read once per reply.
        started_ms = shard.clock.server_now_ms(received_at)
        if started_ms is None:
            started_ms = float(now_ms)
        handlers, validators, in_flight, run_ids = self._handlers, self._validators, self._in_flight, self._run_ids
        pending, index_of_shard, trace_mark = shard.pending, shard.index, codec.TRACE_MARK
        claims = wire.claims(reply[4])
        if len(reply) > 5 and reply[5]:
            # Timers the script dead-lettered itself, their payloads gone: each is still one WARNING, and told.
            for buried_index, buried_id in wire.buried(reply[5]):
                topic = handlers[buried_index - 1].topic
                timer_id = buried_id.decode("utf-8", "surrogateescape")
                self._dead_letter_claim(topic, timer_id, 0, b"", started_ms, "payload missing")
        if self._stop_deadline is not None:
            # Claims reach a stopping worker only from a replayed round trip: hand them back at once.
            pending.extend(settle(wire.RELEASE, claim.key) for claim in claims)
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
                self._dead_letter_claim(handler.topic, timer_id, attempts, token, started_ms, reason)
                pending.append(settle(wire.DEAD, key, wire.with_error(reason)))
                continue
            trace = None
            if body and body[0] == trace_mark:  # scheduled under a span (`codec.traced`)
                trace, body = codec.untraced(body)  # noqa: PLW2901
            try:
                payload = validators[topic_index - 1](body)
                if not isinstance(payload, handler.schema):
                    flows.of_schema(handler.schema, payload)  # raises, saying what it validated into
            except STOP_REQUESTS as stop:
                self._stop_while_claiming(stop, shard, runs, claims[index + 1 :], received_at)
                return []
            except BaseException as error:  # anything else a validator raises is this payload's fault
                # Retrying cannot help a payload that no longer fits its schema: dead-letter it, run the others.
                reason = f"payload does not validate against {handler.schema.__name__}: {invalid_payload(error)}"
                self._dead_letter_claim(handler.topic, timer_id, attempts, token, started_ms, reason)
                pending.append(settle(wire.DEAD, key, wire.with_error(reason)))
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
                index_of_shard,
                started_ms,
                trace,
            )
            in_flight[run_id] = run
            runs.append(run)
        if examined < shard.asked and not (shard.cutoff is not None and shard.next_due <= shard.cutoff):
            shard.pass_exhausted = True
        elif shard.cutoff is not None and shard.next_due > shard.cutoff:
            # Nothing of ours is due here by the pass's end. Said apart for a call that asked for no claims (it
            # only settled, its shard's slots given to other shards): it examined nothing, yet the shard is done.
            shard.pass_exhausted = True
        return runs

    def _dead_letter_claim(
        self, topic: str, timer_id: str, attempts: int, token: bytes, started_ms: float, reason: str
    ) -> None:
        """A claimed timer that never runs goes to dead letters: one WARNING, and the observer is told."""
        fields = log_fields(topic, timer_id, attempts, lateness_ms(token.decode(), started_ms))
        logger.warning("timer %r/%r moved to dead letters: %s", topic, timer_id, reason, extra=fields)
        if self.observer is not None:
            self.observer.dead_lettered(topic, timer_id, attempts, reason)

    def calls_answered(self, outcomes: Sequence[object], sent_at: float, received_at: float) -> list[Run]:
        """Each call's outcome, in the order of the cycle's calls: its reply, or the error it met.

        A shard whose call failed backs off alone while the others go on. An error the worker must stop for
        (see `step_failed`) ends it: the next step is `Finished` with that error, and no claim is started.
        """
        outstanding, self._outstanding = self._outstanding, []
        runs: list[Run] = []
        stop_for: BaseException | None = None
        for shard, outcome in zip(outstanding, outcomes):
            if isinstance(outcome, BaseException):
                if not self.step_failed(received_at, outcome, shard.index) and stop_for is None:
                    stop_for = outcome
            else:
                runs.extend(self.cycle_succeeded(outcome, sent_at, received_at, shard.index))  # type: ignore[arg-type]
        outstanding.clear()
        self._outstanding = outstanding
        if stop_for is not None:
            if runs and self._stop_deadline is None:
                # The other shards' claims of this round trip never ran: hand them back (a lease left to run out
                # would count an attempt for a run that never started), then stop with the error. Handlers already
                # running are left to their leases, as when a lone call fails: one more round trip, no grace period.
                for run in runs:
                    self._shards[run.shard].pending.append(settle(wire.RELEASE, run.key))
                self._in_flight.clear()
                self._stop_error = stop_for
                self.request_stop(received_at, grace=0.0)
                return []
            # As a lone call's error would: the claims of handlers still running are due when their leases end.
            self._finished = True
            self._stop_error = stop_for
            return []
        return runs

    def _stop_while_claiming(
        self,
        stop: BaseException,
        shard: ShardState,
        started: list[Run],
        unvalidated: list[wire.Claim],
        now: float,
    ) -> None:
        """A stop request raised in a validator: stop gracefully, then raise it (see `Finished.error`).

        Not the payload's fault (a signal handler may raise it wherever the loop is), so not a dead letter.
        The rest of this reply's claims are handed back, not left to their leases: those would count as
        attempts, and a validator that raises it itself would take its batch-mates to dead letters with it.
        Its own timer keeps its lease, an attempt, so that such a validator ends in dead letters in the end.
        """
        for run in started:
            del self._in_flight[run.run_id]
            shard.pending.append(settle(wire.RELEASE, run.key))
        shard.pending.extend(settle(wire.RELEASE, claim.key) for claim in unvalidated)
        self._stop_error = stop
        self.request_stop(now)

    def maintenance_done(self, imported: int) -> None:
        self._import_failures = 0
        self._layout_check = None
        self._importing = False
        if imported:
            self.rearm()
        job = self._import_job
        if job is not None and job.over:
            self._import_job = None
            if job.imported:
                logger.info("imported %d timer(s) written by an earlier redis-timers version", job.imported)

    def cycle_interrupted(self) -> None:
        """The front end gave up waiting for a cycle's replies (it was cancelled or interrupted).

        Each call may have run: its settlements are pending again, and the next round trip to its shard, even
        while stopping, re-sends it under the same claim record (replaying its claims, which a stopping
        worker then hands back).
        """
        for shard in self._outstanding:
            shard.pending = shard.sent + shard.pending
            shard.sent = []
            shard.next_due = None
            shard.replay_due = True
        self._outstanding.clear()

    def step_failed(self, now: float, error: BaseException, shard_index: int | None = None) -> bool:
        """A step failed: Redis was unreachable or answered with an error.

        `shard_index`: the shard whose call (of a cycle of several) failed alone; by default the whole step.
        A cycle of one call to one of several shards is that shard's alone too: the others back off only when
        their own calls fail. Returns False when the caller should re-raise: in a single pass, and for an
        error that will not pass on its own (a wrong password, an ACL that forbids the worker's keys, a key of
        the wrong type), which someone must fix; waiting for it would only hide it.
        """
        importing, self._importing = self._importing, False
        if importing:
            # The pass starts again at the next import time; what it wrote before the failure is unknown.
            self._import_job = None
            self._import_memory.fingerprint = None
        if shard_index is None and len(self._outstanding) == 1 and len(self._shards) > 1:
            shard_index = self._outstanding[0].index
            self._outstanding.clear()
        if shard_index is None:
            failed, self._outstanding = self._outstanding, []
            if not (importing and len(self._shards) > 1):  # else the shards' calls are not in question
                for shard in self._shards:
                    shard.next_due = None
        else:
            failed = [self._shards[shard_index]]
            failed[0].next_due = None
        for shard in failed:
            shard.pending = [s for s in shard.sent if s.kind != wire.RENEW] + shard.pending
            shard.sent = []
        if shard_index is None:
            failed.clear()
            self._outstanding = failed
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
        if importing and len(self._shards) > 1:
            # The import writes into every shard: one shard's node down must not hold back the others' timers.
            self._import_failures += 1
            pause = cycle_failure_pause(self._import_failures, self._settings, self._rng)
            self._next_import_at = now + pause
            logger.warning(
                "the import of timers written by the original library failed (%s); retrying it in %.2fs",
                codec.describe_error(error),
                pause,
            )
            return True
        if shard_index is not None:
            # This shard's primary is down or its slot is moving: it backs off alone, the others keep firing.
            shard = self._shards[shard_index]
            shard.failures += 1
            pause = cycle_failure_pause(shard.failures, self._settings, self._rng)
            shard.paused_until = now + pause
            logger.warning(
                "Redis unavailable for shard %d (%s); retrying it in %.2fs",
                shard_index,
                codec.describe_error(error),
                pause,
            )
            return True
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
        pending = self._shards[run.shard].pending
        if error is None:
            pending.append(settle(wire.ACK, run.key))
            if self.observer is not None:
                self.observer.fired(run)
            return
        description = codec.describe_error(error)
        limit = self._attempt_limits[run.topic_index - 1]
        if run.attempts >= limit:
            pending.append(settle(wire.DEAD, run.key, wire.with_error(description)))
            log_failure(
                logging.WARNING,
                "timer %r/%r failed %d time(s); moved to dead letters: %s",
                (run.topic, run.timer_id, run.attempts, description),
                error,
                run.log_fields(),
            )
            if self.observer is not None:
                self.observer.dead_lettered(run.topic, run.timer_id, run.attempts, description)
            return
        delay_ms = retry_delay_ms(run.attempts, self._settings, self._rng)
        pending.append(settle(wire.RETRY, run.key, wire.with_error(description, delay_ms)))
        log_failure(
            logging.WARNING,
            "timer %r/%r failed (attempt %d of %d); retrying in %.1fs: %s",
            (run.topic, run.timer_id, run.attempts, limit, delay_ms / 1000, description),
            error,
            run.log_fields(),
        )
        if self.observer is not None:
            self.observer.retried(run, description, delay_ms)

    def notified(self, topic: str, due_ms: int, shard_index: int = 0) -> None:
        """Another process scheduled a timer of `topic` in shard `shard_index` earlier than the head we knew."""
        shard = self._shards[shard_index]
        if shard.next_due is not None and topic in self._topics:
            shard.next_due = min(shard.next_due, due_ms)

    def notified_on(self, channel: str | bytes, data: str | bytes) -> None:
        channel_name = codec.text(channel)
        # A channel is '<shard tag>:wake:<topic>', and no tag holds '}' but at its end.
        prefix_end = channel_name.find("}:wake:") + len("}:wake:")
        shard = self._shard_by_channel_prefix.get(channel_name[:prefix_end])
        if shard is not None:
            try:
                due_ms = int(codec.text(data))
            except ValueError:
                return
            self.notified(channel_name[prefix_end:], due_ms, shard.index)

    @property
    def channels(self) -> list[str]:
        """Every shard's wake-up channel of every topic."""
        return [shard.keyspace.channel(topic) for shard in self._shards for topic in self._topics]

    def rearm(self) -> None:
        """Notifications may have been missed (reconnect): claim from every shard once to learn its next due time."""
        for shard in self._shards:
            shard.next_due = None

    def request_stop(self, now: float, grace: float | None = None) -> None:
        if self._stop_deadline is None:
            self._stop_deadline = now + (self._settings.shutdown_grace_seconds if grace is None else grace)
            self._paused_until = 0.0
            for shard in self._shards:
                shard.paused_until = 0.0

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
