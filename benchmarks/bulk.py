"""bulk: `set_timers` (many timers per call) beside the raw pipelined minimum and one `set_timer` at a time.

The raw minimum writes each batch of BATCH timers as ZADD + HSET per timer in one pipeline (no script, no
checks), with the one write the library must add per batch: the topic's entry in the shard's heads index
(`ZADD ... LT`, which keeps the lowest score), since a worker finds due topics through it. A second raw
minimum writes the same as one variadic ZADD, one HSET and the heads entry per batch. The library's
`set_timers` is given the same BATCH timers per call (it cuts them into its own batches per shard and pipelines
those). One-at-a-time is `set_timer` called once per timer, as a loop over rows would. The four are measured
in one loop, interleaved in slices, on one client per front end, each into a topic of its own, so that a burst
of load elsewhere on the machine hits them all alike. Timers are due in an hour. Beside each rate, the client's
CPU time per timer (this process's, every thread; the server is a process of its own), building the timers'
arguments included: for the library, the `TimerSpec`s and their payloads, as an application would make them.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal

import redis
import redis.asyncio

from benchmarks.common import FRONTS, KEYSPACE, SETTINGS, BenchPayload, Front, body, delete_topic
from benchmarks.context import Context
from redis_timers import Router, TimerSpec
from redis_timers import Timers as AsyncTimers
from redis_timers.sync import Timers as SyncTimers

BulkImpl = Literal["library", "raw-pipeline", "raw-variadic", "one-at-a-time"]
BULK_IMPLS: tuple[BulkImpl, ...] = ("library", "raw-pipeline", "raw-variadic", "one-at-a-time")
BATCH = 1000
"""Timers per bulk call (library) and per pipeline (raw)."""
SLICES = 5
DELAY = datetime.timedelta(hours=1)
DELAY_MS = round(DELAY.total_seconds() * 1000)

Chunk = range
SyncOp = Callable[[str, Chunk], object]
AsyncOp = Callable[[str, Chunk], Awaitable[object]]


def chunks(numbers: range) -> list[range]:
    return [range(low, min(low + BATCH, numbers.stop)) for low in range(numbers.start, numbers.stop, BATCH)]


def slices(count: int) -> list[range]:
    step = max(BATCH, -(-count // SLICES))
    return [range(low, min(low + step, count)) for low in range(0, count, step)]


def specs(topic: str, prefix: str, numbers: Chunk) -> list[TimerSpec]:
    return [TimerSpec(topic, f"{prefix}{i}", BenchPayload(due_ms=i), DELAY) for i in numbers]


def _noop(payload: BenchPayload, context: dict[str, object]) -> None:
    pass


async def _async_noop(payload: BenchPayload, context: dict[str, object]) -> None:
    pass


Timings = dict[BulkImpl, tuple[float, float]]
"""Per implementation, the wall-clock seconds and the client CPU seconds it took."""


def time_bulk(url: str, front: Front, topics: Mapping[BulkImpl, str], count: int) -> Timings:
    """Seconds (wall clock, client CPU) each implementation took to write `count` timers into its topic."""
    if front == "sync":
        return _time_sync(url, topics, count)
    return asyncio.run(_time_async(url, topics, count))


def _time_sync(url: str, topics: Mapping[BulkImpl, str], count: int) -> Timings:
    client = redis.Redis.from_url(url)

    def operation(impl: BulkImpl, topic: str) -> SyncOp:
        router = Router()
        router.handler(topic=topic, schema=BenchPayload)(_noop)
        timers = SyncTimers(redis_client=client, routers=[router], settings=SETTINGS)
        if impl == "library":
            return lambda prefix, numbers: timers.set_timers(specs(topic, prefix, numbers))
        if impl == "one-at-a-time":
            return lambda prefix, numbers: [
                timers.set_timer(topic, f"{prefix}{i}", BenchPayload(due_ms=i), DELAY) for i in numbers
            ]

        def raw_pipeline(prefix: str, numbers: Chunk) -> object:
            due = int(time.time() * 1000) + DELAY_MS
            pipeline = client.pipeline(transaction=False)
            _queue_raw_writes(pipeline, impl, topic, prefix, numbers, due)
            return pipeline.execute()

        return raw_pipeline

    try:
        operations = {impl: operation(impl, topic) for impl, topic in topics.items()}
        totals = dict.fromkeys(operations, (0.0, 0.0))
        for op in operations.values():
            op("w", range(10))  # untimed: script loads, the layout check, first-use costs
        for numbers in slices(count):
            for impl, op in operations.items():
                started, cpu_started = time.perf_counter(), time.process_time()
                for chunk in chunks(numbers):
                    op("b", chunk)
                totals[impl] = _added(totals[impl], started, cpu_started)
        return totals
    finally:
        client.close()


async def _time_async(url: str, topics: Mapping[BulkImpl, str], count: int) -> Timings:
    client = redis.asyncio.Redis.from_url(url)

    def operation(impl: BulkImpl, topic: str) -> AsyncOp:
        router = Router()
        router.handler(topic=topic, schema=BenchPayload)(_async_noop)
        timers = AsyncTimers(redis_client=client, routers=[router], settings=SETTINGS)
        if impl == "library":
            return lambda prefix, numbers: timers.set_timers(specs(topic, prefix, numbers))
        if impl == "one-at-a-time":

            async def one_at_a_time(prefix: str, numbers: Chunk) -> object:
                return [await timers.set_timer(topic, f"{prefix}{i}", BenchPayload(due_ms=i), DELAY) for i in numbers]

            return one_at_a_time

        async def raw_pipeline(prefix: str, numbers: Chunk) -> object:
            due = int(time.time() * 1000) + DELAY_MS
            async with client.pipeline(transaction=False) as pipeline:
                _queue_raw_writes(pipeline, impl, topic, prefix, numbers, due)
                return await pipeline.execute()

        return raw_pipeline

    try:
        operations = {impl: operation(impl, topic) for impl, topic in topics.items()}
        totals = dict.fromkeys(operations, (0.0, 0.0))
        for op in operations.values():
            await op("w", range(10))
        for numbers in slices(count):
            for impl, op in operations.items():
                started, cpu_started = time.perf_counter(), time.process_time()
                for chunk in chunks(numbers):
                    await op("b", chunk)
                totals[impl] = _added(totals[impl], started, cpu_started)
        return totals
    finally:
        await client.aclose()


def run(ctx: Context) -> None:
    count = ctx.config.timers
    topics: dict[BulkImpl, str] = {impl: f"bulk-{impl}" for impl in BULK_IMPLS}
    for rep in range(ctx.config.repeat):
        for front in FRONTS:
            for topic in topics.values():
                delete_topic(ctx.control, topic)
            timings = time_bulk(ctx.url, front, topics, count)
            for impl in BULK_IMPLS:
                seconds, cpu_seconds = timings[impl]
                ctx.results.add("bulk.rate", front, impl, count / seconds)
                ctx.results.add("bulk.client_cpu_us", front, impl, cpu_seconds * 1e6 / count)
            shown = ", ".join(
                f"{impl} {count / timings[impl][0]:,.0f}/s ({timings[impl][1] * 1e6 / count:.1f} µs CPU)"
                for impl in BULK_IMPLS
            )
            ctx.progress(f"bulk #{rep + 1} {front}: {shown}")
    for topic in topics.values():
        delete_topic(ctx.control, topic)


def _added(total: tuple[float, float], started: float, cpu_started: float) -> tuple[float, float]:
    """`total` plus the wall-clock and CPU time since `started` and `cpu_started`."""
    return total[0] + time.perf_counter() - started, total[1] + time.process_time() - cpu_started


def _queue_raw_writes(
    pipeline: redis.client.Pipeline | redis.asyncio.client.Pipeline,
    impl: BulkImpl,
    topic: str,
    prefix: str,
    numbers: Chunk,
    due: int,
) -> None:
    """The raw minimum's writes of one batch, queued on either client's pipeline (queueing sends nothing)."""
    timeline, payloads = KEYSPACE.timeline(topic), KEYSPACE.payloads(topic)
    if impl == "raw-variadic":
        pipeline.zadd(timeline, {f"{prefix}{i}": due for i in numbers})
        pipeline.hset(payloads, mapping={f"{prefix}{i}": body(i) for i in numbers})
    else:
        for i in numbers:
            pipeline.zadd(timeline, {f"{prefix}{i}": due})
            pipeline.hset(payloads, f"{prefix}{i}", body(i))
    pipeline.zadd(KEYSPACE.heads, {topic: due}, lt=True)
