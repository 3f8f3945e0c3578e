"""The raw redis-py minimum: the least work any timer store on this data layout must do.

Same keys as the library (a timeline ZSET of id -> due ms, a payloads HASH of id -> JSON),
no validation, no lease, no retries, no notifications:

- schedule: one MULTI of ZADD + HSET per timer, or one EVALSHA doing the same, through the
  client (a pooled connection per call) or written and read on one connection held throughout;
- pop: one EVALSHA per up to RAW_BATCH due timers that reads "now" with TIME, takes the due
  ids (ZRANGEBYSCORE ... LIMIT), removes them (ZREM) and returns them with their payloads
  (HMGET, then HDEL);
- poll: that pop in a loop, sleeping a fixed time (RAW_POLL_SLEEP unless told) whenever it found
  less than a full batch.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio

from benchmarks.common import RAW_BATCH, RAW_POLL_SLEEP

SCHEDULE_LUA = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
"""

POP_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now), 'LIMIT', 0, tonumber(ARGV[1]))
if #ids == 0 then
  return ids
end
redis.call('ZREM', KEYS[1], unpack(ids))
local bodies = redis.call('HMGET', KEYS[2], unpack(ids))
redis.call('HDEL', KEYS[2], unpack(ids))
local out = {}
for i, id in ipairs(ids) do
  out[2 * i - 1] = id
  out[2 * i] = bodies[i]
end
return out
"""

RawHandler = Callable[[bytes, bytes], None]
"""`(timer id, payload)`, called inline by the poller: the no-op handler of the minimum."""


def load_scripts(client: redis.Redis) -> tuple[str, str]:
    """SHA1s of (schedule, pop), loaded on the server."""
    return str(client.script_load(SCHEDULE_LUA)), str(client.script_load(POP_LUA))


# -- schedule ---------------------------------------------------------------------------


def schedule_multi_sync(
    client: redis.Redis, timeline: str, payloads: str, timer_id: str, score: int, data: str
) -> None:
    pipe = client.pipeline(transaction=True)
    pipe.zadd(timeline, {timer_id: score})
    pipe.hset(payloads, timer_id, data)
    pipe.execute()


def schedule_evalsha_sync(
    client: redis.Redis, sha: str, timeline: str, payloads: str, timer_id: str, score: int, data: str
) -> None:
    client.evalsha(sha, 2, timeline, payloads, score, timer_id, data)


def schedule_evalsha_held_sync(
    connection: redis.Connection, sha: str, timeline: str, payloads: str, timer_id: str, score: int, data: str
) -> None:
    """The EVALSHA on a connection the caller holds: no pool checkout, no per-command bookkeeping."""
    connection.send_command("EVALSHA", sha, 2, timeline, payloads, score, timer_id, data)  # type: ignore[no-untyped-call]
    connection.read_response()


async def schedule_multi_async(
    client: redis.asyncio.Redis, timeline: str, payloads: str, timer_id: str, score: int, data: str
) -> None:
    pipe = client.pipeline(transaction=True)
    pipe.zadd(timeline, {timer_id: score})
    pipe.hset(payloads, timer_id, data)
    await pipe.execute()


async def schedule_evalsha_async(
    client: redis.asyncio.Redis, sha: str, timeline: str, payloads: str, timer_id: str, score: int, data: str
) -> None:
    await client.evalsha(sha, 2, timeline, payloads, score, timer_id, data)


async def schedule_evalsha_held_async(
    connection: redis.asyncio.Connection,
    sha: str,
    timeline: str,
    payloads: str,
    timer_id: str,
    score: int,
    data: str,
) -> None:
    await connection.send_command("EVALSHA", sha, 2, timeline, payloads, score, timer_id, data)
    await connection.read_response()


# -- pop and poll -----------------------------------------------------------------------


def _dispatch(reply: list[Any], handle: RawHandler) -> int:
    for offset in range(0, len(reply), 2):
        handle(reply[offset], reply[offset + 1])
    return len(reply) // 2


def poll_sync(
    client: redis.Redis,
    sha: str,
    timeline: str,
    payloads: str,
    stop: threading.Event,
    handle: RawHandler,
    sleep: float = RAW_POLL_SLEEP,
) -> None:
    while not stop.is_set():
        reply: Any = client.evalsha(sha, 2, timeline, payloads, RAW_BATCH)
        if _dispatch(reply, handle) < RAW_BATCH:
            stop.wait(sleep)


async def poll_async(
    client: redis.asyncio.Redis,
    sha: str,
    timeline: str,
    payloads: str,
    stop: asyncio.Event,
    handle: RawHandler,
    sleep: float = RAW_POLL_SLEEP,
) -> None:
    while not stop.is_set():
        reply: Any = await client.evalsha(sha, 2, timeline, payloads, RAW_BATCH)
        if _dispatch(reply, handle) < RAW_BATCH:
            await asyncio.sleep(sleep)
