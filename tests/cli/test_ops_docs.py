"""docs/operations.md "Command line" and "Dashboard": the tables are the parsers' flags, the exit codes and the
JSON the commands print; each behaviour the bullets state is shown by the test named for it in `STATED_BY`."""

from __future__ import annotations

import argparse
import datetime
import io
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from redis_timers.cli import ops
from redis_timers.cli.main import build_parser
from redis_timers.cli.ops_parser import DESTRUCTIVE, OPS_COMMANDS, moment
from tests.cli import test_dashboard, test_dashboard_browser, test_ops, test_ops_hostile
from tests.cli.ops_world import FAILING, PLAIN, World, world
from tests.cli.processes import ROOT
from tests.cli.test_synopsis import subcommands

OPERATIONS = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
COMMAND_LINE = OPERATIONS.split("\n## Command line\n", 1)[1].split("\n## ", 1)[0]
DASHBOARD = OPERATIONS.split("\n## Dashboard\n", 1)[1].split("\n## ", 1)[0]
COMMANDS = [name for name in OPS_COMMANDS if name != "dashboard"]


def flags_of(parser: argparse.ArgumentParser) -> set[str]:
    return {
        max(action.option_strings, key=len)
        for action in parser._actions
        if action.option_strings and not isinstance(action, argparse._HelpAction)
    }


def table_rows(section: str, header: str) -> list[list[str]]:
    """The rows of the markdown table whose header row starts with `| header |`, as cells."""
    lines = section.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def ticked(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


PARSERS = subcommands(build_parser())
COMMON = set.intersection(*(flags_of(PARSERS[name]) for name in COMMANDS))


def test_the_common_flags_are_the_ones_every_ops_command_takes() -> None:
    sentence = COMMAND_LINE.split("Each takes the common flags ", 1)[1].split(";", 1)[0]
    assert set(ticked(sentence)) == COMMON
    assert flags_of(PARSERS["dashboard"]) >= COMMON - {"--json"}
    assert "--json" not in flags_of(PARSERS["dashboard"])  # "It takes the common flags but `--json`"
    assert flags_of(PARSERS["dashboard"]) - COMMON == {"--host", "--port", "--interval"}


def test_the_command_table_lists_each_command_with_its_own_flags() -> None:
    rows = table_rows(COMMAND_LINE, "command")
    assert [ticked(row[0])[0].split()[0] for row in rows] == COMMANDS
    for row in rows:
        name = ticked(row[0])[0].split()[0]
        assert set(ticked(row[2])) == flags_of(PARSERS[name]) - COMMON, name
        assert ("(writes)" in row[1]) == (name in DESTRUCTIVE)


def test_the_defaults_and_ranges_stated() -> None:
    ls = PARSERS["ls"].parse_args([])
    assert ls.limit == 100
    assert "`--limit` is 1 to 1,000 per page (default 100)" in COMMAND_LINE
    assert PARSERS["stats"].parse_args([]).interval == 2.0
    dashboard = PARSERS["dashboard"].parse_args([])
    assert (dashboard.host, dashboard.port, dashboard.interval) == ("127.0.0.1", 8000, 2.0)
    assert "--port 0" not in COMMAND_LINE
    assert "`--port` (0 picks a free one)" in DASHBOARD
    # The examples of times parse: relative ones from now, an absolute one with its offset.
    now = datetime.datetime.now(datetime.timezone.utc)
    for example, span in [("+10m", 600), ("-1h", -3600), ("+30s", 30), ("+2d", 172800)]:
        assert abs((moment(example) - now).total_seconds() - span) < 60
    assert moment("2026-01-02T03:04:05Z") == datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    assert ops.HISTOGRAMS == {"next_hour": (ops.HOUR, 12), "next_day": (ops.DAY, 24)}
    assert "the next hour (12 buckets of 5 minutes) and the next day (24 of an hour)" in COMMAND_LINE


def test_the_exit_codes_table() -> None:
    codes = {int(row[0]) for row in table_rows(COMMAND_LINE, "exit code")}
    assert codes == {ops.OK, ops.NOT_FOUND, ops.USAGE, ops.INTERRUPTED, ops.READER_GONE} == {0, 1, 2, 130, 141}


@pytest.fixture
def timers_world(client: redis.Redis) -> Iterator[World]:
    with world(client, running=1, dead=2) as made:
        yield made


def printed(redis_url: str, *argv: str) -> Any:
    out = io.StringIO()
    args = build_parser().parse_args([*argv, "--redis-url", redis_url, "--json"])
    assert ops.run_ops(args, out) == 0
    return json.loads(out.getvalue())


def test_the_json_fields_table_is_what_the_commands_print(redis_url: str, timers_world: World) -> None:
    documented = {row[0]: ticked(row[1]) for row in table_rows(COMMAND_LINE, "output")}

    def fields(label_start: str) -> list[str]:
        [fields] = [value for label, value in documented.items() if label.startswith(label_start)]
        return fields

    stats = printed(redis_url, "stats")
    listed = printed(redis_url, "ls")
    dead = printed(redis_url, "dead")
    assert list(stats) == fields("`stats`")
    assert list(listed) == fields("`ls`")
    assert list(dead) == fields("`dead`")
    assert list(listed["timers"][0]) == fields("a timer")
    assert list(printed(redis_url, "get", PLAIN, "job-later")) == fields("a timer")
    assert list(dead["dead_letters"][0]) == fields("a dead letter")
    assert list(stats["totals"]) == fields("counts") == list(stats["topics"][PLAIN])
    assert list(stats["histograms"]) == ["next_hour", "next_day"]
    assert list(stats["histograms"]["next_day"]) == fields("a histogram")
    assert list(printed(redis_url, "cancel", PLAIN, "job-later", "--yes")) == fields("`cancel`")
    assert list(printed(redis_url, "requeue", FAILING, timers_world.dead[0], "--yes")) == fields("`requeue`")
    assert list(printed(redis_url, "purge", "--yes")) == fields("`purge`")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stats["server_time"])
    assert "2026-01-02T03:04:05.678Z" in COMMAND_LINE


STATED_BY: dict[str, list[Callable[..., object]]] = {
    # docs/operations.md "Command line"
    "They run on the blocking front end, with no handlers, so they see every topic": [
        test_ops.test_get_shows_a_timer_of_any_topic_and_exits_1_for_a_missing_one,
        test_ops.test_ls_json_lists_every_pending_and_running_timer_with_its_text_exactly,
    ],
    "`--redis-url`\ndefaults to `$REDIS_URL`, `--namespace` and `--shards` to `TIMERS_NAMESPACE` and": [
        test_ops.test_namespace_and_shards_from_flags_or_timers_variables,
        test_ops.test_no_redis_exits_2_as_the_worker_does,
    ],
    "`--cluster` makes the\n`--redis-url` a node of a Redis Cluster": [
        test_ops.test_ops_commands_on_a_cluster_read_every_shard
    ],
    "running ones included (at their leases' ends)": [test_ops.test_ls_running_shows_lease_and_attempts],
    "a time without an offset is refused. `--running` lists only the timers a worker runs\n  now.": [
        test_ops.test_bad_input_exits_2_with_one_line,
        test_ops.test_ls_running_shows_lease_and_attempts,
        test_ops.test_ls_by_topic_and_due_window,
    ],
    "When more follow, the table ends with the `--cursor` to pass for the\n  next page": [
        test_ops.test_ls_pages_follow_the_cursor_it_prints,
        test_ops.test_dead_lists_dead_letters_with_their_errors_paged,
    ],
    "`--all` reads every page in\n  turn": [test_ops.test_ops_commands_on_a_cluster_read_every_shard],
    "`stats --watch` redraws in place (ANSI: cursor home, clear screen)": [
        test_ops.test_stats_watch_redraws_in_place_until_sigint_then_exits_130
    ],
    "with\n  `--json` it prints one JSON object per line per refresh instead.": [
        test_ops.test_stats_watch_json_prints_one_object_per_line_per_refresh
    ],
    "`cancel`, `requeue` and `purge` ask `...? [y/N]` on stderr when stdin is a terminal": [
        test_ops.test_cancel_on_a_terminal_asks_and_does_it_only_on_yes
    ],
    "Without `--yes` and with stdin not a terminal (a script, a pipe, CI) they refuse": [
        test_ops.test_destructive_commands_refuse_without_yes_when_stdin_is_not_a_terminal
    ],
    "Tables show topics and ids with control characters escaped": [
        test_ops.test_ls_table_escapes_control_characters,
        test_ops.test_ls_json_lists_every_pending_and_running_timer_with_its_text_exactly,
    ],
    "a command reports an error in one line on stderr, starting with\n  `redis-timers COMMAND:`": [
        test_ops.test_bad_input_exits_2_with_one_line,
        test_ops.test_requeue_with_yes_and_a_missing_dead_letter_exits_1,
    ],
    "| 1 | not found:": [
        test_ops.test_get_shows_a_timer_of_any_topic_and_exits_1_for_a_missing_one,
        test_ops.test_cancel_with_yes_removes_the_timer_and_a_missing_one_exits_1,
        test_ops.test_requeue_with_yes_and_a_missing_dead_letter_exits_1,
        test_ops.test_cancel_on_a_terminal_asks_and_does_it_only_on_yes,
    ],
    "| 2 | bad input": [
        test_ops.test_bad_input_exits_2_with_one_line,
        test_ops.test_no_redis_exits_2_as_the_worker_does,
        test_ops.test_ops_commands_on_a_cluster_read_every_shard,
    ],
    "printing each before it reads the next, so it holds one page at a time": [
        test_ops_hostile.test_ls_all_prints_each_page_before_reading_the_next
    ],
    "| 141 | whatever reads the output went away": [
        test_ops_hostile.test_a_reader_that_goes_away_ends_the_listing_quietly
    ],
    "A Redis that goes away\n  (unreachable, or loading after a restart) does not end it": [
        test_ops_hostile.test_stats_watch_outlives_the_server_going_away_and_coming_back
    ],
    "is the escape `\\udcXX` in the JSON": [
        test_ops_hostile.test_json_of_bytes_that_are_not_utf8_is_utf8_and_gives_the_bytes_back,
        test_ops_hostile.test_the_dashboard_serves_bytes_that_are_not_utf8,
    ],
    "`cancel` removes a timer whose stored payload no longer reads": [
        test_ops_hostile.test_cancel_removes_a_timer_whose_payload_no_longer_reads
    ],
    "control characters escaped as in the tables": [
        test_ops_hostile.test_errors_are_one_line_without_control_characters
    ],
    # docs/operations.md "Dashboard"
    "serves a read-only\nweb page of the namespace": [
        test_dashboard.test_snapshot_has_the_stats_histograms_running_timers_and_dead_letters_exactly,
        test_dashboard_browser.test_the_dashboard_in_headless_chromium_shows_what_the_test_scheduled,
    ],
    "the script\n  fetches `/api/snapshot`": [test_dashboard.test_the_page_holds_no_data_and_serves_only_reads],
    "It binds to 127.0.0.1 by default and prints so": [
        test_dashboard.test_dashboard_binds_to_loopback_by_default_and_says_so,
        test_dashboard.test_dashboard_warns_when_bound_elsewhere_and_exits_130_after_sigint,
    ],
    "It answers GET alone (other methods get 501)": [test_dashboard.test_the_page_holds_no_data_and_serves_only_reads],
    "Every stored string (topics, ids, payloads, errors) is put in place as text": [
        test_dashboard.test_the_page_holds_no_data_and_serves_only_reads,
        test_dashboard_browser.test_the_dashboard_in_headless_chromium_shows_what_the_test_scheduled,
    ],
    "it answers only requests whose `Host` is": [
        test_ops_hostile.test_the_dashboard_answers_only_requests_for_a_loopback_host
    ],
    "SIGTERM stops it with exit code 0, SIGINT with 130": [
        test_dashboard.test_dashboard_binds_to_loopback_by_default_and_says_so,
        test_dashboard.test_dashboard_warns_when_bound_elsewhere_and_exits_130_after_sigint,
        test_dashboard.test_a_port_in_use_exits_2_in_one_line,
    ],
}


def test_each_stated_behaviour_is_in_the_docs_and_has_its_tests() -> None:
    for statement, tests in STATED_BY.items():
        assert statement in OPERATIONS, statement
        assert tests
        assert all(callable(test) and test.__name__.startswith("test_") for test in tests)


def test_the_dashboard_imports_only_the_standard_library() -> None:
    import ast
    import sys

    for module in ("dashboard", "dashboard_page"):
        tree = ast.parse((ROOT / "redis_timers" / "cli" / f"{module}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top == "redis_timers" or top in sys.stdlib_module_names, name


README = (ROOT / "README.md").read_text(encoding="utf-8")
README_STATED_BY: dict[str, list[Callable[..., object]]] = {
    "look at a namespace's timers and dead letters (any topic, no handlers needed)": STATED_BY[
        "They run on the blocking front end, with no handlers, so they see every topic"
    ],
    "`cancel`, `requeue` and `purge` ask before they write, and refuse without\n`--yes` where they cannot ask.": [
        test_ops.test_cancel_on_a_terminal_asks_and_does_it_only_on_yes,
        test_ops.test_destructive_commands_refuse_without_yes_when_stdin_is_not_a_terminal,
    ],
    "`stats` draws the due-time histograms of the next hour and day,\nand `stats --watch` redraws in place.": [
        test_ops.test_stats_draws_the_histograms_in_the_terminal,
        test_ops.test_stats_watch_redraws_in_place_until_sigint_then_exits_130,
    ],
    "(0 done, 1 not\nfound, 2 bad input or no usable Redis)": [test_the_exit_codes_table],
    "serves a read-only web page: totals, stats per topic,": STATED_BY["serves a read-only\nweb page of the namespace"],
    "refreshing itself every `--interval` seconds (default 2)": [
        test_dashboard_browser.test_the_dashboard_in_headless_chromium_shows_what_the_test_scheduled,
        test_the_defaults_and_ranges_stated,
    ],
    "It needs nothing beyond the\nstandard library.": [test_the_dashboard_imports_only_the_standard_library],
    "It listens on 127.0.0.1:8000 unless `--host` and `--port` say otherwise, and\nwarns when bound to another "
    "address": [
        test_the_defaults_and_ranges_stated,
        test_dashboard.test_dashboard_warns_when_bound_elsewhere_and_exits_130_after_sigint,
    ],
}


def test_each_readme_statement_is_there_and_has_its_tests() -> None:
    for statement, tests in README_STATED_BY.items():
        assert statement in README, statement
        assert tests
