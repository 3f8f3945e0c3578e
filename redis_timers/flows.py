"""Every public operation, written once as a generator of `Op`s (see `ops.py`).

Each flow validates its input before its first yield, so bad input raises before
anything reaches Redis.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import pydantic

from redis_timers import codec, scripts
from redis_timers import durability as aof
from redis_timers.durability import AofSync
from redis_timers.errors import (
    STOP_REQUESTS,
    ActivationError,
    InvalidTopicError,
    PayloadTypeError,
    SetModeError,
    StoredPayloadError,
    UnstorablePayloadError,
)
from redis_timers.keys import Keyspace, Namespace, dead_letter_field
from redis_timers.ops import Command, Flow, NodeOf, OneConnection, ScriptCall
from redis_timers.records import DeadLetter, TimerInfo
from redis_timers.registry import HandlerRegistry
from redis_timers.settings import TimersSettings
from redis_timers.timing import delay_to_ms, instant_to_ms, ms_to_datetime
from redis_timers.validation import check_timer_id, check_topic


def set_timer(
    namespace: Namespace,
    registry: HandlerRegistry,
    topic: str,
    timer_id: str,
    payload: pydantic.BaseModel,
    activation_period: Any,
    activate_at: Any,
) -> Flow[int]:
    due_ms, _ = set_reply(
        (yield set_timer_call(namespace, registry, topic, timer_id, payload, activation_period, activate_at))
    )
    return due_ms


def set_timer_call(
    namespace: Namespace,
    registry: HandlerRegistry,
    topic: str,
    timer_id: str,
    payload: pydantic.BaseModel,
    activation_period: Any,
    activate_at: Any,
    mode: str = "replace",
) -> ScriptCall:
    """`set_timer`'s one script call, once every check passed; its reply is the due time in server ms (with a
    `mode` other than replace, `[due ms, 1 if written else 0]`: see `set_reply`).

    The front ends call this directly rather than drive the flow: `set_timer` is the hot path of a web
    application, and a generator round costs as much as a check. The call goes to the timer's shard. The
    default mode sends exactly what it always sent.
    """
    check_mode(mode)
    keyspace, body, when, milliseconds = timer_write(
        namespace, registry, topic, timer_id, payload, activation_period, activate_at
    )
    args: tuple[str | int | bytes, ...] = (timer_id, body, when, milliseconds, keyspace.channel(topic))
    return ScriptCall(scripts.SET_TIMER, keyspace.write_keys(topic), args if mode == "replace" else (*args, mode))


SET_MODES = ("replace", "keep", "earlier", "later")
"""What `set_timer` does when the timer exists (see README "Bulk and conditional scheduling")."""


def check_mode(mode: object) -> None:
    if mode not in SET_MODES:
        raise SetModeError(f"mode must be one of {', '.join(map(repr, SET_MODES))}, got {mode!r}")


def set_reply(reply: Any) -> tuple[int, bool]:
    """A set script's reply, as (due ms, whether it was written rather than the existing timer kept)."""
    if isinstance(reply, list):
        due, written = reply
        return int(due), bool(int(written))
    return int(reply), True


def timer_write(
    namespace: Namespace,
    registry: HandlerRegistry,
    topic: str,
    timer_id: str,
    payload: pydantic.BaseModel,
    activation_period: Any,
    activate_at: Any,
) -> tuple[Keyspace, bytes, str, int]:
    """Every check of one timer to set: its shard's keys, stored payload, 'in' or 'at', and milliseconds."""
    handler = registry.find(topic)
    check_timer_id(timer_id)
    if not isinstance(payload, handler.schema):
        raise PayloadTypeError(
            f"payload for topic {topic!r} must be a {handler.schema.__name__}, got {type(payload).__name__}"
        )
    if (activation_period is None) == (activate_at is None):
        raise ActivationError("give exactly one of activation_period and activate_at")
    if activate_at is None:
        when, milliseconds = "in", delay_to_ms(activation_period)
    else:
        when, milliseconds = "at", instant_to_ms(activate_at)
    body = payload_json(handler.schema, payload)
    return namespace.keyspace_for(topic, timer_id), body, when, milliseconds  # once the id is a valid string


@functools.cache
def computed_fields(schema: type[pydantic.BaseModel]) -> set[str] | None:
    """Per registered schema, once: `set_timer` asks on every call."""
    return set(schema.model_computed_fields) or None


def of_schema(schema: type[pydantic.BaseModel], validated: object) -> pydantic.BaseModel:
    """What validating a payload returned, if it is of the schema: a wrap or model validator can return anything."""
    if not isinstance(validated, schema):
        raise TypeError(f"validated into {codec.type_name(type(validated))}, not {schema.__name__}")
    return validated


def payload_json(schema: type[pydantic.BaseModel], payload: pydantic.BaseModel) -> bytes:
    """The stored form of `payload`; it must validate back into `schema`, or the timer could never fire."""
    # By alias, since validation reads aliases; without computed fields, which validation may forbid. The
    # serializer and validator are called directly: `model_dump_json` and `model_validate_json` wrap them
    # in as much Python again, on every `set_timer`.
    # Serializers and validators are the schema's own code and may raise anything (pydantic wraps only
    # ValueError and AssertionError); the caller gets one library error either way, before anything is written.
    try:
        body: bytes = payload.__pydantic_serializer__.to_json(payload, by_alias=True, exclude=computed_fields(schema))
    except STOP_REQUESTS:
        raise
    except BaseException as error:
        raise UnstorablePayloadError(
            f"payload of type {type(payload).__name__} cannot be serialized to JSON: {codec.describe_error(error)}"
        ) from error
    try:
        of_schema(schema, schema.__pydantic_validator__.validate_json(body))
    except STOP_REQUESTS:
        raise
    except BaseException as error:
        raise UnstorablePayloadError(
            f"payload of type {type(payload).__name__} does not survive a JSON round trip through "
            f"{schema.__name__}, so its handler could never receive it: {codec.describe_error(error)}"
        ) from error
    return body


def write(
    call: ScriptCall,
    durability: TimersSettings | None = None,
    read_timeout_seconds: float | None = None,
    learned: aof.Learned | None = None,
) -> Flow[Any]:
    """The reply of a write; with `durability` (a durable write's settings), once `durable_replicas` replicas
    confirmed it, and, where its primary has AOF on, once it was synced to the append-only files (see
    `durability`), else `TimersDurabilityError` (the write stands).

    `WAIT` and `WAITAOF` count only the earlier writes of their own connection (and never block inside a
    script), so they follow the script call on the same connection. `learned` holds what each node's replies
    said about its AOF (`durability.Learned`), by node name: the caller keeps it from one write to the next.
    `read_timeout_seconds` is the client's socket timeout (see `durability.steps_ms`).
    """
    if durability is None:
        return (yield call)
    required = durability.durable_replicas
    timeout = durability.durable_timeout_seconds
    node = ""
    sync = AofSync.NONE
    if durability.durable_fsync:
        node = yield NodeOf(call)  # answered by the driver from its slot map, without a round trip
        sync = AofSync.UNKNOWN if learned is None else learned.recall(node)
    waits = aof.waits(sync, required, timeout, read_timeout_seconds)
    reply, *replies = yield OneConnection((call, *waits))
    if isinstance(reply, BaseException):
        raise reply
    now, failure = aof.judge(sync, waits, replies, required, timeout)
    if learned is not None and durability.durable_fsync:
        learned.learn(node, sync, now)
    if failure is not None:
        raise failure
    return reply


def set_timer_durably(
    call: ScriptCall,
    settings: TimersSettings,
    read_timeout_seconds: float | None = None,
    learned: aof.Learned | None = None,
) -> Flow[int]:
    """`set_timer(..., durable=True)`: its one script call (`set_timer_call`), then the wait for replicas."""
    due_ms, _ = set_reply((yield from write(call, settings, read_timeout_seconds, learned)))
    return due_ms


def remove_timer(
    namespace: Namespace,
    registry: HandlerRegistry,
    topic: str,
    timer_id: str,
    *,
    durability: TimersSettings | None = None,
    read_timeout_seconds: float | None = None,
    learned: aof.Learned | None = None,
) -> Flow[bool]:
    registry.find(topic)
    check_timer_id(timer_id)
    keys = namespace.keyspace_for(topic, timer_id).write_keys(topic)
    call = ScriptCall(scripts.REMOVE_TIMER, keys, (timer_id,))
    removed = yield from write(call, durability, read_timeout_seconds, learned)
    return bool(removed)


def get_timer(namespace: Namespace, registry: HandlerRegistry, topic: str, timer_id: str) -> Flow[TimerInfo | None]:
    handler = registry.find(topic)
    check_timer_id(timer_id)
    keys = namespace.keyspace_for(topic, timer_id).topic_keys(topic)
    reply = yield ScriptCall(scripts.GET_TIMER, keys, (timer_id,))
    if not reply:
        return None
    due, body, attempts, lease, last_error = reply
    try:
        payload = of_schema(handler.schema, handler.schema.model_validate_json(body or b""))
    except STOP_REQUESTS:
        raise
    except BaseException as error:  # a validator may raise anything, not only what pydantic reports
        raise StoredPayloadError(
            f"stored payload of {topic!r}/{timer_id!r} no longer validates: {codec.describe_error(error)}"
        ) from error
    try:
        due_at = ms_to_datetime(math.ceil(float(due)))
        lease_expires_at = None if lease is None else ms_to_datetime(math.ceil(float(lease)))
    except (OverflowError, ValueError) as error:
        # A score written by hand (inf, 1e300): set_timer only stores due times a datetime can hold.
        raise StoredPayloadError(
            f"stored due time of {topic!r}/{timer_id!r} is not a date ({codec.text(due)} ms)"
        ) from error
    return TimerInfo(
        topic=topic,
        timer_id=timer_id,
        due_at=due_at,
        payload=payload,
        attempts=int(attempts or 0),
        running=lease is not None,
        last_error=codec.optional_text(last_error),
        lease_expires_at=lease_expires_at,
    )


def dead_letters(namespace: Namespace) -> Flow[list[DeadLetter]]:
    """Every shard's dead letters (each dead letter lives in its timer's shard), one call per shard in turn."""
    letters: list[DeadLetter] = []
    for keyspace in namespace.keyspaces:
        records = yield Command(("HGETALL", keyspace.dead_letters))
        letters.extend(codec.dead_letter(field, record) for field, record in codec.hash_items(records))
    return sorted(letters, key=lambda letter: (letter.failed_at, letter.topic, letter.timer_id))


def requeue_dead_letter(
    namespace: Namespace,
    settings: TimersSettings,
    topic: str,
    timer_id: str,
    *,
    durable: bool = False,
    read_timeout_seconds: float | None = None,
    learned: aof.Learned | None = None,
) -> Flow[bool]:
    """With `durable`, the requeue returns once replicas confirmed it (see `write`).

    A dead letter lives in its timer's shard, so the requeue is one call there, like `set_timer`.
    """
    check_topic(topic, settings.separator, InvalidTopicError)
    check_timer_id(timer_id)
    keyspace = namespace.keyspace_for(topic, timer_id)
    call = ScriptCall(
        scripts.REQUEUE_DEAD_LETTER,
        (keyspace.dead_letters, *keyspace.write_keys(topic)),
        (dead_letter_field(topic, timer_id), timer_id, keyspace.channel(topic)),
    )
    requeued = yield from write(call, settings if durable else None, read_timeout_seconds, learned)
    if int(requeued) < 0:
        raise StoredPayloadError(
            f"dead letter {topic!r}/{timer_id!r} has an unreadable record (not one this library writes); "
            "it stays in the dead letters as it is"
        )
    return bool(requeued)


def purge_dead_letters(namespace: Namespace) -> Flow[int]:
    """Every shard's dead letters, one call per shard in turn; returns how many there were in all."""
    purged = 0
    for keyspace in namespace.keyspaces:
        purged += int((yield ScriptCall(scripts.PURGE_DEAD_LETTERS, (keyspace.dead_letters,), ())))
    return purged
