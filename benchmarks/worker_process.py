"""A benchmark worker process, driven by the parent over stdin and stdout.

    python -m benchmarks.worker_process --url URL [--cluster --shards N] [--freeze-gc]

Each round runs one worker of one kind: `library` runs `Timers.run_forever` of the async or
the sync front end with a no-op handler; `raw` runs the raw minimum's poller
(benchmarks/raw.py) on the async or the blocking client. Handlers record `time.time()` and
nothing else; the parent measures from outside, through the keyspace and INFO. Async rounds
run on an event loop that lives in a thread of its own for the life of the process, with
one `redis.asyncio` client; sync rounds run in a thread with one `redis.Redis` client. Both
clients stay connected between rounds, so no measured round pays for connecting. With `--cluster`, URL names
a node of a Redis Cluster, both clients are cluster clients, library workers run over a namespace of N shards,
and there is no raw round (the raw minimum's layout is one slot). With `--freeze-gc`, the process freezes its
start-up heap once, before `ready` (`heap.freeze_heap`, what `TIMERS_FREEZE_GC=1` has `run_forever` do), for
rounds of every kind alike: a full collection of that heap holds the GIL for tens of ms, late for any timer due
meanwhile, and how often one comes depends on how much the round allocates, not on what it is measured against.
Every round counts the full collections that ran during it and the longest.

Protocol, one line each way:
    child  -> ready                                  connected, scripts loaded
    parent -> go FRONT IMPL TOPIC RECORDS [N=V...]   start a worker (FRONT async|sync, IMPL library|raw)
                                                     on TOPIC; RECORDS=1 keeps each handler's start time
                                                     and its timer's LatenessPayload; N=V: a number, for
                                                     library a TimersSettings field, for raw `poll_sleep`
    parent -> stop                                   stop it (run_forever returns / the poller ends)
    child  -> stopped JSON                           {"handled", "offset_ms", "offset_error_ms", "cpu_seconds",
                                                      "full_collection_ms" (each full collection's length),
                                                      "records"?}
    parent -> exit, or end of input                  the child exits
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import dataclasses
import gc
import json
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, cast

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

from benchmarks import raw
from benchmarks.common import KEYSPACE, RAW_POLL_SLEEP, SETTINGS, BenchPayload, LatenessPayload, clock_offset_ms
from redis_timers import Router, heap
from redis_timers import Timers as AsyncTimers
from redis_timers.sync import Timers as SyncTimers

STOP_TIMEOUT = 60.0


class FullCollections:
    """The garbage collector's full (oldest-generation) passes: how many ran, and how long each held the GIL."""

    def __init__(self) -> None:
        self.durations_ms: list[float] = []
        self._started = 0.0
        gc.callbacks.append(self._observe)

    def _observe(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] < 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.durations_ms.append((time.perf_counter() - self._started) * 1000)


FULL_COLLECTIONS = FullCollections()


@dataclasses.dataclass
class Round:
    """What one go..stop round saw: (local start time, payload, or raw payload JSON) per handler call."""

    topic: str
    keep_records: bool
    offset_ms: float
    offset_error_ms: float
    options: dict[str, float] = dataclasses.field(default_factory=dict)
    starts: list[tuple[float, Any]] = dataclasses.field(default_factory=list)
    # CPU time of the whole process (every thread) from go to stop: what the worker cost its host, which, unlike
    # a rate, other load on the machine hardly changes.
    cpu_started: float = dataclasses.field(default_factory=time.process_time)
    collections_before: int = dataclasses.field(default_factory=lambda: len(FULL_COLLECTIONS.durations_ms))

    @property
    def schema(self) -> type[BenchPayload] | type[LatenessPayload]:
        """Rounds that keep records handle the lateness scenario's timers, which carry their due time."""
        return LatenessPayload if self.keep_records else BenchPayload

    def library_handler(self, payload: BenchPayload | LatenessPayload, context: dict[str, Any]) -> None:
        self.starts.append((time.time(), payload))

    async def async_library_handler(self, payload: BenchPayload | LatenessPayload, context: dict[str, Any]) -> None:
        self.starts.append((time.time(), payload))

    def raw_handler(self, timer_id: bytes, data: bytes) -> None:
        self.starts.append((time.time(), data))

    def report(self) -> str:
        result: dict[str, Any] = {
            "handled": len(self.starts),
            "offset_ms": self.offset_ms,
            "offset_error_ms": self.offset_error_ms,
            "cpu_seconds": time.process_time() - self.cpu_started,
        }
        result["full_collection_ms"] = FULL_COLLECTIONS.durations_ms[self.collections_before :]
        if self.keep_records:
            records = []
            for started, payload in self.starts:
                timer = (
                    payload if isinstance(payload, LatenessPayload) else LatenessPayload.model_validate_json(payload)
                )
                records.append([started * 1000 + self.offset_ms, timer.due_ms, timer.relative])
            result["records"] = records
        return "stopped " + json.dumps(result)


class Host:
    """The clients, the event loop thread, and the worker of the current round."""

    def __init__(self, url: str, cluster: bool = False, shards: int = 1) -> None:
        self.cluster = cluster
        self.settings = dataclasses.replace(SETTINGS, shards=shards)
        # Typed as plain clients: the library takes either, and the raw rounds (plain clients only) use them.
        self.client: redis.Redis = (
            cast(redis.Redis, redis.cluster.RedisCluster.from_url(url)) if cluster else redis.Redis.from_url(url)
        )
        self.pop_sha = "" if cluster else raw.load_scripts(self.client)[1]
        self.loop = asyncio.new_event_loop()
        self.loop_thread = threading.Thread(target=self.loop.run_forever, name="asyncio", daemon=True)
        self.loop_thread.start()
        self.async_client: redis.asyncio.Redis = (
            cast(redis.asyncio.Redis, redis.asyncio.cluster.RedisCluster.from_url(url))
            if cluster
            else redis.asyncio.Redis.from_url(url)
        )
        self._stop: Callable[[], None] = lambda: None

    def start(self, front: str, impl: str, current: Round) -> None:
        if self.cluster and impl != "library":
            raise SystemExit("the raw minimum does not run on a cluster")
        timeline, payloads = KEYSPACE.timeline(current.topic), KEYSPACE.payloads(current.topic)
        overrides: dict[str, Any] = dict(current.options)
        settings = dataclasses.replace(self.settings, **overrides) if impl == "library" else self.settings
        sleep = current.options.get("poll_sleep", RAW_POLL_SLEEP)
        if front == "sync":
            thread: threading.Thread
            if impl == "library":
                router = Router()
                router.handler(topic=current.topic, schema=current.schema)(current.library_handler)
                timers = SyncTimers(redis_client=self.client, routers=[router], settings=settings)
                thread = threading.Thread(target=timers.run_forever, daemon=True)
                request_stop = timers.stop
            else:
                stopped = threading.Event()
                poll_args = (self.client, self.pop_sha, timeline, payloads, stopped, current.raw_handler, sleep)
                thread = threading.Thread(target=raw.poll_sync, args=poll_args, daemon=True)
                request_stop = stopped.set
            thread.start()
            self._stop = lambda: self._join(thread, request_stop)
            return
        work: Coroutine[Any, Any, None]
        if impl == "library":
            router = Router()
            router.handler(topic=current.topic, schema=current.schema)(current.async_library_handler)
            async_timers = AsyncTimers(redis_client=self.async_client, routers=[router], settings=settings)
            work, request_stop = async_timers.run_forever(), async_timers.stop
        else:
            async_stopped = asyncio.Event()
            work = raw.poll_async(
                self.async_client, self.pop_sha, timeline, payloads, async_stopped, current.raw_handler, sleep
            )
            request_stop = async_stopped.set
        future = asyncio.run_coroutine_threadsafe(work, self.loop)
        self._stop = lambda: self._settle(future, request_stop)

    def stop(self) -> None:
        self._stop()

    @staticmethod
    def _join(thread: threading.Thread, request_stop: Callable[[], None]) -> None:
        request_stop()
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            raise SystemExit("the worker did not stop")

    def _settle(self, future: concurrent.futures.Future[None], request_stop: Callable[[], None]) -> None:
        self.loop.call_soon_threadsafe(request_stop)  # the async front end's stop() belongs to its loop
        future.result(STOP_TIMEOUT)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.async_client.aclose(), self.loop).result(STOP_TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.loop_thread.join(STOP_TIMEOUT)
        self.client.close()


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def serve(url: str, cluster: bool = False, shards: int = 1, freeze_gc: bool = False) -> None:
    host = Host(url, cluster, shards)
    if freeze_gc:
        heap.freeze_heap()
    say("ready")
    current: Round | None = None
    for line in sys.stdin:
        command = line.split()
        if not command or command[0] == "exit":
            break
        if command[0] == "go" and len(command) >= 5 and current is None:
            _, front, impl, topic, keep, *assignments = command
            # Only rounds that keep records map their start times onto the server's clock: the TIME round trips
            # would otherwise count among the commands of a drain (on a cluster, all on one node).
            offset_ms, error_ms = clock_offset_ms(host.client) if keep == "1" else (0.0, 0.0)
            options = {name: float(value) for name, _, value in (item.partition("=") for item in assignments)}
            current = Round(topic, keep == "1", offset_ms, error_ms, options)
            host.start(front, impl, current)
        elif command[0] == "stop" and current is not None:
            host.stop()
            say(current.report())
            current = None
        else:
            raise SystemExit(f"unexpected command {line!r}")
    if current is not None:
        host.stop()  # The parent went away in the middle of a round.
    host.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--cluster", action="store_true", help="URL names a node of a Redis Cluster")
    parser.add_argument("--shards", type=int, default=1, help="TIMERS_SHARDS of the library's rounds")
    parser.add_argument("--freeze-gc", action="store_true", help="freeze the start-up heap before the first round")
    args = parser.parse_args()
    serve(args.url, args.cluster, args.shards, args.freeze_gc)


if __name__ == "__main__":
    main()
