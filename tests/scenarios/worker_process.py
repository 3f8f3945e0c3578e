"""A worker process to kill: `python -m tests.scenarios.worker_process {sync|async} URL LEASE [SHARDS [--cluster]]`.

SHARDS (default 1) is the namespace's, as the test's own `Timers` have it; with `--cluster`, URL names a node
of a Redis Cluster and the worker uses a cluster client.

It handles TOPIC with a handler that writes `STARTED_KEY` (the timer id) to Redis and then
blocks forever, so the test knows when the process holds a lease and can kill it mid-handler.
"""

from __future__ import annotations

import functools
import sys
import threading
from typing import Any

import anyio
import pydantic
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

import redis_timers
import redis_timers.sync
from redis_timers import Router, TimersSettings

TOPIC = "crash"
STARTED_KEY = "scenario:crash-worker-started"


class CrashPayload(pydantic.BaseModel):
    n: int


def run_sync(url: str, settings: TimersSettings, *, cluster: bool) -> None:
    client = redis.cluster.RedisCluster.from_url(url) if cluster else redis.Redis.from_url(url)
    router = Router()

    @router.handler(topic=TOPIC, schema=CrashPayload)
    def handler(payload: CrashPayload, context: dict[str, Any]) -> None:
        client.set(STARTED_KEY, str(payload.n))
        threading.Event().wait()  # until SIGKILL

    redis_timers.sync.Timers(redis_client=client, routers=[router], settings=settings).run_forever()


async def run_async(url: str, settings: TimersSettings, *, cluster: bool) -> None:
    client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster = (
        redis.asyncio.cluster.RedisCluster.from_url(url) if cluster else redis.asyncio.Redis.from_url(url)
    )
    router = Router()

    @router.handler(topic=TOPIC, schema=CrashPayload)
    async def handler(payload: CrashPayload, context: dict[str, Any]) -> None:
        await client.set(STARTED_KEY, str(payload.n))
        await anyio.sleep_forever()  # until SIGKILL

    await redis_timers.Timers(redis_client=client, routers=[router], settings=settings).run_forever()


def main(argv: list[str]) -> None:
    front, url, lease_seconds = argv[1], argv[2], float(argv[3])
    shards = int(argv[4]) if len(argv) > 4 else 1
    cluster = argv[5:] == ["--cluster"]
    settings = TimersSettings(lease_seconds=lease_seconds, shards=shards)
    if front == "sync":
        run_sync(url, settings, cluster=cluster)
    else:
        anyio.run(functools.partial(run_async, url, settings, cluster=cluster))


if __name__ == "__main__":
    main(sys.argv)
