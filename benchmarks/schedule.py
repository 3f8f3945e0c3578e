"""schedule: `set_timer` one call at a time (what a web view does), beside the raw MULTI and the raw EVALSHA.

The raw EVALSHA is measured twice: through the client, which checks a connection out of its
pool for every call, and on one connection of the same pool held for the whole run (written
and read directly), as the library's lane does. The four are measured in one loop,
interleaved in slices (library, MULTI, EVALSHA, held EVALSHA, then the next slice), on one
client per front end, so that a burst of load elsewhere on the machine hits them all alike.
Each first makes WARMUP untimed calls (script loads, first-use costs). Timers are due in an hour.
Memory per scheduled timer is the MEMORY USAGE of the topic's keys over the number of timers,
each implementation writing to a topic of its own.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Literal

import redis
import redis.asyncio

from benchmarks import raw
from benchmarks.common import FRONTS, KEYSPACE, SETTINGS, BenchPayload, Front, body, delete_topic
from benchmarks.context import Context
from redis_timers import Router
from redis_timers import Timers as AsyncTimers
from redis_timers.sync import Timers as SyncTimers

ScheduleImpl = Literal["library", "raw-multi", "raw-evalsha", "raw-evalsha-held"]
SCHEDULE_IMPLS: tuple[ScheduleImpl, ...] = ("library", "raw-multi", "raw-evalsha", "raw-evalsha-held")
ID_LETTER: dict[ScheduleImpl, str] = {"library": "L", "raw-multi": "M", "raw-evalsha": "E", "raw-evalsha-held": "H"}
WARMUP = 50
SLICES = 10
DELAY = datetime.timedelta(hours=1)
DELAY_MS = round(DELAY.total_seconds() * 1000)

SyncOp = Callable[[str, int], object]
AsyncOp = Callable[[str, int], Awaitable[object]]


def timer_ids(impl: ScheduleImpl, prefix: str, count: int) -> list[str]:
    """Every id `time_schedule` writes for `impl`, warm-up included."""
    letter = ID_LETTER[impl]
    return [f"{prefix}{letter}{i}" for i in range(count)] + [f"{prefix}{letter}w{i}" for i in range(WARMUP)]


def _slices(count: int) -> list[range]:
    step = max(1, -(-count // SLICES))
    return [range(low, min(low + step, count)) for low in range(0, count, step)]


def _noop(payload: BenchPayload, context: dict[str, object]) -> None:
    pass


async def _async_noop(payload: BenchPayload, context: dict[str, object]) -> None:
    pass


def time_schedule(
    url: str, front: Front, topics: Mapping[ScheduleImpl, str], prefix: str, count: int
) -> dict[ScheduleImpl, float]:
    """Seconds each implementation took for `count` one-at-a-time schedules into its topic (ids: `timer_ids`)."""
    if front == "sync":
        return _time_sync(url, topics, prefix, count)
    return asyncio.run(_time_async(url, topics, prefix, count))


def _time_sync(url: str, topics: Mapping[ScheduleImpl, str], prefix: str, count: int) -> dict[ScheduleImpl, float]:
    client = redis.Redis.from_url(url)
    sha, _ = raw.load_scripts(client)
    held = client.connection_pool.get_connection()

    def operation(impl: ScheduleImpl, topic: str) -> SyncOp:
        timeline, payloads = KEYSPACE.timeline(topic), KEYSPACE.payloads(topic)
        if impl == "library":
            router = Router()
            router.handler(topic=topic, schema=BenchPayload)(_noop)
            timers = SyncTimers(redis_client=client, routers=[router], settings=SETTINGS)
            return lambda timer_id, i: timers.set_timer(topic, timer_id, BenchPayload(due_ms=i), DELAY)
        if impl == "raw-multi":
            return lambda timer_id, i: raw.schedule_multi_sync(
                client, timeline, payloads, timer_id, int(time.time() * 1000) + DELAY_MS, body(i)
            )
        if impl == "raw-evalsha-held":
            return lambda timer_id, i: raw.schedule_evalsha_held_sync(
                held, sha, timeline, payloads, timer_id, int(time.time() * 1000) + DELAY_MS, body(i)
            )
        return lambda timer_id, i: raw.schedule_evalsha_sync(
            client, sha, timeline, payloads, timer_id, int(time.time() * 1000) + DELAY_MS, body(i)
        )

    try:
        operations = {impl: operation(impl, topic) for impl, topic in topics.items()}
        totals = dict.fromkeys(operations, 0.0)
        for impl, op in operations.items():
            for i in range(WARMUP):
                op(f"{prefix}{ID_LETTER[impl]}w{i}", i)
        for numbers in _slices(count):
            for impl, op in operations.items():
                letter = f"{prefix}{ID_LETTER[impl]}"
                started = time.perf_counter()
                for i in numbers:
                    op(f"{letter}{i}", i)
                totals[impl] += time.perf_counter() - started
        return totals
    finally:
        client.connection_pool.release(held)
        client.close()


async def _time_async(
    url: str, topics: Mapping[ScheduleImpl, str], prefix: str, count: int
) -> dict[ScheduleImpl, float]:
    client = redis.asyncio.Redis.from_url(url)
    sha = str(await client.script_load(raw.SCHEDULE_LUA))
    held = await client.connection_pool.get_connection()  # type: ignore[no-untyped-call]

    def operation(impl: ScheduleImpl, topic: str) -> AsyncOp:
        timeline, payloads = KEYSPACE.timeline(topic), KEYSPACE.payloads(topic)
        if impl == "library":
            router = Router()
            router.handler(topic=topic, schema=BenchPayload)(_async_noop)
            timers = AsyncTimers(redis_client=client, routers=[router], settings=SETTINGS)
            return lambda timer_id, i: timers.set_timer(topic, timer_id, BenchPayload(due_ms=i), DELAY)
        if impl == "raw-multi":
            return lambda timer_id, i: raw.schedule_multi_async(
                client, timeline, payloads, timer_id, int(time.time() * 1000) + DELAY_MS, body(i)
            )
        if impl == "raw-evalsha-held":
            return lambda timer_id, i: raw.schedule_evalsha_held_async(
                held, sha, timeline, payloads, timer_id, int(time.time() * 1000) + DELAY_MS, body(i)
            )
        return lambda timer_id, i: raw.schedule_evalsha_async(
            client, sha, timeline, payloads, timer_id, int(time.time() * 1000) + DELAY_MS, body(i)
        )

    try:
        operations = {impl: operation(impl, topic) for impl, topic in topics.items()}
        totals = dict.fromkeys(operations, 0.0)
        for impl, op in operations.items():
            for i in range(WARMUP):
                await op(f"{prefix}{ID_LETTER[impl]}w{i}", i)
        for numbers in _slices(count):
            for impl, op in operations.items():
                letter = f"{prefix}{ID_LETTER[impl]}"
                started = time.perf_counter()
                for i in numbers:
                    await op(f"{letter}{i}", i)
                totals[impl] += time.perf_counter() - started
        return totals
    finally:
        await client.connection_pool.release(held)
        await client.aclose()


def memory_usage(client: redis.Redis, keys: Sequence[str]) -> int:
    return sum(int(client.memory_usage(key, samples=0) or 0) for key in keys)


def run(ctx: Context) -> None:
    count = ctx.config.timers
    topics: dict[ScheduleImpl, str] = {impl: f"schedule-{impl}" for impl in SCHEDULE_IMPLS}
    for front in FRONTS:
        time_schedule(ctx.url, front, topics, "s", WARMUP)  # untimed: first-use costs everywhere
    for rep in range(ctx.config.repeat):
        for front in FRONTS:
            for topic in topics.values():
                delete_topic(ctx.control, topic)
            seconds = time_schedule(ctx.url, front, topics, "s", count)
            for impl, topic in topics.items():
                per_timer = memory_usage(ctx.control, KEYSPACE.topic_keys(topic)) / (count + WARMUP)
                ctx.results.add("schedule.rate", front, impl, count / seconds[impl])
                ctx.results.add("schedule.memory_bytes", front, impl, per_timer)
            shown = ", ".join(f"{impl} {count / seconds[impl]:,.0f}/s" for impl in SCHEDULE_IMPLS)
            ctx.progress(f"schedule #{rep + 1} {front}: {shown}")
    for topic in topics.values():
        delete_topic(ctx.control, topic)
