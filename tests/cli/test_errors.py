"""Errors say what happened: a wrong password, a server that never answers or a bad database is one line and exit 2."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from redis_timers.cli.connection_check import authentication_failure, explain
from redis_timers.cli.embedded import EmbeddedServer, free_port
from redis_timers.errors import TimersConnectionError
from tests.cli.conftest import Spawn

PASSWORD = "s3cret-password"  # noqa: S105 - the test server's, set by the fixture below
WRONG = "not-the-password"
COMMANDS = [
    ("worker", "tests.cli.app:async_timers"),
    ("worker", "tests.cli.app:async_timers_with_threads"),
    ("worker", "tests.cli.app:sync_timers"),
    ("demo", "--front-end=async"),
    ("demo", "--front-end=sync"),
]


@pytest.fixture(scope="module")
def protected_server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as server:
        client = redis.Redis(host=server.host, port=server.port)
        client.config_set("requirepass", PASSWORD)
        client.close()
        yield server


@pytest.fixture
def paused_server() -> Iterator[EmbeddedServer]:
    """A real server that accepts connections and never answers a command (every client is paused)."""
    with EmbeddedServer() as server:
        client = redis.Redis(host=server.host, port=server.port)
        client.client_pause(120_000, all=True)
        client.close()
        yield server


def assert_one_clear_line(output: str, expected: str) -> None:
    assert expected in output, output
    assert "Traceback" not in output, output
    assert sum(1 for line in output.splitlines() if expected in line) == 1, output


@pytest.mark.parametrize(("command", "what"), COMMANDS)
def test_a_wrong_password_fails_fast_saying_authentication_failed(
    spawn: Spawn, protected_server: EmbeddedServer, command: str, what: str
) -> None:
    url = f"redis://:{WRONG}@127.0.0.1:{protected_server.port}/0"
    started = time.monotonic()
    process = spawn(command, what, "--redis-url", url)

    assert process.wait_exit(timeout=30) == 2, process.output
    assert time.monotonic() - started < 20
    assert_one_clear_line(process.output, "authentication failed")
    assert WRONG not in process.output


def test_a_wrong_password_in_the_apps_own_client_fails_fast_too(spawn: Spawn, protected_server: EmbeddedServer) -> None:
    worker = spawn(
        "worker", "tests.cli.app:sync_timers", REDIS_URL=f"redis://:{WRONG}@127.0.0.1:{protected_server.port}/0"
    )

    assert worker.wait_exit(timeout=30) == 2, worker.output
    assert_one_clear_line(worker.output, "authentication failed")


def test_the_right_password_works(spawn: Spawn, protected_server: EmbeddedServer) -> None:
    demo = spawn(
        "demo",
        "--count",
        "2",
        "--spread",
        "0.1",
        "--redis-url",
        f"redis://:{PASSWORD}@127.0.0.1:{protected_server.port}/0",
    )

    assert demo.wait_exit() == 0, demo.output
    assert PASSWORD not in demo.output


@pytest.mark.parametrize(("command", "what"), COMMANDS)
def test_a_server_that_never_answers_is_said_within_the_connect_timeout(
    spawn: Spawn, paused_server: EmbeddedServer, command: str, what: str
) -> None:
    started = time.monotonic()
    process = spawn(command, what, "--redis-url", paused_server.url, "--connect-timeout", "1")

    assert process.wait_exit(timeout=30) == 2, process.output
    assert time.monotonic() - started < 20
    assert_one_clear_line(process.output, f"Redis at {paused_server.url} did not answer within 1s")


@pytest.mark.parametrize(("command", "what"), [COMMANDS[0], COMMANDS[2], COMMANDS[3]])
def test_a_database_the_server_does_not_have_is_said(spawn: Spawn, redis_url: str, command: str, what: str) -> None:
    url = redis_url.rsplit("/", 1)[0] + "/999"
    process = spawn(command, what, "--redis-url", url)

    assert process.wait_exit(timeout=30) == 2, process.output
    assert_one_clear_line(process.output, "DB index is out of range")


def test_nothing_listening_is_said(spawn: Spawn) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    worker = spawn("worker", "tests.cli.app:sync_timers", "--redis-url", url)

    assert worker.wait_exit(timeout=30) == 2, worker.output
    assert_one_clear_line(worker.output, f"cannot reach Redis at {url}")


def raise_as_a_worker_does(cause: Exception) -> None:
    """What a worker's round trip raises today when the password is refused mid-run: the library's connection
    error, caused by redis-py's AuthenticationError."""
    try:
        raise cause
    except redis.exceptions.ConnectionError as error:
        raise TimersConnectionError(f"Redis is unreachable: {error}") from error


def test_an_authentication_failure_is_found_behind_the_librarys_connection_error() -> None:
    cause = redis.exceptions.AuthenticationError("invalid username-password pair or user is disabled.")
    with pytest.raises(TimersConnectionError) as caught:
        raise_as_a_worker_does(cause)

    assert authentication_failure(caught.value) is cause
    assert explain(caught.value, "redis://127.0.0.1:6379/0") == (
        "authentication failed at redis://127.0.0.1:6379/0: invalid username-password pair or user is disabled."
    )
    assert authentication_failure(TimersConnectionError("Redis is unreachable: refused")) is None
    assert explain(redis.exceptions.ResponseError("DB index is out of range"), "here") == (
        "Redis at here refused: DB index is out of range"
    )


@pytest.mark.parametrize("attribute", ["async_timers", "sync_timers"])
def test_a_password_changed_under_a_running_worker_ends_it_saying_authentication_failed(
    spawn: Spawn, attribute: str
) -> None:
    with EmbeddedServer() as server:
        admin = redis.Redis(host=server.host, port=server.port)
        admin.config_set("requirepass", PASSWORD)
        admin = redis.Redis(host=server.host, port=server.port, password=PASSWORD)
        url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
        worker = spawn("worker", f"tests.cli.app:{attribute}", "--redis-url", url)
        worker.wait_for("redis-timers worker starting")

        admin.config_set("requirepass", "rotated-password")
        admin.client_kill_filter(_type="normal", skipme=True)  # its connections must log in again

        assert worker.wait_exit(timeout=30) == 1, worker.output
        admin.close()
    # The library logs why its loop stopped; the command says, once, why it exits.
    assert_one_clear_line(worker.output, "redis-timers worker failed: authentication failed at redis://:***@")
    assert PASSWORD not in worker.output
