"""Bulk loading straight into the library's keys: pipelined ZADD and HSET, a thousand timers per command."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

import redis

from benchmarks.common import ONE_SHARD, body
from redis_timers.keys import Keyspace, Namespace

CHUNK = 1000
COMMANDS_PER_ROUND_TRIP = 20


def load_timers(
    client: redis.Redis,
    topic: str,
    prefix: str,
    start: int,
    stop: int,
    score: Callable[[int], int],
    namespace: Namespace = ONE_SHARD,
) -> dict[int, int]:
    """Timers `prefix<i>` for i in [start, stop), due at `score(i)` ms, with payload `BenchPayload(due_ms=score(i))`.

    What `set_timer` would leave behind (a timeline entry, a payload, and the topic's entry in the shard's heads
    index), written in bulk, each timer in its shard of `namespace`. Returns how many went into each shard.
    """
    by_shard: dict[Keyspace, dict[str, int]] = defaultdict(dict)
    for i in range(start, stop):
        timer_id = f"{prefix}{i}"
        by_shard[namespace.keyspace_for(topic, timer_id)][timer_id] = score(i)
    pipe = client.pipeline(transaction=False)
    for keyspace, scores_of_shard in by_shard.items():
        timeline, payloads = keyspace.timeline(topic), keyspace.payloads(topic)
        timer_ids = list(scores_of_shard)
        for low in range(0, len(timer_ids), CHUNK):
            scores = {timer_id: scores_of_shard[timer_id] for timer_id in timer_ids[low : low + CHUNK]}
            pipe.zadd(timeline, scores)
            pipe.hset(payloads, mapping={timer_id: body(due) for timer_id, due in scores.items()})
            if len(pipe) >= COMMANDS_PER_ROUND_TRIP:
                pipe.execute()
    pipe.execute()
    index_heads(client, topic, by_shard)
    return {keyspace.shard: len(scores) for keyspace, scores in by_shard.items()}


def index_heads(client: redis.Redis, topic: str, keyspaces: Iterable[Keyspace]) -> None:
    """Set `topic`'s entry in each shard's heads index to its timeline's lowest score, as the scripts keep it."""
    for keyspace in keyspaces:
        head = client.zrange(keyspace.timeline(topic), 0, 0, withscores=True)
        if head:
            client.zadd(keyspace.heads, {topic: head[0][1]})
        else:
            client.zrem(keyspace.heads, topic)


def unload_timers(client: redis.Redis, topic: str, timer_ids: list[str]) -> None:
    timeline, payloads = ONE_SHARD.keyspaces[0].timeline(topic), ONE_SHARD.keyspaces[0].payloads(topic)
    pipe = client.pipeline(transaction=False)
    for low in range(0, len(timer_ids), CHUNK):
        part = timer_ids[low : low + CHUNK]
        pipe.zrem(timeline, *part)
        pipe.hdel(payloads, *part)
    pipe.execute()
    index_heads(client, topic, ONE_SHARD.keyspaces)
