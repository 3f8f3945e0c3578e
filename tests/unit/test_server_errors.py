"""Which error replies are outages and which are permanent: a pure function of the reply's code."""

from __future__ import annotations

import pytest
import redis.exceptions

from redis_timers import server_errors
from redis_timers.errors import (
    TimersAuthenticationError,
    TimersConnectionError,
    TimersError,
    TimersOutOfMemoryError,
    TimersPermissionError,
    TimersServerError,
    TimersUnavailableError,
)

REPLIES = [
    ("READONLY You can't write against a read only replica.", TimersUnavailableError),
    ("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.", TimersUnavailableError),
    ("LOADING Redis is loading the dataset in memory", TimersUnavailableError),
    ("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", TimersUnavailableError),
    ("TRYAGAIN Multiple keys request during rehashing of slot", TimersUnavailableError),
    ("CLUSTERDOWN The cluster is down", TimersUnavailableError),
    ("MOVED 3999 127.0.0.1:6381", TimersUnavailableError),
    ("ASK 3999 127.0.0.1:6381", TimersUnavailableError),
    ("NOREPLICAS Not enough good replicas to write.", TimersUnavailableError),
    (
        "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.",
        TimersUnavailableError,
    ),
    ("OOM command not allowed when used memory > 'maxmemory'.", TimersOutOfMemoryError),
    ("NOPERM User app has no permissions to access the '{timers}:dead' key", TimersPermissionError),
    ("WRONGPASS invalid username-password pair or user is disabled.", TimersAuthenticationError),
    ("NOAUTH Authentication required.", TimersAuthenticationError),
    ("WRONGTYPE Operation against a key holding the wrong kind of value script: 1f2e, on @user_script:3.", None),
    ("ERR unknown command 'EVALSHA'", None),
    ("NOSCRIPT No matching script.", None),
    ("", None),
    ("readonly lower case is not a code", None),
]


@pytest.mark.parametrize(("reply", "expected"), REPLIES, ids=[reply.split(" ")[0] or "empty" for reply, _ in REPLIES])
def test_each_reply_gets_its_class(reply: str, expected: type[TimersServerError] | None) -> None:
    kind = server_errors.error_class(reply)

    assert kind is (expected or TimersServerError)
    error = kind(reply)
    assert isinstance(error, TimersError)
    assert error.reply == reply
    assert reply in str(error)


def test_outages_and_memory_pass_on_their_own_the_rest_does_not() -> None:
    assert TimersUnavailableError.transient
    assert TimersOutOfMemoryError.transient
    assert not TimersServerError.transient
    assert not TimersPermissionError.transient
    assert not TimersAuthenticationError.transient

    assert server_errors.is_outage(TimersConnectionError("down"))
    assert server_errors.is_outage(TimersUnavailableError("BUSY running a script"))
    assert server_errors.is_outage(TimersOutOfMemoryError("OOM over maxmemory"))
    assert not server_errors.is_outage(TimersServerError("WRONGTYPE wrong kind of value"))
    assert not server_errors.is_outage(TimersAuthenticationError("WRONGPASS bad password"))
    assert not server_errors.is_outage(ValueError("not a Redis failure"))


def test_an_authentication_failure_says_so() -> None:
    assert "authentication failed" in str(TimersAuthenticationError("WRONGPASS invalid username-password pair"))


# redis-py strips the code of the replies it has a class for; older versions keep no status_code either.
CLIENT_ERRORS = [
    (redis.exceptions.ReadOnlyError("You can't write against a read only replica."), "READONLY"),
    (redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"), "LOADING"),
    (redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), "OOM"),
    (redis.exceptions.NoPermissionError("this user has no permissions to run the 'keys' command"), "NOPERM"),
    (redis.exceptions.AuthenticationError("invalid username-password pair or user is disabled."), "WRONGPASS"),
    (redis.exceptions.ResponseError("BUSY Redis is busy running a script."), "BUSY"),
    (redis.exceptions.MovedError("3999 127.0.0.1:6381"), "MOVED"),
    (redis.exceptions.AskError("3999 127.0.0.1:6381"), "ASK"),
    (redis.exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), "WRONGTYPE"),
]


@pytest.mark.parametrize(("error", "code"), CLIENT_ERRORS, ids=[code for _, code in CLIENT_ERRORS])
def test_the_reply_is_rebuilt_from_the_client_error(error: Exception, code: str) -> None:
    reply = server_errors.server_reply(error)

    assert reply.split(" ", 1)[0] == code
    assert reply.endswith(str(error))
    typed = server_errors.server_error(error)
    assert typed.code == code
    assert type(typed) is server_errors.error_class(reply)


def test_a_status_code_kept_by_the_client_is_used() -> None:
    try:
        error = redis.exceptions.ResponseError("Link with MASTER is down", status_code="MASTERDOWN")
    except TypeError:  # older redis-py (5.3, the floor) keeps no status code: it stays in the message
        pytest.skip("this redis-py's errors take no status_code")

    assert server_errors.server_reply(error) == "MASTERDOWN Link with MASTER is down"


def test_only_an_outage_drops_the_connection_that_got_it() -> None:
    assert server_errors.drops_connection(
        redis.exceptions.ReadOnlyError("You can't write against a read only replica.")
    )
    assert server_errors.drops_connection(redis.exceptions.ResponseError("BUSY Redis is busy running a script."))
    assert not server_errors.drops_connection(redis.exceptions.ResponseError("WRONGTYPE Operation against a key"))
    assert not server_errors.drops_connection(redis.exceptions.OutOfMemoryError("command not allowed"))
