"""Finding the app's `Timers` (in-process) and pointing it at another Redis."""

from __future__ import annotations

import datetime
import logging

import anyio
import pytest
import redis

from redis_timers import Timers
from redis_timers.cli.redis_url import describe_client
from redis_timers.cli.target import TargetError, load_timers, use_redis_url
from redis_timers.cli.worker import run_worker
from redis_timers.sync import Timers as SyncTimers
from tests.cli import app
from tests.cli.app import TOPIC, Job

LATER = datetime.timedelta(minutes=5)


def test_loads_instances_and_factories_of_either_front_end() -> None:
    assert load_timers("tests.cli.app:async_timers") is app.async_timers
    assert load_timers("tests.cli.app:sync_timers") is app.sync_timers
    assert isinstance(load_timers("tests.cli.app:make_async_timers"), Timers)
    assert isinstance(load_timers("tests.cli.app:make_sync_timers"), SyncTimers)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("tests.cli.app", "not of the form module:attribute"),
        ("tests.cli.app:", "not of the form module:attribute"),
        ("tests.cli.no_such_module:timers", "cannot import 'tests.cli.no_such_module'"),
        ("tests.cli.app:missing", "has no attribute 'missing'"),
        ("tests.cli.app:not_timers", "is a dict; expected a redis_timers.Timers"),
        ("tests.cli.app:Job", "is a ModelMetaclass"),
        ("tests.cli.app:redis_url", "returned a str, not a redis_timers Timers"),
    ],
)
def test_bad_targets_are_explained(target: str, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        load_timers(target)


def test_worker_refuses_a_bad_target_or_no_handlers(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="redis_timers.cli"):
        assert run_worker("tests.cli.app:missing") == 2
        assert run_worker("tests.cli.app:empty_timers") == 2
    assert "has no attribute 'missing'" in caplog.text
    assert "has no handlers" in caplog.text


def test_redis_url_replaces_the_sync_client(redis_url: str, client: redis.Redis) -> None:
    timers = load_timers("tests.cli.app:make_sync_timers")
    assert isinstance(timers, SyncTimers)
    own = use_redis_url(timers, redis_url)
    try:
        assert timers.redis_client is own
        assert describe_client(timers.redis_client) == redis_url
        timers.set_timer(TOPIC, "via-url", Job(name="via-url"), activation_period=LATER)
        assert client.zcard(timers.namespace.keyspaces[0].timeline(TOPIC)) == 1
    finally:
        own.close()


def test_redis_url_replaces_the_async_client(redis_url: str, client: redis.Redis) -> None:
    timers = load_timers("tests.cli.app:make_async_timers")
    assert isinstance(timers, Timers)
    own = use_redis_url(timers, redis_url)
    assert timers.redis_client is own

    async def schedule() -> None:
        try:
            await timers.set_timer(TOPIC, "via-url", Job(name="via-url"), activation_period=LATER)
        finally:
            await own.aclose()

    anyio.run(schedule)
    assert client.zcard(timers.namespace.keyspaces[0].timeline(TOPIC)) == 1
