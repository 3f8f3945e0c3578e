"""The plugin's fixtures in a user's strict test run: warnings as errors, no resource left open."""

from __future__ import annotations

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
