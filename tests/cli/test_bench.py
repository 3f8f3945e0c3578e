"""`redis-timers bench ...` forwards to `python -m benchmarks` where the benchmark package can be found."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from redis_timers.cli.bench import run_bench
from tests.cli.conftest import Spawn
from tests.cli.processes import ROOT


def test_bench_forwards_every_argument_and_the_exit_code(spawn: Spawn, tmp_path: Path) -> None:
    package = tmp_path / "benchmarks"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text("import sys\nprint('benchmark args', sys.argv[1:])\nraise SystemExit(3)\n")

    bench = spawn("bench", "--quick", "--help", "--json", "out.json", cwd=tmp_path)

    assert bench.wait_exit() == 3, bench.output
    assert bench.lines == ["benchmark args ['--quick', '--help', '--json', 'out.json']"]


def test_bench_explains_where_the_benchmark_lives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As from an installed wheel: the source checkout (which an editable install puts on sys.path) is not there.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if entry not in ("", str(ROOT))])
    monkeypatch.delitem(sys.modules, "benchmarks", raising=False)

    assert run_bench(["--quick"]) == 2
    explained = capsys.readouterr().err
    assert "python -m benchmarks" in explained
    assert "source repository" in explained
