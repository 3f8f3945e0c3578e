"""What the ops commands and the dashboard show: records as JSON objects (stable field names, documented in
docs/operations.md), as terminal tables, and due-time histograms drawn as bars.

Topics and ids may hold any text: on a terminal they are shown with control characters escaped (an id must not
move the cursor or clear the screen); in JSON they are kept exactly as stored.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Sequence
from typing import Any

from redis_timers.records import DeadLetter

BAR = "█"
BAR_WIDTH = 40


def iso(moment: datetime.datetime | None) -> str | None:
    """UTC, to the millisecond, with a `Z`: `2026-01-02T03:04:05.678Z`."""
    if moment is None:
        return None
    utc = moment.astimezone(datetime.timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def seconds(span: datetime.timedelta) -> float:
    return span.total_seconds()


def timer_json(timer: Any) -> dict[str, Any]:
    """A `ScheduledTimer` (or `TimerInfo`, whose payload is a model) as the CLI and the dashboard print it."""
    payload = timer.payload if isinstance(timer.payload, str) else timer.payload.model_dump_json()
    return {
        "topic": timer.topic,
        "timer_id": timer.timer_id,
        "due_at": iso(timer.due_at),
        "payload": payload,
        "attempts": timer.attempts,
        "running": timer.running,
        "lease_expires_at": iso(timer.lease_expires_at),
        "last_error": timer.last_error,
    }


def dead_letter_json(letter: DeadLetter) -> dict[str, Any]:
    return {
        "topic": letter.topic,
        "timer_id": letter.timer_id,
        "payload": letter.payload,
        "attempts": letter.attempts,
        "error": letter.error,
        "failed_at": iso(letter.failed_at),
    }


STAT_FIELDS = ("pending", "due_now", "overdue", "running", "dead")
STAT_TIMES = ("next_due_at", "oldest_overdue_at")


def topic_stats_json(stats: Any) -> dict[str, Any]:
    """A `TopicStats`, or the totals of a `TimersStats` (same fields)."""
    counts: dict[str, Any] = {name: int(getattr(stats, name)) for name in STAT_FIELDS}
    counts.update({name: iso(getattr(stats, name)) for name in STAT_TIMES})
    return counts


def stats_json(stats: Any) -> dict[str, Any]:
    return {
        "server_time": iso(stats.server_time),
        "totals": topic_stats_json(stats),
        "topics": {topic: topic_stats_json(each) for topic, each in sorted(stats.topics.items())},
    }


def histogram_json(histogram: Any) -> dict[str, Any]:
    return {
        "start": iso(histogram.start),
        "bucket_seconds": seconds(histogram.bucket),
        "counts": list(histogram.counts),
        "overdue": histogram.overdue,
    }


LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def json_text(value: object) -> str:
    """`value` as JSON that is valid UTF-8 whatever it holds. Non-ASCII text stays as it is, but a byte Redis held
    that is not UTF-8 (read as a lone surrogate, Python's `surrogateescape`, which UTF-8 cannot encode) becomes the
    escape `\\udcXX`, from which `json.loads` gives the same string back. Lone surrogates only occur inside
    JSON strings, so escaping them in the finished text is exact."""
    text = json.dumps(value, ensure_ascii=False)
    return LONE_SURROGATE.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def shown(text: str) -> str:
    """`text` safe on a terminal: control characters (escape, newline, tab, DEL, ...) as Python escapes."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    widths: list[int] | None = None,
    with_headers: bool = True,
) -> str:
    """Left-aligned columns separated by two spaces; None shows as `-`. A table printed page by page passes the
    same `widths` list to each page (columns only widen) and `with_headers` for the first alone."""
    cells = [[shown("-" if cell is None else str(cell)) for cell in row] for row in rows]
    page_widths = [max([len(header)] + [len(row[index]) for row in cells]) for index, header in enumerate(headers)]
    if widths is not None:
        page_widths = [max(pair) for pair in zip(widths, page_widths)] if widths else page_widths
        widths[:] = page_widths
    lines = (
        ["  ".join(header.ljust(width) for header, width in zip(headers, page_widths)).rstrip()] if with_headers else []
    )
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, page_widths)).rstrip() for row in cells]
    return "\n".join(lines)


def timers_table(timers: Sequence[Any], **layout: Any) -> str:
    rows = [
        (
            timer.topic,
            timer.timer_id,
            iso(timer.due_at),
            timer.attempts,
            "yes" if timer.running else "no",
            iso(timer.lease_expires_at),
            timer.last_error,
        )
        for timer in timers
    ]
    return table(("TOPIC", "ID", "DUE AT", "ATTEMPTS", "RUNNING", "LEASE EXPIRES", "LAST ERROR"), rows, **layout)


def dead_letters_table(letters: Sequence[DeadLetter], **layout: Any) -> str:
    rows = [(letter.topic, letter.timer_id, iso(letter.failed_at), letter.attempts, letter.error) for letter in letters]
    return table(("TOPIC", "ID", "FAILED AT", "ATTEMPTS", "ERROR"), rows, **layout)


def stats_table(stats: Any) -> str:
    headers = ("TOPIC", "PENDING", "DUE NOW", "OVERDUE", "RUNNING", "DEAD", "NEXT DUE", "OLDEST OVERDUE")

    def row(name: str, each: Any) -> tuple[object, ...]:
        counts = tuple(getattr(each, field) for field in STAT_FIELDS)
        return (name, *counts, iso(each.next_due_at), iso(each.oldest_overdue_at))

    rows = [row(topic, each) for topic, each in sorted(stats.topics.items())]
    rows.append(row("(all)", stats))
    return f"server time {iso(stats.server_time)}\n" + table(headers, rows)


def _span(span: datetime.timedelta) -> str:
    whole = int(span.total_seconds())
    if whole == 0:
        return "0"
    if whole % 3600 == 0:
        return f"{whole // 3600}h"
    if whole % 60 == 0:
        return f"{whole // 60}m"
    return f"{span.total_seconds():g}s"


def histogram_chart(title: str, histogram: Any, width: int = BAR_WIDTH) -> str:
    """One line per bucket: its start as an offset from now, a bar scaled to the largest count, the count."""
    counts = list(histogram.counts)
    labels = [f"+{_span(histogram.bucket * index)}" for index in range(len(counts))]
    overdue_label = "overdue"
    label_width = max(len(label) for label in [*labels, overdue_label])
    largest = max([*counts, histogram.overdue, 1])

    def line(label: str, count: int) -> str:
        bar = BAR * (round(count * width / largest) if count else 0)
        if count and not bar:
            bar = BAR  # a bucket holding anything shows at least one block
        return f"  {label.rjust(label_width)} {bar.ljust(width)} {count}".rstrip()

    total = sum(counts)
    lines = [f"{title}: {total} due, by {_span(histogram.bucket)} from {iso(histogram.start)}"]
    lines.append(line(overdue_label, histogram.overdue))
    lines += [line(label, count) for label, count in zip(labels, counts)]
    return "\n".join(lines)
