"""An app for `redis-timers worker tests.cli.metrics_app:... --metrics-port N`: jobs that fail a set number of times.

A job fails while the number of its runs so far (counted in Redis) is at most its `failures`: with
`TIMERS_MAX_ATTEMPTS=2`, `failures=1` is a retry then a success, `failures=2` a retry then a dead letter.
"""

from __future__ import annotations

from typing import Any

import pydantic
import redis
import redis.asyncio

from redis_timers import Router, Timers
from redis_timers.sync import Timers as SyncTimers
from tests.cli.app import redis_url

TOPIC = "metrics-job"


class FlakyJob(pydantic.BaseModel):
    name: str
    failures: int = 0


def runs_key(name: str) -> str:
    return f"metrics-test:runs:{name}"


async_router = Router()


@async_router.handler(topic=TOPIC, schema=FlakyJob)
async def handle_async(job: FlakyJob, context: dict[str, Any]) -> None:
    client: redis.asyncio.Redis = context["redis"]
    if await client.incr(runs_key(job.name)) <= job.failures:
        raise RuntimeError(f"{job.name} fails on purpose")


sync_router = Router()


@sync_router.handler(topic=TOPIC, schema=FlakyJob)
def handle_sync(job: FlakyJob, context: dict[str, Any]) -> None:
    client: redis.Redis = context["redis"]
    if client.incr(runs_key(job.name)) <= job.failures:
        raise RuntimeError(f"{job.name} fails on purpose")


def async_timers() -> Timers:
    client = redis.asyncio.Redis.from_url(redis_url())
    return Timers(redis_client=client, context={"redis": client}, routers=[async_router])


def sync_timers() -> SyncTimers:
    client = redis.Redis.from_url(redis_url())
    return SyncTimers(redis_client=client, context={"redis": client}, routers=[sync_router])


def observed_sync_timers() -> SyncTimers:
    """An app counting its own timers (`PrometheusObserver` on the default registry), as docs/operations.md shows."""
    from redis_timers.metrics.prometheus import PrometheusObserver

    timers = sync_timers()
    timers.observer = PrometheusObserver()
    return timers
