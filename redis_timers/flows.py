"""Every public operation, written once as a generator of `Op`s (see `ops.py`).

Each flow validates its input before its first yield, so bad input raises before
anything reaches Redis.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
from typing import Any

import pydantic

from redis_timers import codec, scripts
from redis_timers.errors import (
    STOP_REQUESTS,
    ActivationError,
    InvalidTimerIdError,
    InvalidTopicError,
    PayloadTypeError,
    StoredPayloadError,
    UnstorablePayloadError,
)
from redis_timers.keys import Keyspace, dead_letter_field
from redis_timers.ops import Command, Flow, ScriptCall
from redis_timers.records import DeadLetter, TimerInfo
from redis_timers.registry import HandlerRegistry
from redis_timers.settings import TimersSettings
from redis_timers.timing import delay_to_ms, instant_to_ms, ms_to_datetime
from redis_timers.validation import check_timer_id, check_topic

LEGACY_BATCH = 500
MAX_LEGACY_MS = 253_402_300_799_999
"""The end of the year 9999: a later original-library score is no due time (and Lua loses integers past 2**53)."""
MAX_LOGGED_REFUSALS = 5

logger = logging.getLogger("redis_timers")


def set_timer(
    keyspace: Keyspace,
    registry: HandlerRegistry,
    topic: str,
    timer_id: str,
    payload: pydantic.BaseModel,
    activation_period: Any,
    activate_at: Any,
) -> Flow[int]:
    due_ms = yield set_timer_call(keyspace, registry, topic, timer_id, payload, activation_period, activate_at)
    return int(due_ms)


def set_timer_call(
    keyspace: Keyspace,
    registry: HandlerRegistry,
    topic: str,
    timer_id: str,
    payload: pydantic.BaseModel,
    activation_period: Any,
    activate_at: Any,
) -> ScriptCall:
    """`set_timer`'s one script call, once every check passed; its reply is the due time in server ms.

    The front ends call this directly rather than drive the flow: `set_timer` is the hot path of a web
    application, and a generator round costs as much as a check.
    """
    handler = registry.find(topic)
    check_timer_id(timer_id)
    if not isinstance(payload, handler.schema):
        raise PayloadTypeError(
            f"payload for topic {topic!r} must be a {handler.schema.__name__}, got {type(payload).__name__}"
        )
    if (activation_period is None) == (activate_at is None):
        raise ActivationError("give exactly one of activation_period and activate_at")
    if activate_at is None:
        mode, milliseconds = "in", delay_to_ms(activation_period)
    else:
        mode, milliseconds = "at", instant_to_ms(activate_at)
    body = payload_json(handler.schema, payload)
    return ScriptCall(
        scripts.SET_TIMER,
        keyspace.topic_keys(topic),
        (timer_id, body, mode, milliseconds, keyspace.channel(topic)),
    )


@functools.cache
def computed_fields(schema: type[pydantic.BaseModel]) -> set[str] | None:
    """Per registered schema, once: `set_timer` asks on every call."""
    return set(schema.model_computed_fields) or None


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
        schema.__pydantic_validator__.validate_json(body)
    except STOP_REQUESTS:
        raise
    except BaseException as error:
        raise UnstorablePayloadError(
            f"payload of type {type(payload).__name__} does not survive a JSON round trip through "
            f"{schema.__name__}, so its handler could never receive it: {codec.describe_error(error)}"
        ) from error
    return body


def remove_timer(keyspace: Keyspace, registry: HandlerRegistry, topic: str, timer_id: str) -> Flow[bool]:
    registry.find(topic)
    check_timer_id(timer_id)
    removed = yield ScriptCall(scripts.REMOVE_TIMER, keyspace.topic_keys(topic), (timer_id,))
    return bool(removed)


def get_timer(keyspace: Keyspace, registry: HandlerRegistry, topic: str, timer_id: str) -> Flow[TimerInfo | None]:
    handler = registry.find(topic)
    check_timer_id(timer_id)
    reply = yield ScriptCall(scripts.GET_TIMER, keyspace.topic_keys(topic), (timer_id,))
    if not reply:
        return None
    score, body, attempts, lease, last_error = reply
    try:
        payload = handler.schema.model_validate_json(body or b"")
    except STOP_REQUESTS:
        raise
    except BaseException as error:  # a validator may raise anything, not only what pydantic reports
        raise StoredPayloadError(
            f"stored payload of {topic!r}/{timer_id!r} no longer validates: {codec.describe_error(error)}"
        ) from error
    return TimerInfo(
        topic=topic,
        timer_id=timer_id,
        due_at=ms_to_datetime(math.ceil(float(score))),
        payload=payload,
        attempts=int(attempts or 0),
        running=lease is not None,
        last_error=codec.optional_text(last_error),
    )


def dead_letters(keyspace: Keyspace) -> Flow[list[DeadLetter]]:
    records = yield Command(("HGETALL", keyspace.dead_letters))
    letters = [codec.dead_letter(field, record) for field, record in dict(records).items()]
    return sorted(letters, key=lambda letter: (letter.failed_at, letter.topic, letter.timer_id))


def requeue_dead_letter(keyspace: Keyspace, settings: TimersSettings, topic: str, timer_id: str) -> Flow[bool]:
    check_topic(topic, settings.separator, InvalidTopicError)
    check_timer_id(timer_id)
    requeued = yield ScriptCall(
        scripts.REQUEUE_DEAD_LETTER,
        (keyspace.dead_letters, *keyspace.topic_keys(topic)),
        (dead_letter_field(topic, timer_id), timer_id, keyspace.channel(topic)),
    )
    return bool(requeued)


def purge_dead_letters(keyspace: Keyspace) -> Flow[int]:
    purged = yield ScriptCall(scripts.PURGE_DEAD_LETTERS, (keyspace.dead_letters,), ())
    return int(purged)


def import_legacy(keyspace: Keyspace, registry: HandlerRegistry, settings: TimersSettings) -> Flow[int]:
    """Move timers written by the original library (`topic--id` members, whole-second scores) to the new keys.

    Only topics this instance handles are moved; the rest stay for an instance that does. The
    original keys live in other hash slots, so this runs as single-slot steps, each safe to
    repeat if a worker dies after any of them. Returns how many timers were (re)scheduled.

    The rule: what a pass finds on the original timeline was written by a process of the original
    library, after anything this import did with that timer, so it replaces the timer under the new
    keys; only a timer never imported before loses to one already scheduled under the new keys.
    Each import leaves a receipt under the new keys and the payload's copy in the original payloads
    hash, until the timer is done: if a process of the original library cancels the timer meanwhile
    (deleting both of its entries), the next pass removes the imported timer too.
    """
    imported = yield from _import_original_timeline(keyspace, registry, settings)
    for topic in registry.topics:
        imported += yield from _follow_imported(keyspace, settings, topic)
    return imported


def _import_original_timeline(keyspace: Keyspace, registry: HandlerRegistry, settings: TimersSettings) -> Flow[int]:
    imported, skipped = 0, 0
    while True:
        flat = yield ScriptCall(scripts.READ_LEGACY, (settings.timeline_key,), (skipped, skipped + LEGACY_BATCH - 1))
        if not flat:
            return imported
        members = codec.pairs(list(flat))
        bodies = yield Command(("HMGET", settings.payloads_key, *[member for member, _ in members]))
        rows_by_topic: dict[str, list[Any]] = {}
        moved: list[str] = []
        refused: list[str] = []
        for (member, score), body in zip(members, bodies):
            entry = legacy_entry(member, score, registry, settings.separator)
            if isinstance(entry, str):
                refused.append(f"{member!r} ({entry})")
            if not isinstance(entry, tuple) or body is None:
                # Not ours, not importable, or its payload is not written yet (or was just cancelled).
                skipped += 1
                continue
            topic, timer_id, due_ms = entry
            rows_by_topic.setdefault(topic, []).extend((timer_id, due_ms, body))
            moved.extend((codec.text(member), codec.text(score)))
        if refused:
            logger.warning(
                "%d timer(s) in %r of topics this worker handles cannot be imported and stay there: %s",
                len(refused),
                settings.timeline_key,
                "; ".join(refused[:MAX_LOGGED_REFUSALS]) + ("; ..." if len(refused) > MAX_LOGGED_REFUSALS else ""),
            )
        for topic, rows in rows_by_topic.items():
            imported += yield ScriptCall(
                scripts.IMPORT_LEGACY,
                (*keyspace.topic_keys(topic), keyspace.legacy_receipts(topic)),
                (keyspace.channel(topic), *rows),
            )
        if moved:
            # Off the original timeline (so its workers don't run them too); the payloads stay until done.
            removed = yield ScriptCall(scripts.REMOVE_LEGACY, (settings.timeline_key,), tuple(moved))
            # Members changed by a process of the original library since the read stay behind; step over them.
            skipped += len(moved) // 2 - len(removed)
        if len(members) < LEGACY_BATCH:
            return imported


def legacy_entry(
    member: str | bytes, score: str | bytes, registry: HandlerRegistry, separator: str
) -> tuple[str, str, int] | str | None:
    """(topic, id, due ms) of an original-library timer; why it can't be imported if its topic is handled here;
    None if it is not a handled topic's."""
    raw = member if isinstance(member, bytes) else member.encode("utf-8", "surrogateescape")
    topic_part, found, id_part = raw.partition(separator.encode("utf-8"))
    try:
        topic = topic_part.decode("utf-8")
    except UnicodeDecodeError:
        return None  # topics are text: no worker handles this one
    if not found or topic not in registry.topics:
        return None
    try:
        timer_id = id_part.decode("utf-8")
        check_timer_id(timer_id)
    except UnicodeDecodeError:
        return "its id is not UTF-8"
    except InvalidTimerIdError as error:
        return str(error)
    try:
        seconds = float(codec.text(score))
    except ValueError:
        return "its score is not a number"
    if not math.isfinite(seconds):
        return "its score is not a finite number"
    due_ms = math.ceil(seconds * 1000)
    if not -MAX_LEGACY_MS <= due_ms <= MAX_LEGACY_MS:
        return "its due time is beyond the year 9999"
    return topic, timer_id, due_ms


def _follow_imported(keyspace: Keyspace, settings: TimersSettings, topic: str) -> Flow[int]:
    """Follow the timers imported from the original keys until they are done; returns how many were re-imported.

    Per receipt, the original keys say what happened since the import: the member is back on the original
    timeline (rescheduled: the next pass of the timeline imports it), its payload changed (rewritten while
    the import ran: imported again), both entries are gone (cancelled: the timer is removed), or its copy
    is unchanged (nothing: and once the timer is done, the receipt and the copy are deleted).
    """
    timeline, payloads, state = keyspace.topic_keys(topic)
    receipts_key = keyspace.legacy_receipts(topic)
    our_keys = (timeline, payloads, state, receipts_key)
    reimported = 0
    cursor = "0"
    while True:
        page = yield ScriptCall(scripts.LEGACY_RECEIPTS, (timeline, receipts_key), (cursor,))
        cursor = codec.text(page[0])
        receipts = [
            (codec.text(timer_id), codec.text(receipt), bool(alive)) for timer_id, receipt, alive in _triples(page[1:])
        ]
        if receipts:
            members = [f"{topic}{settings.separator}{timer_id}" for timer_id, _, _ in receipts]
            on_timeline = yield ScriptCall(scripts.ON_LEGACY_TIMELINE, (settings.timeline_key,), tuple(members))
            copies = yield Command(("HMGET", settings.payloads_key, *members))
            rewritten: list[Any] = []
            settle: list[str] = []
            done: dict[str, tuple[str, str]] = {}
            for (timer_id, receipt, alive), member, listed, copy in zip(receipts, members, on_timeline, copies):
                if listed:
                    continue  # written again by the original library: the timeline's pass imports it
                due_ms, _, digest = receipt.partition(":")
                if copy is None:
                    settle.extend(("c", timer_id, receipt))
                elif _sha1(copy) != digest:
                    rewritten.extend((timer_id, int(due_ms), copy))
                elif not alive:
                    settle.extend(("d", timer_id, receipt))
                    done[timer_id] = (member, digest)
            if rewritten:
                reimported += yield ScriptCall(scripts.IMPORT_LEGACY, our_keys, (keyspace.channel(topic), *rewritten))
            if settle:
                dropped = [
                    codec.text(timer_id)
                    for timer_id in (yield ScriptCall(scripts.SETTLE_LEGACY, our_keys, tuple(settle)))
                ]
                cancelled = [timer_id for timer_id in dropped if timer_id not in done]
                if cancelled:
                    logger.info(
                        "removed %d timer(s) of %r cancelled by a process of an earlier redis-timers version",
                        len(cancelled),
                        topic,
                    )
                copies_to_delete = [item for timer_id in dropped if timer_id in done for item in done[timer_id]]
                if copies_to_delete:
                    yield ScriptCall(scripts.REMOVE_LEGACY_PAYLOADS, (settings.payloads_key,), tuple(copies_to_delete))
        if cursor == "0":
            return reimported


def _triples(flat: list[Any]) -> list[tuple[Any, Any, Any]]:
    return list(zip(flat[0::3], flat[1::3], flat[2::3]))


def _sha1(value: str | bytes) -> str:
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
    return hashlib.sha1(raw, usedforsecurity=False).hexdigest()
