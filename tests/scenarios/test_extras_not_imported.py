"""Without the metrics extras in use, a process that schedules timers and runs workers never imports them.

Compared with what its dependencies import by themselves: redis-py 8 imports OpenTelemetry's API when it is
installed (as it is here, for the tests), whatever redis-timers does.
"""

from __future__ import annotations

import json
import subprocess
import sys

OPTIONAL_MODULES = ("prometheus_client", "opentelemetry")

PROGRAM = """
import asyncio, datetime, json, sys
import anyio, pydantic, redis, redis.asyncio, redis.cluster, redis.asyncio.cluster

def optional():
    return {name for name in sys.modules if name.split(".")[0] in sys.argv[2:]}

# What the dependencies import by themselves (redis-py 8 loads OpenTelemetry's API when it is installed).
before = optional()
import redis_timers, redis_timers.sync

class Job(pydantic.BaseModel):
    n: int

ran = []
router = redis_timers.Router()

@router.handler(topic="jobs", schema=Job)
async def handle(job, context):
    ran.append(job.n)

sync_router = redis_timers.sync.Router()

@sync_router.handler(topic="jobs", schema=Job)
def handle_sync(job, context):
    ran.append(job.n)

async def main():
    client = redis.asyncio.Redis.from_url(sys.argv[1])
    timers = redis_timers.Timers(redis_client=client, routers=[router])
    await timers.set_timer("jobs", "a", Job(n=1), datetime.timedelta(0))
    await timers.handle_ready_timers()
    await client.aclose()

asyncio.run(main())
timers = redis_timers.sync.Timers(redis_client=redis.Redis.from_url(sys.argv[1]), routers=[sync_router])
timers.set_timer("jobs", "b", Job(n=2), datetime.timedelta(0))
timers.handle_ready_timers()
print(json.dumps({"ran": ran, "modules": sorted(optional() - before)}))
"""


def test_a_worker_pass_imports_neither_prometheus_client_nor_opentelemetry(redis_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, redis_url, *OPTIONAL_MODULES],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report == {"ran": [1, 2], "modules": []}
