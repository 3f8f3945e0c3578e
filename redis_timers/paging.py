"""Cursors and the merge of per-shard pages, for the inspection listings (`inspect.py`). Pure: no Redis.

A listing reads many sources (each topic's timeline in each shard) and returns their entries in one order: by
score, then topic, then member, as bytes (a ZSET orders one score's members by their bytes; a timer is in one
shard only, so the order is total). A page's cursor is the place in that order of the page's end: the next
page asks each source for what follows it. So a timer that did not change between two calls is returned by
exactly one page, whichever shard holds it, and topics or shards that appear meanwhile are read from that place.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from redis_timers.errors import InspectionArgumentError, InvalidCursorError

MAX_LIMIT = 1000
"""The most items one page may ask for: each source returns up to this many per call."""

CURSOR_VERSION = 1
ItemT = TypeVar("ItemT")


def check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise InspectionArgumentError(f"limit must be an int, got {type(limit).__name__}")
    if not 1 <= limit <= MAX_LIMIT:
        raise InspectionArgumentError(f"limit must be from 1 to {MAX_LIMIT}, got {limit}")
    return limit


@dataclasses.dataclass(frozen=True, order=True)
class Position:
    """A place in the listing order: after every entry whose (score, topic, member) is at most this one's."""

    score: float
    topic: bytes
    member: bytes
    score_text: str = dataclasses.field(compare=False, default="")
    """The score as the server wrote it, sent back as it is (no float formatting in between)."""

    @classmethod
    def of(cls, score_text: str, topic: bytes, member: bytes) -> Position:
        return cls(float(score_text), topic, member, score_text)

    def bound_for(self, topic: bytes) -> tuple[str, str, bytes]:
        """What a source of `topic` returns from: ('gt', score) for a topic ordered before this one's (its entries
        of the same score came before), ('ge', score) for one after it, ('after', score, member) for the same."""
        if topic < self.topic:
            return "gt", self.score_text, b""
        if topic > self.topic:
            return "ge", self.score_text, b""
        return "after", self.score_text, self.member


@dataclasses.dataclass(frozen=True)
class SourcePage(Generic[ItemT]):
    """What one source returned: entries at `Position`s in order, and how far it looked (`frontier`, the last entry
    it examined, returned or not), or `exhausted` when it looked at everything up to the listing's end."""

    items: Sequence[tuple[Position, ItemT]]
    frontier: Position | None
    exhausted: bool


def merge(sources: Sequence[SourcePage[ItemT]], limit: int) -> tuple[list[ItemT], Position | None]:
    """The page's items (at most `limit`, in order) and the position the next page starts after, None at the end.

    Only entries up to the nearest frontier of the sources that are not exhausted can be returned: beyond it,
    that source has not looked yet. Every source examined at least one entry past the last page's end, so the
    listing always moves on (a page may hold fewer than `limit` items, even none, while entries remain).
    """
    frontiers = [source.frontier for source in sources if not source.exhausted and source.frontier is not None]
    cut = min(frontiers) if frontiers else None
    candidates = sorted(
        (entry for source in sources for entry in source.items if cut is None or entry[0] <= cut),
        key=lambda entry: entry[0],
    )
    if len(candidates) > limit:
        return [item for _, item in candidates[:limit]], candidates[limit - 1][0]
    return [item for _, item in candidates], cut


def fingerprint(*parts: Any) -> str:
    """A short digest of what a cursor belongs to (the call and its arguments), so another call's is refused."""
    return hashlib.sha1(repr(parts).encode("utf-8"), usedforsecurity=False).hexdigest()[:12]


def encode_cursor(owner: str, state: Sequence[str | int | bytes]) -> str:
    """Opaque printable text (URL-safe base64 of JSON): `owner` (a `fingerprint`) and the listing's state."""
    fields = [
        "b" + base64.b64encode(part).decode("ascii")
        if isinstance(part, bytes)
        else part
        if isinstance(part, int)
        else "s" + part
        for part in state
    ]
    raw = json.dumps([CURSOR_VERSION, owner, fields])
    return base64.urlsafe_b64encode(raw.encode("ascii")).decode("ascii").rstrip("=")


def decode_cursor(cursor: object, owner: str) -> list[str | int | bytes]:
    """The state `encode_cursor` wrote for `owner`; `InvalidCursorError` for anything else."""
    if not isinstance(cursor, str):
        raise InvalidCursorError(f"cursor must be a str from a page of this call, got {type(cursor).__name__}")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, written_for, state = json.loads(raw)
        if version != CURSOR_VERSION or not isinstance(state, list):
            raise ValueError("not a cursor of this version")
    except (ValueError, TypeError) as error:
        raise InvalidCursorError(f"cursor {cursor[:40]!r} is not one a page returned") from error
    if written_for != owner:
        raise InvalidCursorError("cursor was returned by another call (another method, topic or window)")
    decoded: list[str | int | bytes] = []
    try:
        for field in state:
            if isinstance(field, int) and not isinstance(field, bool):
                decoded.append(field)
            elif isinstance(field, str) and field[:1] == "b":
                decoded.append(base64.b64decode(field[1:], validate=True))
            elif isinstance(field, str) and field[:1] == "s":
                decoded.append(field[1:])
            else:
                raise ValueError(f"unexpected field {field!r}")
    except ValueError as error:
        raise InvalidCursorError(f"cursor {cursor[:40]!r} is not one a page returned") from error
    return decoded
