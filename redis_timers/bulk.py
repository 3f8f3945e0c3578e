"""Many timers set or removed in one call: every timer checked first, then one script call per batch.

A batch holds the timers of one shard (its keys share one hash tag, so one script can touch them all, on a
cluster too), at most `MAX_BATCH_TIMERS` of them and about `MAX_BATCH_BYTES` of arguments, so that no script
call holds the server for long. The front ends send every batch in one pipeline (`execute_each`) and read the
replies back through `SetBatches.results` / `RemoveBatches.results`.
"""

from __future__ import annotations

import dataclasses
import datetime
import operator
from collections.abc import Iterable
from typing import Any, Literal, NamedTuple, cast

import pydantic

from redis_timers import scripts
from redis_timers.errors import STOP_REQUESTS, InvalidTimerError, TimersError
from redis_timers.flows import check_mode, computed_fields, timer_write
from redis_timers.keys import Keyspace, Namespace
from redis_timers.ops import Arg, ScriptCall
from redis_timers.registry import HandlerRegistry
from redis_timers.timing import delay_to_ms, instant_to_ms, ms_to_datetime
from redis_timers.validation import MAX_TIMER_ID_BYTES, check_timer_id

SetMode = Literal["replace", "keep", "earlier", "later"]

MAX_BATCH_TIMERS = 500
MAX_BATCH_BYTES = 1_000_000
"""A batch is closed once its payloads and ids reach this many bytes (a bigger payload is a batch of its own)."""


class TimerSpec(NamedTuple):
    """One timer for `set_timers`: the arguments of `set_timer`, with exactly one of the last two."""

    topic: str
    timer_id: str
    payload: pydantic.BaseModel
    activation_period: datetime.timedelta | None = None
    activate_at: datetime.datetime | None = None


class SetResult(NamedTuple):
    """What `set_timers` (or a conditional `set_timer`) did with one timer."""

    topic: str
    timer_id: str
    due_at: datetime.datetime
    """When the timer is due now: the new due time if `written`, else the existing timer's."""
    written: bool
    """False when the mode kept the existing timer (due time and payload untouched)."""


def located(error: TimersError, index: int) -> TimersError:
    """`error` saying which timer of the call it is about, when its class takes a plain message."""
    if any("__init__" in vars(cls) for cls in type(error).__mro__ if issubclass(cls, TimersError)):
        return error  # its message already names what it is about (HandlerNotFoundError names the topic)
    return type(error)(f"timer {index} of the call: {error}")


@dataclasses.dataclass
class _Topic:
    """One topic's timers in one batch, in the call's order: their places in the call and their arguments."""

    positions: list[int] = dataclasses.field(default_factory=list)
    args: list[Arg] = dataclasses.field(default_factory=list)
    """Per timer, what its script reads of it (`set_timers.lua`: id, payload, when; `remove_timers.lua`: id)."""


@dataclasses.dataclass
class _Batch:
    """One script call's timers: one shard's, grouped by topic (each topic's in the call's order)."""

    keyspace: Keyspace
    topics: dict[str, _Topic] = dataclasses.field(default_factory=dict)
    count: int = 0
    size: int = 0

    def keys(self) -> tuple[str, ...]:
        """Each topic's keys, then the shard's heads index (which the scripts keep up to date)."""
        return (*(key for topic in self.topics for key in self.keyspace.topic_keys(topic)), self.keyspace.heads)

    def positions(self) -> list[int]:
        """Each timer's index in the call, in the order the script sees the timers."""
        return [position for timers in self.topics.values() for position in timers.positions]

    def timer_args(self, channels: bool) -> tuple[Arg, ...]:
        """Per topic: its channel (`channels`), its number of timers, and each timer's arguments."""
        args: list[Arg] = []
        for topic, timers in self.topics.items():
            if channels:
                args.append(self.keyspace.channel(topic))
            args.append(len(timers.positions))
            args += timers.args
        return tuple(args)


class _Batcher:
    """Timers, in the call's order, grouped into each shard's batches (in order too)."""

    def __init__(self) -> None:
        self.open: dict[int, _Batch] = {}
        self.closed: list[_Batch] = []
        self._last: tuple[Keyspace, str, _Batch, _Topic] | None = None

    def topic_for(self, keyspace: Keyspace, topic: str, size: int) -> _Topic:
        """Where the next timer of `topic` in `keyspace`'s shard goes, `size` bytes of it counted."""
        # Most calls give one topic's timers in a row, on one shard: the last timer's place, if the batch has room.
        last = self._last
        if last is not None and last[0] is keyspace and last[1] == topic:
            batch = last[2]
            if batch.count < MAX_BATCH_TIMERS and batch.size + size <= MAX_BATCH_BYTES:
                batch.count += 1
                batch.size += size
                return last[3]
        timers = self._place(keyspace, topic, size)
        self._last = (keyspace, topic, self.open[keyspace.shard], timers)
        return timers

    def _place(self, keyspace: Keyspace, topic: str, size: int) -> _Topic:
        batch = self.open.get(keyspace.shard)
        if batch is None or batch.count >= MAX_BATCH_TIMERS or batch.size + size > MAX_BATCH_BYTES:
            if batch is not None:
                self.closed.append(batch)
            batch = self.open[keyspace.shard] = _Batch(keyspace)
        batch.count += 1
        batch.size += size
        timers = batch.topics.get(topic)
        if timers is None:
            timers = batch.topics[topic] = _Topic()
        return timers

    def batches(self) -> list[_Batch]:
        return [*self.closed, *self.open.values()]


def _records(items: Iterable[Any], record: type[tuple[Any, ...]], fields: str) -> list[Any]:
    """`items` as `record`s; anything else is refused before anything is written."""
    records = []
    for index, item in enumerate(items):
        if isinstance(item, record):
            records.append(item)
            continue
        try:
            if not isinstance(item, (tuple, list)):
                raise TypeError
            records.append(record(*item))
        except TypeError:
            raise InvalidTimerError(f"timer {index} of the call is not a ({fields}) record: {item!r}") from None
    return records


@dataclasses.dataclass(frozen=True)
class SetBatches:
    calls: list[ScriptCall]
    positions: list[list[int]]
    """Per call, each timer's index in the call, in the order its script sees them."""
    whens: list[list[int]]
    """Per call, each timer's `when` as sent: a due time in ms, or -1 - delay."""
    specs: list[TimerSpec]

    def results(self, replies: list[Any]) -> list[SetResult]:
        """Each timer's result, in the call's order; raises the first failed batch's error (the others stand).

        A script replies with its now (delays count from it) and the timers it kept, so that a batch of writes
        costs a reply of one number.
        """
        failed = next((reply for reply in replies if isinstance(reply, BaseException)), None)
        if failed is not None:
            raise failed
        due: list[int] = [0] * len(self.specs)
        written = [True] * len(self.specs)
        for positions, whens, reply in zip(self.positions, self.whens, replies):
            start = int(reply[0]) - 1  # a delay's `when` is -1 - delay
            for position, when in zip(positions, whens):
                due[position] = when if when >= 0 else start - when
            for n in range(1, len(reply), 2):
                position = positions[int(reply[n]) - 1]
                due[position], written[position] = int(reply[n + 1]), False
        # Timers set with one delay in one batch share their due time: each distinct one is converted once. The
        # results are built by `map` over C iterators: a Python loop of a million constructor calls costs more.
        moments = {due_ms: ms_to_datetime(due_ms) for due_ms in set(due)}
        return list(
            map(
                SetResult._make,
                zip(map(_TOPIC, self.specs), map(_TIMER_ID, self.specs), map(moments.__getitem__, due), written),
            )
        )


_TOPIC, _TIMER_ID = operator.itemgetter(0), operator.itemgetter(1)


FAST_ID_CHARS = MAX_TIMER_ID_BYTES // 4
"""An ASCII id of at most this many characters is valid without encoding it (no character takes over 4 bytes)."""


def set_batches(namespace: Namespace, registry: HandlerRegistry, items: Iterable[TimerSpec], mode: str) -> SetBatches:
    """Every timer checked as `set_timer` checks it, then batched: bad input raises before anything is sent.

    A call may hold a million timers, so each is checked inline, with a topic's schema, serializer and
    validator looked up once per call, when it is of the usual types: a str topic and id, a payload of
    exactly its topic's schema, a `timedelta` or a `datetime`. Any other timer, and any timer a check
    refuses, goes through `flows.timer_write` (`set_timer`'s checks), which raises the error `set_timer`
    would, in the same order of checks.
    """
    check_mode(mode)
    specs: list[TimerSpec] = _records(items, TimerSpec, "topic, timer_id, payload, activation_period, activate_at")
    batcher = _Batcher()
    one_shard = namespace.keyspaces[0] if namespace.shards == 1 else None
    schemas: dict[str, tuple[type[pydantic.BaseModel], Any, Any, set[str] | None]] = {}
    delays: dict[datetime.timedelta, int] = {}
    """Each delay's `when`: the timers of a call often share one."""
    for index, (topic, timer_id, payload, activation_period, activate_at) in enumerate(specs):
        try:
            body = None
            known = schemas.get(topic) if type(topic) is str else None
            if known is not None and type(payload) is known[0]:
                _, to_json, validate_json, exclude = known
                if type(timer_id) is not str or not 0 < len(timer_id) <= FAST_ID_CHARS or not timer_id.isascii():
                    check_timer_id(timer_id)
                if activate_at is None and type(activation_period) is datetime.timedelta:
                    when = delays.get(activation_period, 0)
                    if not when:  # a `when` for a delay is below 0
                        when = delays[activation_period] = -1 - delay_to_ms(activation_period)
                elif activation_period is None and type(activate_at) is datetime.datetime:
                    when = instant_to_ms(activate_at)
                else:
                    known = None  # both or neither: `timer_write` says which
                if known is not None:
                    # As `flows.payload_json`, which says why it must validate back; it raises the error if any.
                    try:
                        body = to_json(payload, by_alias=True, exclude=exclude)
                        if type(validate_json(body)) is not type(payload):
                            body = None
                    except STOP_REQUESTS:
                        raise
                    except BaseException:
                        body = None
            if body is None:
                keyspace, body, kind, milliseconds = timer_write(
                    namespace, registry, topic, timer_id, payload, activation_period, activate_at
                )
                when = milliseconds if kind == "at" else -1 - milliseconds  # one argument where set_timer sends two
                if type(topic) is str and topic not in schemas:
                    schema: type[pydantic.BaseModel] = registry.find(topic).schema
                    schemas[topic] = (
                        schema,
                        schema.__pydantic_serializer__.to_json,
                        schema.__pydantic_validator__.validate_json,
                        computed_fields(schema),
                    )
            else:
                keyspace = one_shard or namespace.keyspace_for(topic, timer_id)
        except TimersError as error:
            raise located(error, index) from error
        timers = batcher.topic_for(keyspace, topic, len(body) + len(timer_id))
        timers.positions.append(index)
        timers.args += (timer_id, body, when)
    batches = batcher.batches()
    calls = [
        ScriptCall(scripts.SET_TIMERS, batch.keys(), (mode, *batch.timer_args(channels=True))) for batch in batches
    ]
    # Each timer's `when`, the last of its three arguments: an int (`Arg` is wider).
    whens = [
        cast(list[int], [when for timers in batch.topics.values() for when in timers.args[2::3]]) for batch in batches
    ]
    return SetBatches(calls, [batch.positions() for batch in batches], whens, specs)


class TimerRef(NamedTuple):
    """One timer for `remove_timers`."""

    topic: str
    timer_id: str


@dataclasses.dataclass(frozen=True)
class RemoveBatches:
    calls: list[ScriptCall]
    positions: list[list[int]]
    count: int

    def results(self, replies: list[Any]) -> list[bool]:
        """Per timer, in the call's order, whether one was removed; raises the first failed batch's error."""
        failed = next((reply for reply in replies if isinstance(reply, BaseException)), None)
        if failed is not None:
            raise failed
        removed = [False] * self.count
        for positions, reply in zip(self.positions, replies):
            for position, one in zip(positions, reply):
                removed[position] = bool(int(one))
        return removed


def remove_batches(namespace: Namespace, registry: HandlerRegistry, items: Iterable[TimerRef]) -> RemoveBatches:
    refs: list[TimerRef] = _records(items, TimerRef, "topic, timer_id")
    batcher = _Batcher()
    for index, ref in enumerate(refs):
        try:
            registry.find(ref.topic)
            check_timer_id(ref.timer_id)
        except TimersError as error:
            raise located(error, index) from error
        timers = batcher.topic_for(namespace.keyspace_for(ref.topic, ref.timer_id), ref.topic, len(ref.timer_id))
        timers.positions.append(index)
        timers.args.append(ref.timer_id)
    batches = batcher.batches()
    calls = [ScriptCall(scripts.REMOVE_TIMERS, batch.keys(), batch.timer_args(channels=False)) for batch in batches]
    return RemoveBatches(calls, [batch.positions() for batch in batches], len(refs))
