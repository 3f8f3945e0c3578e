"""What the ops commands draw on a terminal, from records built here (no Redis)."""

from __future__ import annotations

import datetime

from redis_timers.cli import render
from redis_timers.records import DueHistogram, ScheduledTimer, TimersStats, TopicStats

START = datetime.datetime(2026, 1, 2, 3, 0, tzinfo=datetime.timezone.utc)


def test_shown_escapes_control_characters_and_keeps_the_rest() -> None:
    assert render.shown("plain-ünï©ode-🎉<b>") == "plain-ünï©ode-🎉<b>"
    assert render.shown("esc\x1b[2J tab\t nl\n del\x7f") == "esc\\x1b[2J tab\\t nl\\n del\\x7f"


def test_table_pads_columns_and_shows_none_as_a_dash() -> None:
    drawn = render.table(("A", "LONGER"), [("xyz", None), ("\x1b", 7)])
    assert drawn.splitlines() == ["A     LONGER", "xyz   -", "\\x1b  7"]


def test_histogram_bars_scale_to_the_largest_count_and_a_nonzero_bucket_shows() -> None:
    histogram = DueHistogram(start=START, bucket=datetime.timedelta(minutes=5), counts=[0, 100, 1, 50], overdue=0)
    lines = render.histogram_chart("next hour", histogram, width=10).splitlines()

    assert lines[0] == "next hour: 151 due, by 5m from 2026-01-02T03:00:00.000Z"
    assert lines[1:] == [
        "  overdue            0",  # counts in one column, after the widest bar
        "       +0            0",
        "      +5m ██████████ 100",
        "     +10m █          1",
        "     +15m █████      50",
    ]


def test_hour_labels_and_an_empty_histogram() -> None:
    histogram = DueHistogram(start=START, bucket=datetime.timedelta(hours=1), counts=[0, 0, 0], overdue=0)
    lines = render.histogram_chart("next day", histogram).splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["overdue", "+0", "+1h", "+2h"]
    assert all(line.endswith(" 0") and "█" not in line for line in lines[1:])


def test_stats_table_has_a_row_per_topic_and_the_totals() -> None:
    one = TopicStats(pending=3, due_now=1, overdue=1, running=0, dead=2, next_due_at=START, oldest_overdue_at=START)
    other = TopicStats(pending=1, due_now=0, overdue=0, running=4, dead=0, next_due_at=None, oldest_overdue_at=None)
    stats = TimersStats(server_time=START, topics={"b-topic": other, "a-topic": one})
    lines = render.stats_table(stats).splitlines()

    assert lines[0] == "server time 2026-01-02T03:00:00.000Z"
    assert [line.split()[:6] for line in lines[2:]] == [
        ["a-topic", "3", "1", "1", "0", "2"],
        ["b-topic", "1", "0", "0", "4", "0"],
        ["(all)", "4", "1", "1", "4", "2"],
    ]
    assert render.stats_json(stats)["totals"]["next_due_at"] == "2026-01-02T03:00:00.000Z"


def test_timer_json_keeps_the_payload_text_as_stored() -> None:
    timer = ScheduledTimer(
        topic="t",
        timer_id="<i>\x00",
        due_at=START,
        payload='{"a": 1}',
        attempts=2,
        running=True,
        lease_expires_at=START + datetime.timedelta(seconds=30),
        last_error=None,
    )
    assert render.timer_json(timer) == {
        "topic": "t",
        "timer_id": "<i>\x00",
        "due_at": "2026-01-02T03:00:00.000Z",
        "payload": '{"a": 1}',
        "attempts": 2,
        "running": True,
        "lease_expires_at": "2026-01-02T03:00:30.000Z",
        "last_error": None,
    }
