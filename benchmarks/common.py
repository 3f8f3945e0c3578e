"""What every scenario shares: the keyspace, the payload, server probes and small statistics."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Literal

import pydantic
import redis

from redis_timers import TimersSettings
from redis_timers.keys import Keyspace, Namespace

Front = Literal["async", "sync"]
Impl = Literal["library", "raw"]
FRONTS: tuple[Front, ...] = ("async", "sync")
KINDS: tuple[tuple[Front, Impl], ...] = (("async", "library"), ("async", "raw"), ("sync", "library"), ("sync", "raw"))

NAMESPACE = "bench"
"""Every key the benchmark writes is `{bench}:...`, so it never touches an application's `{timers}` keys."""
KEYSPACE = Keyspace(NAMESPACE)
ONE_SHARD = Namespace(NAMESPACE)
SETTINGS = TimersSettings(namespace=NAMESPACE)
"""The library's defaults (not the environment's `TIMERS_*`), so that runs compare."""

CLUSTER_PRIMARIES = 3
CLUSTER_SHARDS = 6
"""The cluster scenario's `TIMERS_SHARDS`: a multiple of the 3 primaries, so that each holds the same number
of shards (2), and twice as many, the shape docs/cluster.md recommends: the namespace can later be spread over
6 primaries without changing N."""

RAW_BATCH = 100
"""Timers the raw minimum pops per Lua call."""
RAW_POLL_SLEEP = 0.001
"""Seconds the raw poller sleeps after a pop that found fewer than RAW_BATCH due timers (drain, scale)."""
RAW_POLL_SLEEPS_MS: tuple[int, ...] = (1, 10)
"""The sleeps (ms) of the raw pollers beside the library in the lateness and idle scenarios: the sleep sets
both the poller's lateness and its idle cost, so the table shows more than one."""

LEGACY_IMPORT_OFF: dict[str, float] = {"legacy_import": False}
"""Settings of a library worker that never looks for the original library's timers (`--no-legacy-import`,
`TIMERS_LEGACY_IMPORT=0`)."""


def poller(sleep_ms: int) -> str:
    """The implementation name of the raw poller sleeping `sleep_ms` (`raw-1ms`), as results and rows use it."""
    return f"raw-{sleep_ms}ms"


def poller_label(sleep_ms: int) -> str:
    return f"a poller sleeping {sleep_ms} ms"


class BenchmarkError(RuntimeError):
    """A scenario could not produce a trustworthy figure (timed out, lost or duplicated timers)."""


class BenchPayload(pydantic.BaseModel):
    """The small payload of every benchmark timer: its own due time, for the lateness scenario."""

    due_ms: int = 0


class LatenessPayload(pydantic.BaseModel):
    """A lateness timer: its due time in server ms, and whether it was set with a relative delay.

    A relative timer's due time is the caller's clock when it sent `set_timer` (mapped onto the
    server's clock) plus the delay: what the caller asked for, which the library must not beat.
    """

    due_ms: float
    relative: bool = False


def body(due_ms: int) -> str:
    """The JSON the library stores for `BenchPayload(due_ms=due_ms)`, written directly by loaders and raw code."""
    return f'{{"due_ms":{due_ms}}}'


def control_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=60)


def server_time_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def clock_offset_ms(client: redis.Redis, samples: int = 25) -> tuple[float, float]:
    """(server ms - local `time.time()` ms, uncertainty in ms) from the TIME round trip with the least delay."""
    best: tuple[float, float] | None = None
    for _ in range(samples):
        before = time.time()
        seconds, micros = client.time()
        after = time.time()
        server_ms = int(seconds) * 1000 + int(micros) / 1000
        half_rtt_ms = (after - before) * 500
        offset = server_ms - (before + after) * 500
        if best is None or half_rtt_ms < best[1]:
            best = (offset, half_rtt_ms)
    assert best is not None
    return best


def delete_namespace(client: redis.Redis) -> None:
    """Remove every `{bench}` key (and `{bench:...}`, a namespace of several shards), and wait until the server
    has really freed them."""
    pattern = "\\{" + NAMESPACE + "[}:]*"
    keys = list(client.scan_iter(match=pattern, count=1000))
    for start in range(0, len(keys), 500):
        client.unlink(*keys[start : start + 500])
    wait_lazyfree(client)


def delete_topic(client: redis.Redis, topic: str, namespace: Namespace = ONE_SHARD) -> None:
    """Remove `topic`'s keys in every shard (one UNLINK per shard: a shard's keys share a slot), and its entry in
    each shard's heads index (which raw writers keep too)."""
    for keyspace in namespace.keyspaces:
        client.unlink(*keyspace.topic_keys(topic))
        client.zrem(keyspace.heads, topic)
    if namespace.shards == 1:
        wait_lazyfree(client)  # A cluster client's INFO is per node; no cluster figure reads memory.


def wait_lazyfree(client: redis.Redis, timeout: float = 30.0) -> None:
    """UNLINK (and DEL under lazyfree-lazy-user-del) frees in the background; memory figures need it done."""
    wait_until(lambda: int(client.info("memory").get("lazyfree_pending_objects", 0)) == 0, timeout, "lazy free")


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.001) -> None:
    """Poll `condition` (a Redis probe: there is no event to wait on) until true; BenchmarkError after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise BenchmarkError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return float(sorted_values[rank - 1])
