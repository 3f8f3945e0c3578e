"""The inspection flows (`Timers.list_timers`, `stats`, ...): every answer in bounded calls, across every shard.

Each call a flow yields does bounded work on the server (a page of a ZSET by rank, `ZCOUNT`s, `HLEN`, one `SCAN`
or `HSCAN` page), so no inspection blocks the server for O(N); a listing's pages are merged as `paging.py` says.
Nothing here is a snapshot: each shard is read at its own moment. See docs/operations.md "Inspection".
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import re
from collections.abc import Sequence
from typing import Any

from redis_timers import codec, paging, scripts
from redis_timers.errors import InspectionArgumentError, InvalidCursorError, InvalidTopicError, StoredPayloadError
from redis_timers.keys import DEAD_LETTER_FIELD_SEPARATOR, Keyspace, Namespace
from redis_timers.ops import Command, Flow, ScriptCall
from redis_timers.paging import Position, SourcePage
from redis_timers.records import DeadLetter, DueHistogram, Page, ScheduledTimer, TimersStats, TopicStats
from redis_timers.registry import HandlerRegistry
from redis_timers.settings import TimersSettings
from redis_timers.timing import instant_to_ms, ms_to_datetime
from redis_timers.validation import check_aware, check_topic

SCAN_COUNT = 1000
"""The `COUNT` of each `SCAN` and `HSCAN` page: the work one call does on the server."""
RUNNING_BUDGET = 1000
"""How many timeline entries of one topic and shard a `running_timers` call examines at most for leases."""
MAX_BUCKETS = 1000
ENTRIES_PER_CALL = 2_000
"""The most timeline entries one script call reads (topics per call x entries per topic): with thousands of topics
a shard's topics are split over several calls, so no call blocks the server for O(topics)."""
COMMANDS_PER_CALL = 2_000
"""Likewise, the most `ZCOUNT`-like commands one `inspect_counts` call runs (a fixed few per topic, plus buckets)."""
MAX_DEAD_LETTER_CALLS = 16
"""The most `HSCAN` pages one `dead_letter_page` reads: a page can hold fewer items than asked while more follow."""
RUN_TOKEN = re.compile(rb"^\d+\.\d+\.(\d+)$")
"""A lease token `<seq>.<n>.<due ms>`: the due time the lease's score hides (older versions' tokens carry none)."""
STORED_SCORE = re.compile(r"-?[0-9]+(\.[0-9]+)?(e[+-]?[0-9]+)?")
"""A finite score as the server writes one (a cursor carries it back as text)."""
GLOB_SPECIALS = re.compile(r"([*?\[\]\\])")


def glob_escape(text: str) -> str:
    """`text` as a literal in a `SCAN`/`HSCAN` `MATCH` pattern."""
    return GLOB_SPECIALS.sub(r"\\\1", text)


def optional_topic(topic: object, settings: TimersSettings) -> str | None:
    return None if topic is None else check_topic(topic, settings.separator, InvalidTopicError)


def due_window(due_after: object, due_before: object) -> tuple[str, str]:
    """ZCOUNT-style bounds of `due_after <= score < due_before` (scores are whole ms: each bound rounds up)."""
    lowest = "-inf" if due_after is None else str(instant_to_ms(check_aware(due_after, "due_after")))
    highest = "+inf" if due_before is None else "(" + str(instant_to_ms(check_aware(due_before, "due_before")))
    if due_after is not None and due_before is not None and due_after > due_before:  # type: ignore[operator]
        raise InspectionArgumentError("due_after must not be later than due_before")
    return lowest, highest


def positive_ms(value: object, name: str) -> int:
    if not isinstance(value, datetime.timedelta):
        raise InspectionArgumentError(f"{name} must be a datetime.timedelta, got {type(value).__name__}")
    milliseconds = math.ceil(value / datetime.timedelta(milliseconds=1))
    if milliseconds < 0:
        raise InspectionArgumentError(f"{name} must not be negative")
    return milliseconds


def to_ms(text: bytes | str) -> int:
    """A score or a clock reading as whole ms, rounded up (never earlier than stored)."""
    return math.ceil(float(codec.text(text)))


def topics(namespace: Namespace, registry: HandlerRegistry) -> Flow[list[str]]:
    """The handled topics and every topic with a timeline in a shard: `SCAN` pages (`COUNT` 1000) `MATCH`ing the
    timelines of every shard, on the node of each shard in turn. A node's keys are read once, however many shards
    it holds (every shard of one server): the script names its node by run id."""
    found = set(registry.topics)
    tags = {keyspace.tag for keyspace in namespace.keyspaces}
    suffix = ":timeline:"
    every_shard = "{" + glob_escape(namespace.name) + (":*" if namespace.shards > 1 else "") + "}" + suffix + "*"
    scanned_nodes: set[bytes] = set()
    for keyspace in namespace.keyspaces:
        cursor = "0"
        while True:
            reply = yield ScriptCall(
                scripts.INSPECT_SCAN, (keyspace.dead_letters,), ("keys", cursor, every_shard, SCAN_COUNT)
            )
            cursor, node = codec.text(reply[0]), bytes(reply[1] or b"")
            if node in scanned_nodes:
                break  # read whole for an earlier shard
            for raw_key in reply[2:]:
                try:
                    key = bytes(raw_key).decode("utf-8")
                except UnicodeDecodeError:
                    continue  # written by another client: no topic of ours (topics are text) has this name
                tag, _, topic = key.partition(suffix)
                if tag in tags and topic:
                    found.add(topic)
            if cursor == "0":
                scanned_nodes.add(node)
                break
    return sorted(found)


def listed_topics(namespace: Namespace, registry: HandlerRegistry, topic: str | None) -> Flow[list[str]]:
    if topic is not None:
        return [topic]
    return (yield from topics(namespace, registry))


def count_timers(
    namespace: Namespace,
    registry: HandlerRegistry,
    settings: TimersSettings,
    topic: str | None,
    due_after: datetime.datetime | None,
    due_before: datetime.datetime | None,
) -> Flow[int]:
    """One `ZCOUNT` per topic and shard, a script call per shard."""
    topic = optional_topic(topic, settings)
    lowest, highest = due_window(due_after, due_before)
    names = yield from listed_topics(namespace, registry, topic)
    total = 0
    for keyspace in namespace.keyspaces if names else ():
        reply = yield from counts_in_calls(keyspace, names, lowest, highest)
        total += sum(int(row[0]) for row in reply[1:])
    return total


def in_calls_of(size: int, names: Sequence[str], call_for: Any) -> Flow[list[Any]]:
    """The reply of one script call naming all of `names` (the server's time, then a row per topic), from calls of
    at most `size` topics each (`call_for(chunk, first index)`); at least one call, for the server's time."""
    reply: list[Any] = []
    for start in range(0, len(names), size) or [0]:
        part = yield call_for(names[start : start + size], start)
        reply = reply or [part[0]]
        reply.extend(part[1:])
    return reply


def counts_in_calls(
    keyspace: Keyspace,
    names: Sequence[str],
    lowest: str = "-inf",
    highest: str = "+inf",
    *,
    bucket_ms: int = 0,
    buckets: int = 0,
    window_ms: int = 0,
    overdue_ms: int = 0,
) -> Flow[list[Any]]:
    """INSPECT_COUNTS' reply for all of `names`, in calls of at most `COMMANDS_PER_CALL` commands: each call counts
    the timelines of its chunk of topics with the same arguments."""
    arguments = (lowest, highest, bucket_ms, buckets, window_ms, overdue_ms)

    def call_for(chunk: Sequence[str], _: int) -> ScriptCall:
        return ScriptCall(scripts.INSPECT_COUNTS, tuple(keyspace.timeline(name) for name in chunk), arguments)

    return (yield from in_calls_of(max(1, COMMANDS_PER_CALL // (9 + buckets)), names, call_for))


def range_call(
    keyspace: Keyspace,
    names: Sequence[str],
    bounds: Sequence[tuple[str, str, bytes]],
    *,
    running: bool,
    budget: int,
    wanted: int,
    lowest: str = "-inf",
    highest: str = "+inf",
    window_ms: int = 0,
) -> ScriptCall:
    keys = tuple(key for name in names for key in keyspace.topic_keys(name))
    per_topic = tuple(part for bound in bounds for part in bound)
    head: tuple[str | int, ...] = (
        ("running", budget, wanted, "-inf", window_ms) if running else ("all", budget, wanted, lowest, highest)
    )
    return ScriptCall(scripts.INSPECT_RANGE, keys, (*head, *per_topic))


@dataclasses.dataclass(frozen=True)
class TopicRange:
    """One topic's part of an `inspect_range` reply."""

    exhausted: bool
    frontier: Position | None
    first_skipped_ms: int | None
    """The score of the first entry examined and not returned (with `running`: the first pending one)."""
    entries: list[tuple[Position, ScheduledTimer]]


def topic_range(topic: str, row: Sequence[Any], now_ms: int) -> TopicRange:
    exhausted, frontier_score, frontier_member, skipped = row[0], row[1], row[2], row[3]
    topic_bytes = topic.encode("utf-8")
    entries = []
    for at in range(4, len(row), 6):
        timer_id, score, attempts, token, payload, error = row[at : at + 6]
        position = Position.of(codec.text(score), topic_bytes, bytes(timer_id))
        entries.append((position, scheduled_timer(topic, timer_id, score, attempts, token, payload, error, now_ms)))
    return TopicRange(
        exhausted=bool(int(exhausted)),
        frontier=Position.of(codec.text(frontier_score), topic_bytes, bytes(frontier_member))
        if frontier_score
        else None,
        first_skipped_ms=to_ms(skipped) if skipped else None,
        entries=entries,
    )


def scheduled_timer(
    topic: str,
    timer_id: bytes,
    score: bytes,
    attempts: bytes,
    token: bytes,
    payload: bytes,
    error: bytes | None,
    now_ms: int,
) -> ScheduledTimer:
    running = bool(token) and float(score) > now_ms
    hidden_due = RUN_TOKEN.match(token) if token else None
    try:
        due_at = ms_to_datetime(int(hidden_due.group(1)) if hidden_due else to_ms(score))
        lease_expires_at = ms_to_datetime(to_ms(score)) if running else None
    except (OverflowError, ValueError) as error_:
        # A score written by hand (inf, 1e300): set_timer only stores due times a datetime can hold.
        raise StoredPayloadError(
            f"stored due time of {topic!r}/{codec.text(timer_id)!r} is not a date ({codec.text(score)} ms)"
        ) from error_
    return ScheduledTimer(
        topic=topic,
        timer_id=codec.text(timer_id),
        due_at=due_at,
        payload=codec.text(payload),
        attempts=int(attempts),
        running=running,
        lease_expires_at=lease_expires_at,
        last_error=codec.optional_text(error),
    )


def listing_page(
    namespace: Namespace,
    registry: HandlerRegistry,
    topic: str | None,
    owner: str,
    limit: int,
    cursor: str | None,
    make_call: Any,
    examined_per_topic: int,
) -> Flow[Page[ScheduledTimer]]:
    """One page of a timeline listing: a `make_call(keyspace, names, bounds)` per shard, merged (`paging.merge`)."""
    position = None
    if cursor is not None:
        score, last_topic, member = paging.decode_cursor(cursor, owner)
        if not (isinstance(score, str) and isinstance(last_topic, bytes) and isinstance(member, bytes)):
            raise InvalidCursorError("cursor was returned by another call")
        if not STORED_SCORE.fullmatch(score) or not math.isfinite(float(score)):
            # Sent to ZCOUNT as it is: only a number the server wrote (the fingerprint is no secret).
            raise InvalidCursorError(f"cursor holds {score!r}, not a score a page returned")
        position = Position.of(score, last_topic, member)
    names = yield from listed_topics(namespace, registry, topic)
    sources: list[SourcePage[ScheduledTimer]] = []
    for keyspace in namespace.keyspaces if names else ():
        bounds = [("", "", b"") if position is None else position.bound_for(name.encode("utf-8")) for name in names]
        reply = yield from in_calls_of(
            max(1, ENTRIES_PER_CALL // examined_per_topic),
            names,
            lambda chunk, start, keyspace=keyspace, bounds=bounds: make_call(
                keyspace, chunk, bounds[start : start + len(chunk)]
            ),
        )
        now_ms = to_ms(reply[0])
        for name, row in zip(names, reply[1:]):
            part = topic_range(name, row, now_ms)
            sources.append(SourcePage(part.entries, part.frontier, part.exhausted))
    items, end = paging.merge(sources, limit)
    return Page(
        items=items,
        cursor=None if end is None else paging.encode_cursor(owner, [end.score_text, end.topic, end.member]),
    )


def list_timers(
    namespace: Namespace,
    registry: HandlerRegistry,
    settings: TimersSettings,
    topic: str | None,
    due_after: datetime.datetime | None,
    due_before: datetime.datetime | None,
    limit: int,
    cursor: str | None,
) -> Flow[Page[ScheduledTimer]]:
    """Up to `limit` entries of each topic's timeline per shard (by rank), earliest first; a running timer sits at
    its lease's end."""
    topic = optional_topic(topic, settings)
    lowest, highest = due_window(due_after, due_before)
    limit = paging.check_limit(limit)
    owner = paging.fingerprint("list_timers", namespace, topic, lowest, highest)

    def make_call(keyspace: Keyspace, names: list[str], bounds: list[tuple[str, str, bytes]]) -> ScriptCall:
        return range_call(
            keyspace, names, bounds, running=False, budget=limit, wanted=limit, lowest=lowest, highest=highest
        )

    return (yield from listing_page(namespace, registry, topic, owner, limit, cursor, make_call, limit))


def running_timers(
    namespace: Namespace,
    registry: HandlerRegistry,
    settings: TimersSettings,
    topic: str | None,
    limit: int,
    cursor: str | None,
) -> Flow[Page[ScheduledTimer]]:
    """Leased entries: their score is the lease's end, between now and now + `lease_seconds` (this process's
    setting, which should be the workers'); each call examines at most `RUNNING_BUDGET` entries per topic and
    shard of that window."""
    topic = optional_topic(topic, settings)
    limit = paging.check_limit(limit)
    owner = paging.fingerprint("running_timers", namespace, topic)
    window_ms = lease_window_ms(settings)

    def make_call(keyspace: Keyspace, names: list[str], bounds: list[tuple[str, str, bytes]]) -> ScriptCall:
        return range_call(
            keyspace, names, bounds, running=True, budget=RUNNING_BUDGET, wanted=limit, window_ms=window_ms
        )

    return (yield from listing_page(namespace, registry, topic, owner, limit, cursor, make_call, RUNNING_BUDGET))


def lease_window_ms(settings: TimersSettings) -> int:
    return math.ceil(settings.lease_seconds * 1000)


def stats(
    namespace: Namespace, registry: HandlerRegistry, settings: TimersSettings, overdue_after: datetime.timedelta
) -> Flow[TimersStats]:
    overdue_ms = positive_ms(overdue_after, "overdue_after")
    window_ms = lease_window_ms(settings)
    names = yield from topics(namespace, registry)
    dead = yield from dead_letters_by_topic(namespace)
    per_topic: dict[str, list[TopicStats]] = {name: [] for name in sorted(set(names) | set(dead))}
    # A dead letter's field written by another client can name a topic that is not UTF-8 text: it has no
    # timeline of ours to count (its keys could not even be sent), only its dead letters.
    names = [name for name in per_topic if is_utf8(name)]
    server_ms: int | None = None
    for keyspace in namespace.keyspaces:
        reply = yield from counts_in_calls(keyspace, names, window_ms=window_ms, overdue_ms=overdue_ms)
        now_ms = to_ms(reply[0])
        server_ms = now_ms if server_ms is None else server_ms
        running, first_pending = yield from running_in_window(keyspace, names, window_ms)
        for index, (name, row) in enumerate(zip(names, reply[1:])):
            _, cardinality, due_now, _, overdue, head, after_window = row[:7]
            head_ms = to_ms(head) if head else None
            due_head = head_ms if head_ms is not None and head_ms <= now_ms else None
            later = [
                ms for ms in (first_pending[index], to_ms(after_window) if after_window else None) if ms is not None
            ]
            next_due = due_head if due_head is not None else min(later, default=None)
            per_topic[name].append(
                TopicStats(
                    # ZCARD and the leases are read by different calls: a worker finishing timers and claiming
                    # others in between would make the difference negative.
                    pending=max(0, int(cardinality) - running[index]),
                    due_now=int(due_now),
                    overdue=int(overdue),
                    running=running[index],
                    dead=0,
                    next_due_at=None if next_due is None else ms_to_datetime(next_due),
                    oldest_overdue_at=None if due_head is None else ms_to_datetime(due_head),
                )
            )
    assert server_ms is not None  # a namespace has at least one shard
    return TimersStats(
        server_time=ms_to_datetime(server_ms),
        topics={name: summed(parts, dead.get(name, 0)) for name, parts in per_topic.items()},
    )


def is_utf8(text: str) -> bool:
    """False for a name decoded with surrogate escapes from bytes that are not UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def summed(parts: Sequence[TopicStats], dead: int) -> TopicStats:
    def earliest(values: Sequence[datetime.datetime | None]) -> datetime.datetime | None:
        return min((value for value in values if value is not None), default=None)

    return TopicStats(
        pending=sum(part.pending for part in parts),
        due_now=sum(part.due_now for part in parts),
        overdue=sum(part.overdue for part in parts),
        running=sum(part.running for part in parts),
        dead=dead,
        next_due_at=earliest([part.next_due_at for part in parts]),
        oldest_overdue_at=earliest([part.oldest_overdue_at for part in parts]),
    )


def running_in_window(
    keyspace: Keyspace, names: Sequence[str], window_ms: int
) -> Flow[tuple[list[int], list[int | None]]]:
    """Per topic of one shard: how many entries hold a live lease, and the score of the first pending entry in the
    lease window. `RUNNING_BUDGET` entries per topic and call, until each topic's window is read."""
    running = [0] * len(names)
    first_pending: list[int | None] = [None] * len(names)
    bounds: dict[int, tuple[str, str, bytes]] = dict.fromkeys(range(len(names)), ("", "", b""))
    while bounds:
        indices = list(bounds)
        reply = yield from in_calls_of(
            max(1, ENTRIES_PER_CALL // RUNNING_BUDGET),
            [names[index] for index in indices],
            lambda chunk, start, indices=indices: range_call(
                keyspace,
                chunk,
                [bounds[index] for index in indices[start : start + len(chunk)]],
                running=True,
                budget=RUNNING_BUDGET,
                wanted=RUNNING_BUDGET,
                window_ms=window_ms,
            ),
        )
        now_ms = to_ms(reply[0])
        for index, row in zip(indices, reply[1:]):
            part = topic_range(names[index], row, now_ms)
            running[index] += sum(timer.running for _, timer in part.entries)
            if first_pending[index] is None:
                first_pending[index] = part.first_skipped_ms
            if part.exhausted or part.frontier is None:
                del bounds[index]
            else:
                bounds[index] = ("after", part.frontier.score_text, part.frontier.member)
    return running, first_pending


def due_histogram(
    namespace: Namespace,
    registry: HandlerRegistry,
    settings: TimersSettings,
    window: datetime.timedelta,
    buckets: int,
    topic: str | None,
) -> Flow[DueHistogram]:
    """`buckets` `ZCOUNT`s per topic and shard, a script call per shard."""
    topic = optional_topic(topic, settings)
    window_ms = positive_ms(window, "window")
    if isinstance(buckets, bool) or not isinstance(buckets, int) or not 1 <= buckets <= MAX_BUCKETS:
        raise InspectionArgumentError(f"buckets must be an int from 1 to {MAX_BUCKETS}, got {buckets!r}")
    if window_ms < buckets:
        raise InspectionArgumentError(f"window must be at least {buckets} ms: a bucket is at least 1 ms")
    bucket_ms = window_ms // buckets
    names = yield from listed_topics(namespace, registry, topic)
    counts = [0] * buckets
    overdue = 0
    start_ms: int | None = None
    for keyspace in namespace.keyspaces:
        reply = yield from counts_in_calls(keyspace, names, bucket_ms=bucket_ms, buckets=buckets)
        start_ms = to_ms(reply[0]) if start_ms is None else start_ms
        for row in reply[1:]:
            overdue += int(row[3])
            for index, count in enumerate(row[7:]):
                counts[index] += int(count)
    assert start_ms is not None
    return DueHistogram(
        start=ms_to_datetime(start_ms),
        bucket=datetime.timedelta(milliseconds=bucket_ms),
        counts=counts,
        overdue=overdue,
    )


def dead_letter_pattern(topic: str | None) -> str:
    return "*" if topic is None else glob_escape(topic + DEAD_LETTER_FIELD_SEPARATOR) + "*"


def hscan_call(keyspace: Keyspace, cursor: str, pattern: str, count: int) -> ScriptCall:
    return ScriptCall(scripts.INSPECT_SCAN, (keyspace.dead_letters,), ("hash", cursor, pattern, count))


def dead_letter_page(
    namespace: Namespace, settings: TimersSettings, topic: str | None, limit: int, cursor: str | None
) -> Flow[Page[DeadLetter]]:
    """`HSCAN` pages (`COUNT` = `limit`) of each shard's dead letters in turn, in the hash's own order.

    A page of `HSCAN` can hold more than a page of ours. Then the cursor holds the shard, that `HSCAN` page's cursor
    and the cursor it returned, and the last field returned (its fields are returned in byte order): the next page
    reads the same `HSCAN` page again and returns its fields after that one. A place, not a count of those
    returned, so a letter requeued or removed in between does not hide others. If the `HSCAN` page now ends
    elsewhere (the hash was resized or re-encoded: it may cover other fields), all of it is returned again, as
    `HSCAN` may return a field twice but never hides one present throughout.
    """
    topic = optional_topic(topic, settings)
    limit = paging.check_limit(limit)
    owner = paging.fingerprint("dead_letter_page", namespace, topic)
    shard, scan_cursor, ended_at, returned_to = 0, "0", "", b""
    if cursor is not None:
        state = paging.decode_cursor(cursor, owner)
        match state:
            case [int(shard), str(scan_cursor), str(ended_at), bytes(returned_to)] if (
                0 <= shard < namespace.shards and scan_cursor.isdigit()
            ):
                pass
            case _:
                raise InvalidCursorError("cursor was returned by another call")
    pattern = dead_letter_pattern(topic)
    letters: list[DeadLetter] = []
    for _ in range(MAX_DEAD_LETTER_CALLS):
        if shard >= namespace.shards or len(letters) >= limit:
            break
        reply = yield hscan_call(namespace.keyspaces[shard], scan_cursor, pattern, limit)
        next_cursor = codec.text(reply[0])
        batch = sorted((bytes(field), record) for field, record in codec.pairs(list(reply[1:])))
        if next_cursor == ended_at:
            batch = [(field, record) for field, record in batch if field > returned_to]
        wanted = limit - len(letters)
        if len(batch) > wanted:
            letters.extend(codec.dead_letter(field, record) for field, record in batch[:wanted])
            ended_at, returned_to = next_cursor, batch[wanted - 1][0]
            break
        letters.extend(codec.dead_letter(field, record) for field, record in batch)
        scan_cursor, ended_at, returned_to = next_cursor, "", b""
        if scan_cursor == "0":
            shard += 1
    if shard >= namespace.shards:
        return Page(items=letters, cursor=None)
    return Page(items=letters, cursor=paging.encode_cursor(owner, [shard, scan_cursor, ended_at, returned_to]))


def dead_letters_by_topic(namespace: Namespace, topic: str | None = None) -> Flow[dict[str, int]]:
    """How many dead letters each topic has: a whole `HSCAN` pass of each shard, `COUNT` 1000 per call."""
    counts: dict[str, int] = {}
    pattern = dead_letter_pattern(topic)
    for keyspace in namespace.keyspaces:
        cursor = "0"
        while True:
            reply = yield hscan_call(keyspace, cursor, pattern, SCAN_COUNT)
            for field in reply[1::2]:
                name = codec.text(field).partition(DEAD_LETTER_FIELD_SEPARATOR)[0]
                counts[name] = counts.get(name, 0) + 1
            cursor = codec.text(reply[0])
            if cursor == "0":
                break
    return counts


def count_dead_letters(namespace: Namespace, settings: TimersSettings, topic: str | None) -> Flow[int]:
    """All of them: `HLEN` per shard, O(1). One topic's: `dead_letters_by_topic`, O(dead letters) in pages."""
    topic = optional_topic(topic, settings)
    if topic is not None:
        return sum((yield from dead_letters_by_topic(namespace, topic)).values())
    total = 0
    for keyspace in namespace.keyspaces:
        total += int((yield Command(("HLEN", keyspace.dead_letters))))
    return total
