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
        ["demo", "--spread", "inf"],
        ["demo", "--spread", "nan"],
        ["demo", "--spread", "1e400"],
        ["demo", "--connect-timeout", "inf"],
        ["worker", "app:timers", "--connect-timeout", "0"],
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


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("localhost:6379", "must specify one of the following schemes"),
        ("127.0.0.1:6379/0", "must specify one of the following schemes"),
        ("redis://:hunter2@127.0.0.1:6379/abc", "must be a database number"),
        ("redis://:hunter2@127.0.0.1:6379/-1", "must be >= 0"),
        ("redis://:hunter2@127.0.0.1:notaport/0", "Port could not be cast to integer"),
        ("redis://:hunter2@127.0.0.1:6379/0?db=x", "Invalid value for 'db'"),
    ],
)
@pytest.mark.parametrize("command", [["demo"], ["worker", "app:timers"]])
def test_a_bad_redis_url_is_one_line_and_exit_two(
    url: str, said: str, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as failed:
        run([*command, "--redis-url", url])

    assert failed.value.code == 2
    error = capsys.readouterr().err
    [line] = [line for line in error.splitlines() if "error:" in line]
    assert "argument --redis-url" in line
    assert said in line
    assert "hunter2" not in error


def test_a_bad_redis_url_in_the_environment_is_refused_by_the_demo(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", "localhost:6379")

    with pytest.raises(SystemExit) as failed:
        build_parser().parse_args(["demo"])

    assert failed.value.code == 2
    assert "must specify one of the following schemes" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--redis-urll=redis://:s3cret@127.0.0.1:6379/0"],  # a typo in the option's name
        ["demo", "redis://app:s3cret@127.0.0.1:6379/0"],  # the URL without its option
        ["worker", "app:timers", "--redis-url", "redis://:s3cret@127.0.0.1:6379/0", "unix:///r.sock?password=s3cret"],
    ],
)
def test_a_misplaced_url_is_shown_without_its_password(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run(argv)

    assert exited.value.code == 2
    shown = capsys.readouterr().err
    assert "unrecognized arguments" in shown
    assert "***" in shown
    assert "s3cret" not in shown
