"""Bulk loading straight into the library's keys: pipelined ZADD and HSET, a thousand timers per command."""

from __future__ import annotations

from collections.abc import Callable

import redis

from benchmarks.common import KEYSPACE, body

CHUNK = 1000
COMMANDS_PER_ROUND_TRIP = 20


def load_timers(
    client: redis.Redis, topic: str, prefix: str, start: int, stop: int, score: Callable[[int], int]
) -> None:
    """Timers `prefix<i>` for i in [start, stop), due at `score(i)` ms, with payload `BenchPayload(due_ms=score(i))`.

    What `set_timer` would leave behind (a timeline entry and a payload), written in bulk.
    """
    timeline, payloads = KEYSPACE.timeline(topic), KEYSPACE.payloads(topic)
    pipe = client.pipeline(transaction=False)
    for low in range(start, stop, CHUNK):
        numbers = range(low, min(low + CHUNK, stop))
        scores = {f"{prefix}{i}": score(i) for i in numbers}
        pipe.zadd(timeline, scores)
        pipe.hset(payloads, mapping={timer_id: body(due) for timer_id, due in scores.items()})
        if len(pipe) >= COMMANDS_PER_ROUND_TRIP:
            pipe.execute()
    pipe.execute()


def unload_timers(client: redis.Redis, topic: str, timer_ids: list[str]) -> None:
    timeline, payloads = KEYSPACE.timeline(topic), KEYSPACE.payloads(topic)
    pipe = client.pipeline(transaction=False)
    for low in range(0, len(timer_ids), CHUNK):
        part = timer_ids[low : low + CHUNK]
        pipe.zrem(timeline, *part)
        pipe.hdel(payloads, *part)
    pipe.execute()
