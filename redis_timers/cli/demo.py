"""`redis-timers demo`: schedule a few dozen timers, run a worker, and show how late each one fires.

Lateness is measured on the Redis server's clock, the clock the library schedules by: the demo
estimates the offset between the server's clock and the local wall clock from a few TIME round
trips, and reports, for each timer, handler start minus due time. The wall clock, not the monotonic
one: a server on this host reads the same wall clock, so while the system slews it (time
synchronisation at work) both move alike, where the monotonic clock would drift from the server's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import math
import os
import random
import secrets
import sys
import threading
import time
from typing import Any, TextIO

import anyio
import pydantic
import redis
import redis.asyncio
import redis.exceptions

from redis_timers.aio.timers import Timers as AsyncTimers
from redis_timers.cli import clients
from redis_timers.cli.connection_check import DEFAULT_CONNECT_TIMEOUT_SECONDS, explain
from redis_timers.cli.embedded import EmbeddedCluster, EmbeddedServer
from redis_timers.cli.redis_url import redact_url
from redis_timers.keys import Namespace
from redis_timers.router import Router
from redis_timers.settings import TimersSettings
from redis_timers.sync.timers import Timers as SyncTimers

NAMESPACE = "redis-timers-demo"
"""Keys of the demo's own, so that a run against an app's Redis never touches the app's timers."""
LEAD_SECONDS = 0.5
"""The first timer is due this long after scheduling starts, so that every timer is stored before it is due."""
FINISH_MARGIN_SECONDS = 5.0
"""How long after the last due time the demo waits for missing firings before it gives up on them."""
CALIBRATION_ROUNDS = 7
CLUSTER_PRIMARIES = 3
CLUSTER_REPLICAS = 3
SHARDS_PER_PRIMARY = 2
"""On an embedded cluster the demo splits its namespace into this many shards per primary (unless TIMERS_SHARDS
says otherwise), so that every primary fires a share of the timers."""
SCRIPT_COMMANDS = ("cmdstat_evalsha", "cmdstat_eval")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


class Greeting(pydantic.BaseModel):
    number: int
    due_ms: int
    """When the timer is due, in ms since the epoch on the Redis server's clock."""
    text: str


@dataclasses.dataclass(frozen=True)
class ServerClock:
    """The Redis server's clock, read locally: our wall clock plus a measured offset."""

    offset_ms: float
    uncertainty_ms: float
    """Half the shortest round trip: the offset is right to within this."""

    def now_ms(self) -> float:
        return time.time() * 1000.0 + self.offset_ms


def calibrate(client: redis.Redis, rounds: int = CALIBRATION_ROUNDS) -> ServerClock:
    """Take the offset from the TIME round trip with the shortest RTT (the server read its clock within it)."""
    best: tuple[float, float] | None = None  # (round trip ms, offset ms)
    for _ in range(rounds):
        sent = time.time()
        seconds, microseconds = client.time()
        received = time.time()
        round_trip_ms = (received - sent) * 1000.0
        offset_ms = seconds * 1000.0 + microseconds / 1000.0 - (sent + received) * 500.0
        if best is None or round_trip_ms < best[0]:
            best = (round_trip_ms, offset_ms)
    assert best is not None
    return ServerClock(offset_ms=best[1], uncertainty_ms=best[0] / 2)


@dataclasses.dataclass(frozen=True)
class PlannedTimer:
    timer_id: str
    payload: Greeting
    activate_at: datetime.datetime


def timer_id(number: int) -> str:
    return f"timer-{number:03d}"


def plan_timers(count: int, spread: float, start_ms: float, rng: random.Random) -> list[PlannedTimer]:
    """`count` timers due at random whole milliseconds (server clock) over `spread` seconds after the lead."""
    planned = []
    for number in range(1, count + 1):
        due_ms = math.ceil(start_ms + (LEAD_SECONDS + rng.uniform(0.0, spread)) * 1000.0)
        payload = Greeting(number=number, due_ms=due_ms, text=f"hello from timer {number}")
        activate_at = _EPOCH + datetime.timedelta(milliseconds=due_ms)
        planned.append(PlannedTimer(timer_id(number), payload, activate_at))
    return planned


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty list."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclasses.dataclass(frozen=True)
class Summary:
    expected: int
    lateness_ms: list[float]
    early: int
    duplicates: int

    @property
    def ok(self) -> bool:
        return len(self.lateness_ms) == self.expected and self.early == 0

    def line(self) -> str:
        parts = [f"fired {len(self.lateness_ms)}/{self.expected}"]
        if self.lateness_ms:
            ordered = sorted(self.lateness_ms)
            parts.append(
                f"lateness p50 {percentile(ordered, 0.5):.2f} ms, p99 {percentile(ordered, 0.99):.2f} ms, "
                f"max {ordered[-1]:.2f} ms"
            )
        parts.append(f"early: {self.early}")
        if self.duplicates:
            parts.append(f"fired twice: {self.duplicates}")
        return ", ".join(parts)


class Recorder:
    """Measures each firing as its handler starts; called from the event loop or from handler threads."""

    def __init__(self, clock: ServerClock, start_ms: float, expected: int, out: TextIO) -> None:
        self._clock = clock
        self._start_ms = start_ms
        self._expected = expected
        self._out = out
        self._lock = threading.Lock()
        self._lateness_ms: dict[int, float] = {}
        self._duplicates = 0

    def fired(self, payload: Greeting) -> bool:
        """Record one firing; returns whether every timer has now fired."""
        lateness_ms = self._clock.now_ms() - payload.due_ms
        with self._lock:
            again = payload.number in self._lateness_ms
            if again:
                self._duplicates += 1
            else:
                self._lateness_ms[payload.number] = lateness_ms
            if lateness_ms < -self._clock.uncertainty_ms:
                verdict = f"{-lateness_ms:7.2f} ms EARLY"
            else:
                verdict = f"{lateness_ms:7.2f} ms late"
            due_s = (payload.due_ms - self._start_ms) / 1000.0
            note = "  (again: at-least-once delivery)" if again else ""
            line = f"  timer {payload.number:3d}  due +{due_s:6.3f} s  fired {verdict}{note}"
            print(line, file=self._out, flush=True)
            return len(self._lateness_ms) == self._expected

    def fired_numbers(self) -> list[int]:
        with self._lock:
            return sorted(self._lateness_ms)

    def summary(self) -> Summary:
        with self._lock:
            lateness = list(self._lateness_ms.values())
            early = sum(1 for value in lateness if value < -self._clock.uncertainty_ms)
            return Summary(self._expected, lateness, early, self._duplicates)


@dataclasses.dataclass(frozen=True)
class DemoRun:
    url: str
    cluster: bool
    topic: str
    settings: TimersSettings
    planned: list[PlannedTimer]
    recorder: Recorder
    deadline: float
    """Monotonic time after which the demo stops waiting for firings."""


async def _run_async(run: DemoRun) -> None:
    client = clients.async_client(run.url, cluster=run.cluster)
    all_fired = anyio.Event()
    router = Router()

    @router.handler(topic=run.topic, schema=Greeting)
    async def greet(payload: Greeting, context: dict[str, Any]) -> None:
        if run.recorder.fired(payload):
            all_fired.set()

    timers = AsyncTimers(redis_client=client, routers=[router], settings=run.settings)
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(timers.run_forever)
            for item in run.planned:
                await timers.set_timer(run.topic, item.timer_id, item.payload, activate_at=item.activate_at)
            with anyio.move_on_after(max(0.0, run.deadline - time.monotonic())):
                await all_fired.wait()
            timers.stop()  # run_forever returns once in-flight handlers are done; the task group waits for it
    finally:
        await client.aclose()


def _run_sync(run: DemoRun) -> None:
    client = clients.sync_client(run.url, cluster=run.cluster)
    all_fired = threading.Event()
    router = Router()

    @router.handler(topic=run.topic, schema=Greeting)
    def greet(payload: Greeting, context: dict[str, Any]) -> None:
        if run.recorder.fired(payload):
            all_fired.set()

    timers = SyncTimers(redis_client=client, routers=[router], settings=run.settings)
    failures: list[Exception] = []

    def work() -> None:
        try:
            timers.run_forever()
        except Exception as error:
            failures.append(error)
            all_fired.set()

    worker = threading.Thread(target=work, name="redis-timers-demo-worker")
    worker.start()
    try:
        for item in run.planned:
            timers.set_timer(run.topic, item.timer_id, item.payload, activate_at=item.activate_at)
        all_fired.wait(max(0.0, run.deadline - time.monotonic()))
    finally:
        timers.stop()
        worker.join()
        client.close()
    if failures:
        raise failures[0]


def describe_server(client: redis.Redis) -> str:
    info = client.info("server")
    name = str(info.get("server_name") or "redis")
    version = info.get(f"{name}_version") or info.get("redis_version") or "?"
    return f"{name} {version}"


def script_calls(primaries: list[tuple[str, int]]) -> dict[str, int]:
    """Script calls (EVALSHA and EVAL) each primary has served so far, by `host:port` (INFO commandstats)."""
    calls: dict[str, int] = {}
    for host, port in primaries:
        client = redis.Redis(host=host, port=port)
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
        calls[f"{host}:{port}"] = sum(int(stats.get(name, {}).get("calls", 0)) for name in SCRIPT_COMMANDS)
    return calls


def fired_per_primary_line(cluster_client: Any, namespace: Namespace, topic: str, numbers: list[int]) -> str:
    """Each primary's share of the timers that fired: the primary serving each timer's shard (its tag's slot)."""
    fired: dict[str, int] = {node.name: 0 for node in cluster_client.get_primaries()}
    for number in numbers:
        node = cluster_client.get_node_from_key(namespace.keyspace_for(topic, timer_id(number)).tag)
        fired[node.name] = fired.get(node.name, 0) + 1
    total = sum(fired.values()) or 1
    shares = ", ".join(f"{node} {count} ({100 * count / total:.0f}%)" for node, count in sorted(fired.items()))
    return f"timers fired per primary (the primary of each timer's shard): {shares}"


def shares_line(before: dict[str, int], after: dict[str, int]) -> str:
    """Each primary's share of the script calls made between `before` and `after`: where the timers fired."""
    made = {node: after.get(node, 0) - before.get(node, 0) for node in sorted(after)}
    total = sum(made.values()) or 1
    shares = ", ".join(f"{node} {calls} ({100 * calls / total:.0f}%)" for node, calls in made.items())
    return f"script calls per primary (set_timer and worker round trips, INFO commandstats): {shares}"


def run_demo(
    *,
    redis_url: str | None,
    cluster: bool = False,
    count: int,
    spread: float,
    front_end: str,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
    out: TextIO | None = None,
) -> int:
    """Returns 0 when every timer fired and none early, 1 otherwise, 2 when there was no Redis to run on."""
    out = sys.stdout if out is None else out
    server: EmbeddedServer | EmbeddedCluster | None = None
    overrides: dict[str, Any] = {}
    if not redis_url:
        try:
            server = EmbeddedCluster(CLUSTER_PRIMARIES, CLUSTER_REPLICAS) if cluster else EmbeddedServer()
        except (RuntimeError, OSError) as error:
            print(f"redis-timers demo: cannot start an embedded server: {error}", file=sys.stderr)
            return 2
        redis_url = server.url
        if cluster and "TIMERS_SHARDS" not in os.environ:
            overrides["shards"] = CLUSTER_PRIMARIES * SHARDS_PER_PRIMARY
    try:
        return _demo(
            redis_url,
            cluster=cluster,
            settings=TimersSettings.from_env(namespace=NAMESPACE, **overrides),
            embedded=server is not None,
            count=count,
            spread=spread,
            front_end=front_end,
            connect_timeout=connect_timeout,
            out=out,
        )
    except KeyboardInterrupt:
        print("interrupted", file=out, flush=True)
        return 130
    finally:
        if server is not None:
            server.close()
            print(f"embedded {'cluster' if cluster else 'server'} shut down", file=out, flush=True)


def _demo(
    url: str,
    *,
    cluster: bool,
    settings: TimersSettings,
    embedded: bool,
    count: int,
    spread: float,
    front_end: str,
    connect_timeout: float,
    out: TextIO,
) -> int:
    # Server description, clock calibration, clean-up; with timeouts, so that a server that never answers is said.
    # On a cluster: the node the URL names (every node of a cluster on this host reads the same clock).
    timeouts = {"socket_connect_timeout": connect_timeout, "socket_timeout": connect_timeout}
    control = redis.Redis.from_url(url, **timeouts)
    tidy: Any = None
    topic = f"demo-{secrets.token_hex(4)}"  # one topic per run: demos sharing a server never take each other's timers
    try:
        try:
            server_name = describe_server(control)
            clock = calibrate(control)
            tidy = clients.sync_client(url, cluster=True, **timeouts) if cluster else control
            primaries = [(node.host, node.port) for node in tidy.get_primaries()] if cluster else []
            calls_before = script_calls(primaries)
        except (redis.exceptions.RedisError, redis.exceptions.RedisClusterException, OSError) as error:
            print(f"redis-timers demo: {explain(error, redact_url(url), connect_timeout)}", file=sys.stderr)
            return 2
        where = "embedded, started for this demo" if embedded else "from --redis-url / REDIS_URL"
        if cluster:
            where += f"; a cluster of {len(primaries)} primaries, namespace in {settings.shards} shard(s)"
        print(
            f"redis-timers demo: {count} timers with pydantic payloads, due at random over {spread:g} s, "
            f"{front_end} front end",
            file=out,
        )
        print(f"Redis: {server_name} at {redact_url(url)} ({where})", file=out)
        print(
            f"lateness = handler start - due time, on the server's clock "
            f"(offset measured with {CALIBRATION_ROUNDS} TIME round trips, to within {clock.uncertainty_ms:.2f} ms)",
            file=out,
            flush=True,
        )
        start_ms = clock.now_ms()
        planned = plan_timers(count, spread, start_ms, random.Random())
        recorder = Recorder(clock, start_ms, count, out)
        run = DemoRun(
            url=url,
            cluster=cluster,
            topic=topic,
            settings=settings,
            planned=planned,
            recorder=recorder,
            deadline=time.monotonic() + LEAD_SECONDS + spread + FINISH_MARGIN_SECONDS,
        )
        if front_end == "async":
            anyio.run(_run_async, run)
        else:
            _run_sync(run)
        print("worker stopped gracefully", file=out)
        summary = recorder.summary()
        print(summary.line(), file=out, flush=True)
        if cluster:
            print(shares_line(calls_before, script_calls(primaries)), file=out, flush=True)
            namespace = Namespace(settings.namespace, settings.shards)
            print(fired_per_primary_line(tidy, namespace, topic, recorder.fired_numbers()), file=out, flush=True)
        return 0 if summary.ok else 1
    finally:
        if tidy is not None:
            # Nothing to tidy on a server we cannot reach. One key at a time: on a cluster, each shard is a slot.
            with contextlib.suppress(redis.exceptions.RedisError, redis.exceptions.RedisClusterException):
                for keyspace in Namespace(settings.namespace, settings.shards).keyspaces:
                    # The topic's keys, the shard's heads index and the demo worker's registered topic set.
                    for key in (*keyspace.topic_keys(topic), keyspace.heads, keyspace.topic_set([topic])):
                        tidy.delete(key)
            if tidy is not control:
                tidy.close()
        control.close()
