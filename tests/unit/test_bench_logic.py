"""The benchmark's own logic, without a server: idle steady rates, lateness halves, the revision mark, the table."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from benchmarks import cli, cluster, drain, lateness, machine, report
from benchmarks.common import CLUSTER_PRIMARIES, CLUSTER_SHARDS, LEGACY_IMPORT_OFF
from benchmarks.idle import LEGACY_IMPORT, SAFETY, IntervalCounts, steady_rates
from benchmarks.results import Results
from redis_timers import TimersSettings

# -- idle --------------------------------------------------------------------------------


def test_the_steady_idle_rate_adds_each_jobs_commands_at_its_default_interval() -> None:
    # Ten 1 s safety intervals with a PING each, ten 1 s import intervals with one script call each.
    safety = IntervalCounts(SAFETY, 1.0, 10.0, {"ping": 10})
    legacy = IntervalCounts(LEGACY_IMPORT, 1.0, 10.0, {"evalsha": 10, "zrange": 10})

    rates = steady_rates([safety, legacy])

    # A PING every 8 s and an import (EVALSHA running ZRANGE) every 60 s: about 0.16 commands/s in all.
    assert rates == pytest.approx({"evalsha": 1 / 60, "ping": 1 / 8, "zrange": 1 / 60})
    assert sum(rates.values()) == pytest.approx(0.158, abs=0.001)
    assert steady_rates([safety]) == pytest.approx({"ping": 1 / 8})


def test_the_steady_idle_rate_counts_every_command_of_an_interval_by_name() -> None:
    # Should a safety wake-up also claim once, its EVALSHA is counted with the PING, per safety interval.
    safety = IntervalCounts(SAFETY, 0.5, 5.0, {"ping": 10, "evalsha": 10, "zrangebyscore": 10})

    assert steady_rates([safety]) == pytest.approx({"evalsha": 1 / 8, "ping": 1 / 8, "zrangebyscore": 1 / 8})


def test_per_interval_counts_use_the_measured_length_of_the_window() -> None:
    counts = IntervalCounts(SAFETY, 0.25, 1.01, {"ping": 4})

    assert counts.per_interval() == pytest.approx({"ping": 4 / (1.01 / 0.25)})


def test_the_periodic_jobs_default_to_the_librarys_intervals() -> None:
    defaults = TimersSettings()

    assert SAFETY.default_seconds == defaults.safety_wakeup_seconds == 8.0
    assert LEGACY_IMPORT.default_seconds == defaults.legacy_import_interval_seconds == 60.0
    assert SAFETY.setting == "safety_wakeup_seconds"
    assert LEGACY_IMPORT.setting == "legacy_import_interval_seconds"
    off = dataclasses.replace(defaults, legacy_import=bool(LEGACY_IMPORT_OFF["legacy_import"]))
    assert off.legacy_import is False


# -- lateness ----------------------------------------------------------------------------


def test_lateness_counts_early_timers_per_half_beyond_the_clock_uncertainty() -> None:
    records = [
        [1000.0, 1000.0, False],
        [1001.0, 1000.0, False],
        [999.95, 1000.0, True],  # within the 0.1 ms uncertainty: not early
        [999.5, 1000.0, True],  # half a millisecond early: the rounding a relative delay can cause
        [999.0, 1000.0, True],
    ]

    summary = lateness.summarize(records, tolerance_ms=0.1)

    assert summary.early == {"activate_at": 0, "activation_period": 2}
    assert summary.min_ms == pytest.approx(-1.0)
    assert summary.max_ms == pytest.approx(1.0)
    assert summary.p50_ms == pytest.approx(-0.05)


def test_an_early_activate_at_timer_is_counted_in_its_own_half() -> None:
    summary = lateness.summarize([[990.0, 1000.0, False], [1002.0, 1000.0, True]], tolerance_ms=0.5)

    assert summary.early == {"activate_at": 1, "activation_period": 0}


# -- the revision a run measured ---------------------------------------------------------


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "bench@example.invalid")
    git("config", "user.name", "bench")
    for folder in ("redis_timers", "benchmarks"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "code.py").write_text("x = 1\n")
    (tmp_path / "README.md").write_text("readme\n")
    git("add", "-A")
    git("commit", "-qm", "initial")
    return tmp_path


def test_a_clean_tree_is_named_by_its_commit(checkout: Path) -> None:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=checkout, check=True, capture_output=True, text=True
    ).stdout.strip()

    assert machine.library_revision(checkout) == commit


@pytest.mark.parametrize(
    "change",
    [
        "redis_timers/code.py",  # an edit of the library
        "benchmarks/code.py",  # an edit of the benchmark itself
        "benchmarks/new_module.py",  # a new file, not yet added
        "redis_timers/lua/new.lua",  # a new file in a new folder
    ],
)
def test_uncommitted_library_or_benchmark_code_marks_the_revision_dirty(checkout: Path, change: str) -> None:
    path = checkout / change
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x = 2\n")

    revision = machine.library_revision(checkout)

    assert "DIRTY" in revision
    assert "not that commit's" in revision


def test_changes_outside_the_measured_code_leave_the_revision_clean(checkout: Path) -> None:
    (checkout / "README.md").write_text("a pasted table\n")

    assert "DIRTY" not in machine.library_revision(checkout)


def test_a_dirty_revision_is_in_the_tables_header() -> None:
    described = {
        "nproc": 2,
        "cpu": "cpu",
        "python": "CPython",
        "redis_py": "8",
        "server": "valkey 8",
        "os": "linux",
        "date": "today",
        "library": "abc1234 DIRTY (uncommitted changes)",
    }

    table = report.markdown(Results(), cli.parse([])[1], described, 1.0, "uv run python -m benchmarks")

    assert "redis-timers at abc1234 DIRTY" in table.splitlines()[0]


# -- the table ---------------------------------------------------------------------------


def _results() -> Results:
    results = Results()
    for front in ("async", "sync"):
        for impl, value in (("library", 6000.0), ("raw-evalsha", 6000.0), ("raw-evalsha-held", 8000.0)):
            results.add("schedule.rate", front, impl, value)
        for impl, value in (("library", 1.0), ("raw-1ms", 1.0), ("raw-10ms", 5.0)):
            results.add("lateness.p50_ms", front, impl, value)
        for half in ("activate_at", "activation_period"):
            for impl in ("library", "raw-1ms", "raw-10ms"):
                results.add(f"lateness.early.{half}", front, impl, 3.0 if half == "activation_period" else 0.0)
        results.add("idle.commands_per_s", front, "library", 0.158)
        results.add_breakdown("idle.by_command", front, "library", {"ping": 0.125, "evalsha": 0.017})
        results.add("idle.commands_per_s.no_import", front, "library", 0.125)
        for impl, value in (("raw-1ms", 2000.0), ("raw-10ms", 250.0)):
            for suffix in ("", ".no_import"):
                results.add(f"idle.commands_per_s{suffix}", front, impl, value)
                results.add_breakdown(f"idle.by_command{suffix}", front, impl, {"evalsha": value / 3})
    return results


def test_the_table_names_each_raw_poller_by_its_sleep_and_the_held_evalsha() -> None:
    _, config = cli.parse([])
    table = report.markdown(_results(), config, _described(), 1.0, "cmd")

    assert "| schedule | set_timer/s (raw: EVALSHA on a held connection) | 6,000 | 8,000 | 0.75 |" in table
    assert "| lateness | p50 ms (raw: a poller sleeping 1 ms) | 1.00 | 1.00 | 1.00 |" in table
    assert "| lateness | p50 ms (raw: a poller sleeping 10 ms) | 1.00 | 5.00 | 0.20 |" in table
    early = "early, `activation_period` half (must be 0; raw: a poller sleeping 1 ms)"
    assert f"| lateness | {early} | 3 | 3 | - |" in table
    assert "| lateness | early, `activate_at` half (must be 0; raw: a poller sleeping 1 ms) | 0 | 0 | - |" in table
    idle = "Redis commands/s, at the default intervals (raw: a poller sleeping 1 ms)"
    assert f"| idle | {idle} | 0.158 | 2,000.0 |" in table
    assert "| idle | Redis commands/s, legacy import off (raw: a poller sleeping 10 ms) | 0.125 | 250.0 |" in table
    assert "| idle | by command, per second, at the default intervals (raw: a poller sleeping 10 ms) |" in table
    assert "ping 0.125, evalsha 0.017" not in table  # sorted by name
    assert "evalsha 0.017, ping 0.125" in table
    assert "raw: a poller sleeping" not in table.split("| schedule |")[0]


def test_rows_without_a_library_figure_are_left_out() -> None:
    # --no-legacy-import: the library measures no "default intervals" idle row; the pollers' figures stay unpaired.
    results = Results()
    for front in ("async", "sync"):
        results.add("idle.commands_per_s", front, "raw-1ms", 2000.0)
        results.add("idle.commands_per_s.no_import", front, "raw-1ms", 2000.0)
        results.add("idle.commands_per_s.no_import", front, "library", 0.125)

    table = report.markdown(results, cli.parse(["--no-legacy-import"])[1], _described(), 1.0, "cmd")

    assert "at the default intervals" not in table
    assert "legacy import off (raw: a poller sleeping 1 ms) | 0.125 |" in table


def _described() -> dict[str, object]:
    return {
        "nproc": 2,
        "cpu": "cpu",
        "python": "CPython",
        "redis_py": "8",
        "server": "valkey 8",
        "os": "linux",
        "date": "today",
        "library": "abc1234",
    }


# -- the command line --------------------------------------------------------------------


def test_no_legacy_import_is_a_setting_of_the_library_workers() -> None:
    _, default = cli.parse([])
    _, off = cli.parse(["--no-legacy-import"])

    assert default.legacy_import is True
    assert off.legacy_import is False


def test_the_idle_interval_must_fit_the_window(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.parse(["--quick"])[1].idle_interval_seconds == 0.25
    with pytest.raises(SystemExit):
        cli.parse(["--idle-seconds", "1", "--idle-interval", "2"])
    assert "--idle-interval" in capsys.readouterr().err


# -- drain -------------------------------------------------------------------------------


def test_a_drains_commands_leave_out_the_parents_polls_and_info() -> None:
    before = {"evalsha": (10, 100), "zcount": (5, 10), "info": (3, 30)}
    after = {"evalsha": (110, 2100), "zcount": (45, 90), "info": (4, 40), "zadd": (100, 300)}

    delta = drain._own_left_out(drain._delta(before, after), {"zcount": 40, "info": drain.OWN_INFO_CALLS})

    assert delta == {"evalsha": (100, 2000), "zadd": (100, 300)}


def test_the_drain_rows_show_commands_per_fired_timer_by_command_and_the_script_time() -> None:
    _, config = cli.parse(["--fanout", "1"])
    results = Results()
    for front in ("async", "sync"):
        for impl, parts in (("library", {"evalsha": 0.01, "zadd": 0.02}), ("raw", {"evalsha": 0.01, "time": 0.01})):
            results.add("drain.rate.1", front, impl, 1000.0)
            results.add("drain.commands.1", front, impl, sum(parts.values()))
            results.add_breakdown("drain.by_command.1", front, impl, parts)
            results.add("drain.evalsha_us.1", front, impl, 12.5 if impl == "library" else 2.5)

    table = report.markdown(results, config, _described(), 1.0, "cmd")

    figure = "server commands per fired timer, 1 worker process (INFO commandstats; raw: a poller sleeping 1 ms)"
    assert f"| drain | {figure} | 0.030 | 0.020 | 1.50 |" in table
    by_command = "by command, per fired timer, 1 worker process"
    assert f"| drain | {by_command} | evalsha 0.010, zadd 0.020 | evalsha 0.010, time 0.010 |" in table
    usec = "EVALSHA µs per fired timer, 1 worker process (commandstats usec; raw: a poller sleeping 1 ms)"
    assert f"| drain | {usec} | 12.5 | 2.5 | 5.00 |" in table


# -- the cluster scenario ----------------------------------------------------------------


def test_a_primarys_counts_leave_out_the_parents_probes() -> None:
    per = cluster.PerPrimary(2)
    before = [({"evalsha": 10, "info": 5, "zcount": 100}, {"evalsha": 1000}, 1.0)] * 2
    after = [
        ({"evalsha": 40, "ping": 1, "info": 7, "zcount": 300, "cluster|slots": 3}, {"evalsha": 4000}, 1.5),
        ({"evalsha": 20, "hello": 1, "client|setinfo": 2, "command|getkeys": 1}, {"evalsha": 2000}, 1.25),
    ]

    per.add(before, after)

    assert per.commands == [31, 11]  # the client's COMMAND GETKEYS is work it makes the node do
    assert per.cpu_seconds == pytest.approx([0.5, 0.25])
    assert per.evalsha_usec == [3000, 1000]


def test_a_split_is_even_when_every_share_is_within_15_percent_of_its_part() -> None:
    assert report.even([0.34, 0.33, 0.33]) == "yes"
    assert report.even([0.38, 0.31, 0.31]) == "yes"  # 38.0% is within 15% of 33.3% (up to 38.3%)
    assert report.even([0.39, 0.31, 0.30]) == "no"
    assert report.even([0.5, 0.5]) == "yes"


def test_the_cluster_tables_show_each_figure_beside_one_server_and_each_primarys_share() -> None:
    _, config = cli.parse(["--fanout", "1"])
    results = Results()
    for front in ("async", "sync"):
        results.add("cluster.drain.rate.1", front, "library", 9000.0)
        results.add("cluster.drain.rate.1", front, cluster.ONE_SERVER, 12000.0)
        results.add("cluster.lateness.p99_ms", front, "library", 4.0)
        results.add("cluster.lateness.p99_ms", front, cluster.ONE_SERVER, 2.0)
        for index, share in enumerate((0.40, 0.30, 0.30)):
            results.add(f"cluster.share.commands.{index}", front, "library", share)
            results.add(f"cluster.cpu_us.{index}", front, "library", 25.0 + index)

    table = report.markdown(results, config, _described(), 1.0, "cmd")

    assert "| drain | timers/s, 1 worker process | 9,000 | 12,000 | 0.75 | 9,000 | 12,000 | 0.75 |" in table
    assert "| lateness | p99 ms | 4.00 | 2.00 | 2.00 | 4.00 | 2.00 | 2.00 |" in table
    assert "| share of the commands (INFO commandstats) | async | 40.0% | 30.0% | 30.0% | no |" in table
    assert "| server CPU µs per fired timer | sync | 25.0 | 26.0 | 27.0 | - |" in table
    assert "`TIMERS_SHARDS=6`" in table


def test_no_cluster_table_without_cluster_figures() -> None:
    table = report.markdown(_results(), cli.parse([])[1], _described(), 1.0, "cmd")

    assert "Cluster:" not in table


def test_the_cluster_scenario_has_its_own_drain_size_set_by_timers_and_quick() -> None:
    assert cli.parse([])[1].cluster_timers == 10_000
    assert cli.parse(["--quick"])[1].cluster_timers == 200
    assert cli.parse(["--timers", "500"])[1].cluster_timers == 500
    assert "cluster" in cli.parse([])[1].scenarios
    assert CLUSTER_SHARDS % CLUSTER_PRIMARIES == 0
