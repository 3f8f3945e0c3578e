from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest
import redis

from redis_timers.sync import Router
from redis_timers.sync import Timers as SyncTimers
from tests.cli.app import TOPIC, Job
from tests.cli.processes import ROOT, CliProcess, cli_environment

Spawn = Callable[..., CliProcess]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start `python -m redis_timers.cli ARGS...`; whatever is still running at the end of the test is killed."""
    started: list[CliProcess] = []

    def start(*args: str, cwd: Path = ROOT, **env: str) -> CliProcess:
        process = CliProcess(list(args), env=cli_environment(**env), cwd=cwd)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


def scheduler_of(client: redis.Redis, topic: str, schema: type[pydantic.BaseModel]) -> SyncTimers:
    """Schedules and inspects a test app's timers of `topic` from the test process (its handler never runs)."""
    router = Router()

    @router.handler(topic=topic, schema=schema)
    def not_run_here(job: Any, context: dict[str, Any]) -> None:
        raise AssertionError("the test process never handles timers")

    return SyncTimers(redis_client=client, routers=[router])


@pytest.fixture
def scheduler(client: redis.Redis) -> SyncTimers:
    """Schedules and inspects the test apps' timers from the test process (its handler never runs)."""
    return scheduler_of(client, TOPIC, Job)
