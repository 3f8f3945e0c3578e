"""Apps for `redis-timers worker tests.cli.app:...`, run as subprocesses by the CLI tests.

Each handler prints when it starts and ends (the tests wait on those lines) and records the job in
Redis. A job with `hold=True` blocks until the test pushes to its release list (or for 30 s), so
that a test can stop the worker while the handler is in flight.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pydantic
import redis
import redis.asyncio

from redis_timers import Router, Timers
from redis_timers.sync import Timers as SyncTimers

TOPIC = "cli-job"
DONE_KEY = "cli-test:done"
HOLD_SECONDS = 30
"""How long a held job waits for its release; each BLPOP waits less, under the clients' 5 s socket timeout."""


class Job(pydantic.BaseModel):
    name: str
    hold: bool = False


def release_key(name: str) -> str:
    return f"cli-test:release:{name}"


def redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


async_router = Router()


@async_router.handler(topic=TOPIC, schema=Job)
async def handle_async(job: Job, context: dict[str, Any]) -> None:
    client: redis.asyncio.Redis = context["redis"]
    print(f"handler started {job.name}", flush=True)
    deadline = time.monotonic() + HOLD_SECONDS
    while job.hold and time.monotonic() < deadline:
        if await client.blpop([release_key(job.name)], timeout=1) is not None:
            break
    await client.rpush(DONE_KEY, job.name)
    print(f"handler finished {job.name}", flush=True)


sync_router = Router()


@sync_router.handler(topic=TOPIC, schema=Job)
def handle_sync(job: Job, context: dict[str, Any]) -> None:
    client: redis.Redis = context["redis"]
    print(f"handler started {job.name}", flush=True)
    deadline = time.monotonic() + HOLD_SECONDS
    while job.hold and time.monotonic() < deadline:
        if client.blpop([release_key(job.name)], timeout=1) is not None:
            break
    client.rpush(DONE_KEY, job.name)
    print(f"handler finished {job.name}", flush=True)


def make_async_timers() -> Timers:
    client = redis.asyncio.Redis.from_url(redis_url())
    return Timers(redis_client=client, context={"redis": client}, routers=[async_router])


def make_async_timers_with_threads() -> Timers:
    """The async front end running a plain `def` handler, in one of anyio's worker threads."""
    return Timers(
        redis_client=redis.asyncio.Redis.from_url(redis_url()),
        context={"redis": redis.Redis.from_url(redis_url())},
        routers=[sync_router],
    )


def make_sync_timers() -> SyncTimers:
    client = redis.Redis.from_url(redis_url())
    return SyncTimers(redis_client=client, context={"redis": client}, routers=[sync_router])


# What `redis-timers worker tests.cli.app:async_timers` (or `:async_timers_with_threads`, `:sync_timers`) runs.
async_timers = make_async_timers()
async_timers_with_threads = make_async_timers_with_threads()
sync_timers = make_sync_timers()
not_timers = {"topic": TOPIC}
empty_timers = SyncTimers(redis_client=redis.Redis.from_url(redis_url()))
