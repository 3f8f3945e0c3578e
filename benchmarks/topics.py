"""scale (topics): what a worker's round trip costs the server as its topic count grows.

At each level (`Config.topic_levels`: 1, 100, 1,000 and 5,000 topics), every topic holds one timer an hour
away, and one topic gets `TOPIC_BATCH` due timers; a single pass of a blocking worker of every topic
(`handle_ready_timers`, no legacy import) fires them. The server's time is `INFO commandstats`' usec of
EVALSHA (a script's commands are counted in it) over the pass, per EVALSHA call (a round trip) and per fired
timer. Beside each level, the same figure with one topic, so the ratio column says how far the cost grew:
flat (1.0) is O(log N + work done); the goal is within 2x at 5,000 topics. The server time does not depend
on the front end, so only the blocking one is measured. The per-command counts per fired timer of the
largest level are in the notes.
"""

from __future__ import annotations

import dataclasses
import datetime

import redis

from benchmarks.common import BenchmarkError, BenchPayload, delete_namespace
from benchmarks.context import Context
from redis_timers import Router, TimerSpec
from redis_timers.sync import Timers

TOPIC_BATCH = 200
"""Due timers one round trip fires (of one topic), at every level."""
FRONT = "sync"
ONE_TOPIC = "one-topic"
"""The implementation column beside each level: the same pass with one topic."""


def run(ctx: Context) -> None:
    per_call: dict[int, list[float]] = {}
    per_timer: dict[int, list[float]] = {}
    commands: dict[str, float] = {}
    levels = sorted({1, *ctx.config.topic_levels})
    for level in levels:
        delete_namespace(ctx.control)
        client = redis.Redis.from_url(ctx.url)
        timers = _timers(ctx, client, level)
        try:
            future = datetime.timedelta(hours=1)
            timers.set_timers(TimerSpec(f"t{i}", "future", BenchPayload(), future) for i in range(level))
            timers.handle_ready_timers()  # registers the topic set, loads the scripts: not measured
            for _ in range(ctx.config.repeat):
                timers.set_timers(
                    TimerSpec("t0", f"due{n}", BenchPayload(), datetime.timedelta(0)) for n in range(TOPIC_BATCH)
                )
                ctx.control.config_resetstat()
                timers.handle_ready_timers()
                stats = _commandstats(ctx.control)
                if int(ctx.control.zcard(ctx.namespace.keyspaces[0].timeline("t0"))) != 1:
                    raise BenchmarkError("the topics scenario's pass left due timers")
                calls, usec = stats["evalsha"]
                per_call.setdefault(level, []).append(usec / calls)
                per_timer.setdefault(level, []).append(usec / TOPIC_BATCH)
                if level == levels[-1]:
                    commands = {
                        name: count / TOPIC_BATCH
                        for name, (count, _) in stats.items()
                        if name not in ("config|resetstat", "info")
                    }
        finally:
            client.close()
        ctx.progress(
            f"scale: {level:,} topics: {sum(per_call[level]) / len(per_call[level]):.0f} server µs per round trip"
        )
    for level in levels:
        for index, (call_us, timer_us) in enumerate(zip(per_call[level], per_timer[level])):
            ctx.results.add(f"scale.topics.call_us.{level}", FRONT, "library", call_us)
            ctx.results.add(f"scale.topics.timer_us.{level}", FRONT, "library", timer_us)
            ctx.results.add(f"scale.topics.call_us.{level}", FRONT, ONE_TOPIC, per_call[1][index])
            ctx.results.add(f"scale.topics.timer_us.{level}", FRONT, ONE_TOPIC, per_timer[1][index])
    breakdown = ", ".join(f"{name} {value:.2f}" for name, value in sorted(commands.items()))
    ctx.results.note(f"scale, {levels[-1]:,} topics: server commands per fired timer, by command: {breakdown}")
    delete_namespace(ctx.control)


def _timers(ctx: Context, client: redis.Redis, level: int) -> Timers:
    router = Router()
    for i in range(level):
        router.handler(topic=f"t{i}", schema=BenchPayload)(_fire)
    settings = dataclasses.replace(ctx.settings, legacy_import=False, concurrent_processing_limit=1000)
    return Timers(redis_client=client, routers=[router], settings=settings)


def _fire(payload: BenchPayload, context: dict[str, object]) -> None:
    return None


def _commandstats(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """Calls and usec of each command since the last CONFIG RESETSTAT."""
    return {
        name.removeprefix("cmdstat_"): (int(values["calls"]), int(values["usec"]))
        for name, values in client.info("commandstats").items()
    }
