"""Argument parsing of the `redis-timers` command."""

from __future__ import annotations

import pytest

from redis_timers.cli.main import build_parser, run


def test_version_and_help_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as version:
        run(["--version"])
    assert version.value.code == 0
    assert capsys.readouterr().out.startswith("redis-timers ")
    with pytest.raises(SystemExit) as helped:
        run(["--help"])
    assert helped.value.code == 0
    listing = capsys.readouterr().out
    for command in ("demo", "worker", "bench"):
        assert command in listing


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["demo", "--count", "0"],
        ["demo", "--spread", "-1"],
        ["demo", "--front-end", "threads"],
        ["worker"],
        ["worker", "app:timers", "--concurrency", "0"],
        ["worker", "app:timers", "--log-level", "loud"],
    ],
)
def test_bad_arguments_exit_two(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as failed:
        run(argv)
    assert failed.value.code == 2
    assert "usage: redis-timers" in capsys.readouterr().err


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    demo = build_parser().parse_args(["demo"])
    assert (demo.redis_url, demo.count, demo.spread, demo.front_end, demo.log_level) == (
        None,
        40,
        5.0,
        "async",
        "WARNING",
    )
    worker = build_parser().parse_args(["worker", "app:timers", "--log-level", "debug"])
    assert (worker.target, worker.redis_url, worker.concurrency, worker.log_level) == (
        "app:timers",
        None,
        None,
        "DEBUG",
    )
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6399/1")
    assert build_parser().parse_args(["demo"]).redis_url == "redis://127.0.0.1:6399/1"
