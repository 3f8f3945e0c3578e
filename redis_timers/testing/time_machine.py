"""Time travel for tests, on a real server: move a namespace's due times back instead of moving the clock.

The production scripts decide what is due exactly as they always do, from the server's `TIME`; what moves is
the data. Advancing by `step` moves every stored score of the handled topics back by `step` (one test-only
script per shard, below), so a timer due in 30 minutes is due now, and the worker's own single pass fires it.
The helper keeps the total it moved (`offset`): its virtual now is the server's clock plus the offset, and every
due time it reports is the stored one plus the offset. Between two passes it moves by no more than the gap to
the earliest due time, so that timers set by handlers (a chain of reminders) and retries fire in due order
within one advance.

Why not a clock offset that every script reads: that changes every production script that reads `TIME` and
costs every production call a read; this costs production nothing.
"""

from __future__ import annotations

import dataclasses
import datetime
import random
from collections.abc import Generator
from typing import Any, Generic, TypeVar

import pydantic

from redis_timers import codec, flows, legacy
from redis_timers.engine import Run, WorkerEngine
from redis_timers.errors import TimersError
from redis_timers.ops import Flow, ScriptCall
from redis_timers.records import DeadLetter, TimerInfo
from redis_timers.scripts import LuaScript
from redis_timers.testing.reports import FiredTimer, FireReport, Outcome, Rescheduled, shown
from redis_timers.timing import instant_to_ms, ms_to_datetime
from redis_timers.validation import MAX_ACTIVATION_MS
from redis_timers.wire import DEAD, RETRY

MAX_PASSES = 10_000
"""Most worker passes one advance makes, by default: more means handlers keep setting timers due at once."""

MOVE_TIMELINES = LuaScript(
    name="testing_move_timelines",
    # Test-only: never sent by the library itself. KEYS: the shard's heads index, then timelines; ARGV: ms, then
    # each timeline's topic. Moves every score of the timelines back by ARGV[1] ms (0: reads only), in slices that
    # Lua's unpack can take, and each topic's entry in the heads index with them (a worker finds due topics there,
    # see docs/protocol.md); returns the server's now (ms, rounded down like the library's scripts) and each
    # timeline's members and scores afterwards.
    source="""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local delta = tonumber(ARGV[1])
local heads = KEYS[1]
local out = {tostring(now)}
for i = 2, #KEYS do
  local key = KEYS[i]
  if delta > 0 then
    local flat = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
    local args = {}
    for j = 1, #flat, 2 do
      args[#args + 1] = tonumber(flat[j + 1]) - delta
      args[#args + 1] = flat[j]
      if #args >= 4096 then
        redis.call('ZADD', key, unpack(args))
        args = {}
      end
    end
    if #args > 0 then
      redis.call('ZADD', key, unpack(args))
    end
    local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if head[1] then
      redis.call('ZADD', heads, head[2], ARGV[i])
    else
      redis.call('ZREM', heads, ARGV[i])
    end
  end
  out[#out + 1] = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
end
return out
""",
)


class TimeMachineError(TimersError):
    """A time-travel request the helper refuses (a step back in time, a naive datetime), or one that never ends."""


TimerKey = tuple[str, str]
"""(topic, timer id)."""


@dataclasses.dataclass(frozen=True)
class _Snapshot:
    now_ms: int
    """The server's clock (real), in whole ms."""
    scores: dict[TimerKey, int]
    """Every stored score of the handled topics (real ms: a due time, or while leased the lease's end)."""


@dataclasses.dataclass(frozen=True)
class _Drive:
    """Ask the front end to drive this flow and send back its result."""

    flow: Flow[Any]


@dataclasses.dataclass(frozen=True)
class _Pass:
    """Ask the front end to run one worker pass with this engine (handlers one at a time, to completion)."""

    engine: _RecordingEngine


Request = _Drive | _Pass
T = TypeVar("T")
TimersT = TypeVar("TimersT")


@dataclasses.dataclass(frozen=True)
class _Finished:
    run: Run
    error: str | None
    outcome: Outcome


class _RecordingEngine(WorkerEngine):
    """The production engine, unchanged, that also notes each run and how it was settled."""

    def __init__(self, *, cutoff_ms: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.finished: list[_Finished] = []
        # The pass claims what is due by `cutoff_ms` (real), not by the server's now: the clock moves on while
        # the pass runs, and a single pass would otherwise also take what is due a millisecond or more later
        # (past the window's end, or before the runs due earlier have set or removed timers).
        for shard in self._shards:
            shard.cutoff = cutoff_ms

    def handler_finished(self, run: Run, error: BaseException | None) -> None:
        pending = self._shards[run.shard].pending
        before = len(pending)
        super().handler_finished(run, error)
        kind = pending[-1].kind if len(pending) > before else None
        outcome: Outcome = "dead" if kind == DEAD else "retry" if kind == RETRY else "done"
        self.finished.append(_Finished(run, None if error is None else codec.describe_error(error), outcome))


def _to_ms(moment: datetime.datetime) -> int:
    if not isinstance(moment, datetime.datetime) or moment.tzinfo is None:
        raise TimeMachineError(f"expected a timezone-aware datetime, got {moment!r}")
    return instant_to_ms(moment)


def _due_ms_of(token: str, default: int) -> int:
    """The due time a run's token carries (`<seq>.<n>.<due ms>`, see docs/protocol.md)."""
    last = token.rsplit(".", 1)[-1]
    return int(last) if last.isdigit() else default


class _TimeMachineBase(Generic[TimersT]):
    """What both flavours share: the offset, the flows, and the step-by-step loop as a generator of requests."""

    def __init__(self, timers: TimersT, *, seed: int = 0, max_passes: int = MAX_PASSES) -> None:
        if not isinstance(max_passes, int) or max_passes < 1:
            raise TimeMachineError(f"max_passes must be an int >= 1, got {max_passes!r}")
        self.timers = timers
        self.max_passes = max_passes
        core: Any = timers
        self._core = core
        self.offset_ms = 0
        """How far the helper moved the namespace's due times back so far: virtual now = server now + this."""
        # (server ms at which an offset took effect, that offset): maps a real instant (a dead letter's
        # failed_at) to the virtual one.
        self._history: list[tuple[int, int]] = [(-(2**62), 0)]
        # The virtual failed_at of the dead letters the helper's own passes made, exactly (the offset of their
        # pass); the history above would be ambiguous for one recorded in the millisecond of a later move.
        self._dead_seen: dict[tuple[str, str, datetime.datetime], datetime.datetime] = {}
        # Retry backoff has jitter: drawn from a seeded generator, the same test gives the same due times.
        core._rng = random.Random(seed)

    # -- flows ------------------------------------------------------------------------------

    def _move(self, delta_ms: int) -> Flow[_Snapshot]:
        topics = self._core.registry.topics
        now_ms: int | None = None
        scores: dict[TimerKey, int] = {}
        for keyspace in self._core.namespace.keyspaces:
            reply = yield ScriptCall(
                MOVE_TIMELINES,
                (keyspace.heads, *(keyspace.timeline(topic) for topic in topics)),
                (delta_ms, *topics),
            )
            if now_ms is None:
                now_ms = int(codec.text(reply[0]))
            for topic, flat in zip(topics, reply[1:]):
                for member, score in codec.pairs(flat):
                    scores[(topic, codec.text(member))] = round(float(codec.text(score)))
            if not topics:
                break  # no timelines: one TIME is all there is to read
        assert now_ms is not None
        if delta_ms > 0:
            self.offset_ms += delta_ms
            self._history.append((now_ms, self.offset_ms))
        return _Snapshot(now_ms, scores)

    def _virtual_now_ms(self, snapshot: _Snapshot) -> int:
        """The helper's now: the server's clock rounded up to a whole millisecond, as the library's scripts round
        the now that delays count from, plus the offset. So `advance(d)` just after a `set_timer` with a delay of
        `d` reaches that timer's due time even within the same millisecond."""
        return snapshot.now_ms + 1 + self.offset_ms

    def _virtual(self, real_ms: int) -> datetime.datetime:
        """A stored due time (which the helper moves) as a virtual instant."""
        return ms_to_datetime(real_ms + self.offset_ms)

    def _virtual_event(self, moment: datetime.datetime) -> datetime.datetime:
        """An instant the server recorded (which stays put) as a virtual one: plus the offset in force then."""
        real_ms = instant_to_ms(moment)
        offset = max((entry for entry in self._history if entry[0] <= real_ms), default=(0, 0))[1]
        return ms_to_datetime(real_ms + offset)

    def _virtual_dead_letter(self, dead: DeadLetter) -> DeadLetter:
        seen = self._dead_seen.get((dead.topic, dead.timer_id, dead.failed_at))
        return dataclasses.replace(dead, failed_at=self._virtual_event(dead.failed_at) if seen is None else seen)

    def _now_flow(self) -> Flow[datetime.datetime]:
        snapshot = yield from self._move(0)
        return ms_to_datetime(self._virtual_now_ms(snapshot))

    def _scheduled_flow(self, topic: str | None, timer_id: str | None) -> Flow[list[TimerInfo]]:
        snapshot = yield from self._move(0)
        keys = sorted(
            (score, key)
            for key, score in snapshot.scores.items()
            if (topic is None or key[0] == topic) and (timer_id is None or key[1] == timer_id)
        )
        found: list[TimerInfo] = []
        for _, (key_topic, key_id) in keys:
            info = yield from flows.get_timer(self._core.namespace, self._core.registry, key_topic, key_id)
            if info is not None:
                found.append(
                    dataclasses.replace(
                        info,
                        due_at=ms_to_datetime(instant_to_ms(info.due_at) + self.offset_ms),
                        lease_expires_at=None
                        if info.lease_expires_at is None
                        else ms_to_datetime(instant_to_ms(info.lease_expires_at) + self.offset_ms),
                    )
                )
        return sorted(found, key=lambda info: (info.due_at, info.topic, info.timer_id))

    def _dead_letters_flow(self) -> Flow[list[DeadLetter]]:
        dead = yield from flows.dead_letters(self._core.namespace)
        return sorted((self._virtual_dead_letter(item) for item in dead), key=lambda d: (d.failed_at, d.topic))

    # -- the loop ---------------------------------------------------------------------------

    def _engine(self, cutoff_ms: int) -> _RecordingEngine:
        core = self._core
        return _RecordingEngine(
            cutoff_ms=cutoff_ms,
            namespace=core.namespace,
            registry=core.registry,
            settings=core.settings,
            rng=core._rng,
            single_pass=True,
            concurrency=1,  # one handler at a time, in claim order
            layout_check=None if core._layout_checked else core._layout_flow,
        )

    def _fire(
        self, until: datetime.datetime | None, step: datetime.timedelta | None, *, by_step: bool
    ) -> Generator[Request, Any, FireReport]:
        """`advance(step)` when `by_step` (a None step is refused as any other non-timedelta), else `fire_due`."""
        ran: list[FiredTimer] = []
        rescheduled: list[Rescheduled] = []
        dead_lettered: list[DeadLetter] = []
        core = self._core
        if core.settings.legacy_import:
            # What the original library wrote waits on its own keys, which a pass imports first: without this,
            # the loop below, which sees only the new keys, would never make a pass for them.
            yield _Drive(legacy.import_legacy(core.namespace, core.registry, core.settings))
        snapshot: _Snapshot = yield _Drive(self._move(0))
        start_ms = self._virtual_now_ms(snapshot)
        if by_step:
            if not isinstance(step, datetime.timedelta) or step < datetime.timedelta(0):
                raise TimeMachineError(f"advance() takes a timedelta of zero or more, got {step!r}")
            target_ms = start_ms + step // datetime.timedelta(milliseconds=1)
        else:
            target_ms = start_ms if until is None else _to_ms(until)
            if target_ms < start_ms:
                raise TimeMachineError(
                    f"cannot go back in time: {until!r} is before the helper's now, {ms_to_datetime(start_ms)!r}"
                )
        if target_ms - start_ms > MAX_ACTIVATION_MS:
            # Past it the virtual instants soon leave what a datetime holds; no timer is set that far out anyway.
            raise TimeMachineError(
                f"cannot advance by {target_ms - start_ms} ms at once: the most is {MAX_ACTIVATION_MS} ms"
                " (100 years, as for a timer's delay)"
            )
        for _ in range(self.max_passes):
            earliest = min(snapshot.scores.values(), default=None)
            virtual_now = self._virtual_now_ms(snapshot)
            if earliest is None or earliest + self.offset_ms > target_ms:
                if target_ms > virtual_now:
                    yield _Drive(self._move(target_ms - virtual_now))
                return FireReport(
                    ms_to_datetime(start_ms),
                    ms_to_datetime(max(target_ms, virtual_now)),
                    ran,
                    rescheduled,
                    dead_lettered,
                )
            if earliest > snapshot.now_ms:
                # Only as far as the earliest due time: what its handler sets, and the retries, come in due order.
                snapshot = yield _Drive(self._move(earliest - snapshot.now_ms))
            fired_at = self._virtual(snapshot.now_ms)
            dead_before = yield _Drive(flows.dead_letters(self._core.namespace))
            # One due time per pass, the earliest: what its handlers do comes before what is due after it.
            engine = self._engine(min(snapshot.scores.values()))
            yield _Pass(engine)
            after: _Snapshot = yield _Drive(self._move(0))
            retried = set()
            for finished in engine.finished:
                run = finished.run
                due_ms = _due_ms_of(run.token, snapshot.now_ms)
                ran.append(
                    FiredTimer(
                        run.topic,
                        run.timer_id,
                        run.payload,
                        self._virtual(due_ms),
                        fired_at,
                        run.attempts,
                        finished.error,
                        finished.outcome,
                    )
                )
                if finished.outcome == "retry":
                    retried.add((run.topic, run.timer_id))
            changed = [(score, key) for key, score in after.scores.items() if snapshot.scores.get(key) != score]
            for score, (topic, timer_id) in sorted(changed):
                rescheduled.append(Rescheduled(topic, timer_id, self._virtual(score), (topic, timer_id) in retried))
            dead_after = yield _Drive(flows.dead_letters(self._core.namespace))
            known = {(dead.topic, dead.timer_id, dead.failed_at) for dead in dead_before}
            for dead in dead_after:
                key = (dead.topic, dead.timer_id, dead.failed_at)
                if key not in known:
                    self._dead_seen[key] = ms_to_datetime(instant_to_ms(dead.failed_at) + self.offset_ms)
                    dead_lettered.append(self._virtual_dead_letter(dead))
            snapshot = after
        raise TimeMachineError(
            f"still firing after {self.max_passes} worker passes: do handlers keep setting timers that are due at once?"
        )

    # -- shared helpers -------------------------------------------------------------------

    def activate_at(self, moment: datetime.datetime) -> datetime.datetime:
        """The `activate_at` to pass to `set_timer` for a timer due at the virtual instant `moment`.

        The server's clock does not move: an absolute due time is stored as it is given, so one meant on the
        helper's clock must be moved back by the offset first (`moment` minus `offset`).
        """
        return ms_to_datetime(_to_ms(moment) - self.offset_ms)

    def _check_scheduled(
        self,
        found: list[TimerInfo],
        topic: str,
        timer_id: str,
        due_at: datetime.datetime | None,
        payload: object,
        everything: list[TimerInfo],
    ) -> TimerInfo:
        described = "\n".join(f"  {_describe(info)}" for info in everything) or "  (nothing)"
        if not found:
            raise AssertionError(
                f"expected timer {topic!r}/{timer_id!r} to be scheduled, but it is not. Scheduled for {topic!r}:\n"
                f"{described}"
            )
        info = found[0]
        if due_at is not None and info.due_at != due_at:
            raise AssertionError(
                f"timer {topic!r}/{timer_id!r} is due at {info.due_at.isoformat()}, expected {due_at.isoformat()}"
                f" ({_signed(info.due_at - due_at)})"
            )
        if payload is not None and not _payload_matches(info.payload, payload):
            raise AssertionError(
                f"timer {topic!r}/{timer_id!r} has payload {info.payload.model_dump_json()}, expected"
                f" {_as_json(payload)}"
            )
        return info


def _describe(info: TimerInfo) -> str:
    state = " (running)" if info.running else ""
    error = "" if info.last_error is None else f", last error {info.last_error!r}"
    return (
        f"{shown(info.topic, info.timer_id)} due {info.due_at.isoformat()}, attempts {info.attempts}{state}{error}:"
        f" {info.payload.model_dump_json()}"
    )


def _signed(delta: datetime.timedelta) -> str:
    return f"{delta} late" if delta >= datetime.timedelta(0) else f"{-delta} early"


def _payload_matches(actual: pydantic.BaseModel, expected: object) -> bool:
    if isinstance(expected, pydantic.BaseModel):
        return actual == expected
    if isinstance(expected, str):
        return actual.model_dump(mode="json") == type(actual).model_validate_json(expected).model_dump(mode="json")
    return bool(actual.model_dump(mode="json") == expected)


def _as_json(payload: object) -> str:
    if isinstance(payload, pydantic.BaseModel):
        return payload.model_dump_json()
    return payload if isinstance(payload, str) else repr(payload)


def _dead_letter_check(
    dead: list[DeadLetter], topic: str, timer_id: str, error: str | None, attempts: int | None
) -> DeadLetter:
    for item in dead:
        if (item.topic, item.timer_id) != (topic, timer_id):
            continue
        if error is not None and error not in item.error:
            raise AssertionError(
                f"dead letter {topic!r}/{timer_id!r} failed with {item.error!r}, which does not contain {error!r}"
            )
        if attempts is not None and item.attempts != attempts:
            raise AssertionError(
                f"dead letter {topic!r}/{timer_id!r} has {item.attempts} attempt(s), expected {attempts}"
            )
        return item
    listed = "\n".join(f"  {shown(item.topic, item.timer_id)}: {item.error}" for item in dead) or "  (none)"
    raise AssertionError(f"expected a dead letter {topic!r}/{timer_id!r}; the dead letters are:\n{listed}")


def _drive_sync(core: Any, flow: Flow[T]) -> T:
    result: T = core._driver.drive(flow)
    return result


class TimeMachine(_TimeMachineBase[Any]):
    """Time travel for a `redis_timers.sync.Timers`: `advance`, `fire_due`, and what is scheduled, virtually.

    It must be the only worker of its namespace while it is used (no `run_forever` beside it).
    """

    def _run(self, requests: Generator[Request, Any, T]) -> T:
        reply: Any = None
        while True:
            try:
                request = requests.send(reply)
            except StopIteration as done:
                result: T = done.value
                return result
            if isinstance(request, _Pass):
                self._pass(request.engine)
                reply = None
            else:
                reply = _drive_sync(self._core, request.flow)

    def _pass(self, engine: _RecordingEngine) -> None:
        from redis_timers.sync.worker import SyncWorker

        core = self._core
        SyncWorker(driver=core._driver, engine=engine, context=core.context, settings=core.settings, listen=False).run()

    def now(self) -> datetime.datetime:
        """The helper's virtual now: the server's clock plus how far the helper has moved time."""
        return _drive_sync(self._core, self._now_flow())

    def advance(self, step: datetime.timedelta) -> FireReport:
        """Move virtual time forward by `step`, firing everything due up to then, in due order; see `fire_due`."""
        return self._run(self._fire(None, step, by_step=True))

    def fire_due(self, until: datetime.datetime | None = None) -> FireReport:
        """Fire everything due up to the virtual instant `until` (default: now), in due order, handlers inline.

        Timers that the handlers set, and retries, fire too when they are due by `until`. Returns what ran.
        """
        return self._run(self._fire(until, None, by_step=False))

    def scheduled(self, topic: str | None = None, timer_id: str | None = None) -> list[TimerInfo]:
        """The timers of the handled topics (of `topic`, with `timer_id`), earliest first; due times virtual."""
        return _drive_sync(self._core, self._scheduled_flow(topic, timer_id))

    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, with `failed_at` virtual."""
        return _drive_sync(self._core, self._dead_letters_flow())

    def assert_scheduled(
        self, topic: str, timer_id: str, *, due_at: datetime.datetime | None = None, payload: object = None
    ) -> TimerInfo:
        """Fail, saying what is scheduled instead, unless the timer is scheduled (due then, with that payload).

        `payload`: a model, a dict of its JSON form, or its JSON text. Returns the timer (due time virtual).
        """
        return self._check_scheduled(
            self.scheduled(topic, timer_id), topic, timer_id, due_at, payload, self.scheduled(topic)
        )

    def assert_not_scheduled(self, topic: str, timer_id: str) -> None:
        found = self.scheduled(topic, timer_id)
        if found:
            raise AssertionError(
                f"expected no timer {topic!r}/{timer_id!r}, but one is scheduled: {_describe(found[0])}"
            )

    def assert_dead_letter(
        self, topic: str, timer_id: str, *, error: str | None = None, attempts: int | None = None
    ) -> DeadLetter:
        """Fail, listing the dead letters, unless `topic`/`timer_id` is one (whose error contains `error`)."""
        return _dead_letter_check(self.dead_letters(), topic, timer_id, error, attempts)


class AsyncTimeMachine(_TimeMachineBase[Any]):
    """Time travel for a `redis_timers.Timers` (asyncio); the same methods as `TimeMachine`, as coroutines."""

    async def _run(self, requests: Generator[Request, Any, T]) -> T:
        reply: Any = None
        while True:
            try:
                request = requests.send(reply)
            except StopIteration as done:
                result: T = done.value
                return result
            if isinstance(request, _Pass):
                await self._pass(request.engine)
                reply = None
            else:
                reply = await self._core._driver.drive(request.flow)

    async def _pass(self, engine: _RecordingEngine) -> None:
        from redis_timers.aio.worker import AsyncWorker

        core = self._core
        worker = AsyncWorker(
            driver=core._driver, engine=engine, context=core.context, settings=core.settings, listen=False
        )
        await worker.run()

    async def now(self) -> datetime.datetime:
        result: datetime.datetime = await self._core._driver.drive(self._now_flow())
        return result

    async def advance(self, step: datetime.timedelta) -> FireReport:
        return await self._run(self._fire(None, step, by_step=True))

    async def fire_due(self, until: datetime.datetime | None = None) -> FireReport:
        return await self._run(self._fire(until, None, by_step=False))

    async def scheduled(self, topic: str | None = None, timer_id: str | None = None) -> list[TimerInfo]:
        result: list[TimerInfo] = await self._core._driver.drive(self._scheduled_flow(topic, timer_id))
        return result

    async def dead_letters(self) -> list[DeadLetter]:
        result: list[DeadLetter] = await self._core._driver.drive(self._dead_letters_flow())
        return result

    async def assert_scheduled(
        self, topic: str, timer_id: str, *, due_at: datetime.datetime | None = None, payload: object = None
    ) -> TimerInfo:
        return self._check_scheduled(
            await self.scheduled(topic, timer_id), topic, timer_id, due_at, payload, await self.scheduled(topic)
        )

    async def assert_not_scheduled(self, topic: str, timer_id: str) -> None:
        found = await self.scheduled(topic, timer_id)
        if found:
            raise AssertionError(
                f"expected no timer {topic!r}/{timer_id!r}, but one is scheduled: {_describe(found[0])}"
            )

    async def assert_dead_letter(
        self, topic: str, timer_id: str, *, error: str | None = None, attempts: int | None = None
    ) -> DeadLetter:
        return _dead_letter_check(await self.dead_letters(), topic, timer_id, error, attempts)
