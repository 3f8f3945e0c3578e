"""Apps for `redis-timers worker --cluster`: their handlers only print, so they need nothing from Redis.

Their own clients (plain ones, never connected) are replaced by the worker's cluster client of `--redis-url`.
"""

from __future__ import annotations

import os
from typing import Any

import redis
import redis.asyncio

from redis_timers import Router, Timers
from redis_timers.sync import Timers as SyncTimers
from tests.cli.app import TOPIC, Job

URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

async_router = Router()


@async_router.handler(topic=TOPIC, schema=Job)
async def handle_async(job: Job, context: dict[str, Any]) -> None:
    print(f"handler finished {job.name}", flush=True)


sync_router = Router()


@sync_router.handler(topic=TOPIC, schema=Job)
def handle_sync(job: Job, context: dict[str, Any]) -> None:
    print(f"handler finished {job.name}", flush=True)


async_timers = Timers(redis_client=redis.asyncio.Redis.from_url(URL), routers=[async_router])
sync_timers = SyncTimers(redis_client=redis.Redis.from_url(URL), routers=[sync_router])
