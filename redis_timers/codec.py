"""Turning Redis replies into Python values, whatever `decode_responses` the client uses."""

from __future__ import annotations

import json
import re
from typing import Any

from redis_timers.errors import STOP_REQUESTS
from redis_timers.keys import split_dead_letter_field
from redis_timers.records import DeadLetter
from redis_timers.timing import ms_to_datetime

MAX_ERROR_CHARS = 4000


def text(value: str | bytes) -> str:
    return value.decode("utf-8", errors="surrogateescape") if isinstance(value, bytes) else value


def optional_text(value: str | bytes | None) -> str | None:
    return None if value is None else text(value)


def describe_error(error: BaseException) -> str:
    """`Type: message` for logs and dead letters, whatever the exception's own methods do.

    A handler's exception is user code: its `__str__` may raise (anything, not only an `Exception`),
    return a non-str or a huge string, and its class's metaclass may hide its name. Describing it
    must never fail, or the worker would die recording the failure. Only a stop request (Ctrl-C
    landing here) propagates.
    """
    kind = type_name(type(error))
    try:
        # `str.__str__` turns a str subclass into a plain str, whose slicing and joining user code can't override.
        message = str.__str__(str(error))
    except STOP_REQUESTS:
        raise
    except BaseException:
        try:
            message = str.__str__(repr(error))
        except STOP_REQUESTS:
            raise
        except BaseException:
            return kind
    description = f"{kind}: {message}"
    return description if len(description) <= MAX_ERROR_CHARS else description[:MAX_ERROR_CHARS] + "..."


def type_name(cls: type) -> str:
    """A class's own name, read past any metaclass that overrides `__name__` or `__getattribute__`."""
    name: str = TYPE_NAME.__get__(cls, type)
    return name


TYPE_NAME = vars(type)["__name__"]
"""`type`'s own `__name__` descriptor: always the name the class was created with, a str."""


def dead_letter(field: str | bytes, record: str | bytes) -> DeadLetter:
    """One dead letter, whatever its record holds.

    Non-UTF-8 bytes (a payload stored by hand, or by another client) are kept as surrogate escapes,
    like ids. A record this version cannot read (not JSON, or fields of the wrong type: written by hand
    or by another version) is still listed, its raw text as the payload and the reason as its error,
    so that one bad record never hides the others.
    """
    topic, timer_id = split_dead_letter_field(text(field))
    raw = text(record)
    try:
        parsed: Any = json.loads(raw)
        if not isinstance(parsed, dict):
            raise TypeError(f"a JSON {type(parsed).__name__}, not an object")
        if not isinstance(parsed.get("payload", ""), str):
            # Dead letters park the payload's JSON as a string; anything else is not a payload to requeue.
            raise TypeError(f"its payload is a JSON {type(parsed['payload']).__name__}, not a string")
        return DeadLetter(
            topic=topic,
            timer_id=timer_id,
            payload=str(parsed.get("payload", "")),
            attempts=int(parsed.get("attempts", 0)),
            error=str(parsed.get("error", "")),
            failed_at=ms_to_datetime(int(parsed.get("failed_at", 0))),
        )
    except (ValueError, TypeError, OverflowError) as error:
        return DeadLetter(
            topic=topic,
            timer_id=timer_id,
            payload=raw,
            attempts=0,
            error=f"unreadable dead letter record ({type(error).__name__}: {error})",
            failed_at=ms_to_datetime(0),
        )


TRACE_MARK = 64
"""`@`, which starts a payload's trace prefix `'@<traceparent>|'` (JSON never starts with it): see `traced`."""
TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
"""A W3C traceparent: version, trace id, parent span id, flags, in lowercase hex."""


def traced(traceparent: str, body: bytes) -> bytes:
    """A payload's stored form carrying `traceparent` (the span that scheduled it), for the worker's span."""
    return b"@" + traceparent.encode("ascii") + b"|" + body


def untraced(body: bytes) -> tuple[str | None, bytes]:
    """A claimed payload's trace context (None if it carries none) and its JSON: the reverse of `traced`."""
    if body and body[0] == TRACE_MARK:
        bar = body.find(b"|", 1)
        if bar > 0:
            return body[1:bar].decode("ascii", "replace"), body[bar + 1 :]
    return None, body


def pairs(flat: list[Any]) -> list[tuple[Any, Any]]:
    return list(zip(flat[0::2], flat[1::2]))


def hash_items(reply: Any) -> list[tuple[Any, Any]]:
    """The (field, value) pairs of an `HGETALL` reply: a map (RESP3, or RESP2 converted by the client) or a
    flat array (RESP2 as the server sends it)."""
    if isinstance(reply, dict):
        return list(reply.items())
    return pairs(list(reply or ()))
