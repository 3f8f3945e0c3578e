"""What a scenario runs with: sizes, the server, the worker processes, the results, a progress log."""

from __future__ import annotations

import dataclasses
import random
import sys
import time
from typing import cast

import pydantic
import redis
import redis.cluster

from benchmarks.common import SETTINGS, BenchPayload, LatenessPayload, wait_until
from benchmarks.results import Results
from benchmarks.workers import WorkerPool
from redis_timers import Router
from redis_timers.keys import Namespace
from redis_timers.sync import Timers as SyncTimers

TOPICS = ("schedule", "drain", "lateness", "idle", "scale")
SCENARIOS = ("schedule", "bulk", "drain", "lateness", "legacy", "idle", "scale", "cluster")


@dataclasses.dataclass(frozen=True)
class Config:
    timers: int = 10_000
    """Timers per schedule and drain measurement."""
    repeat: int = 3
    """Repetitions of schedule, drain, fan-out and scale; the table shows medians."""
    window_repeat: int = 1
    """Repetitions of the lateness and idle windows (each is one long window of many samples)."""
    lateness_timers: int = 500
    lateness_seconds: float = 10.0
    idle_seconds: float = 10.0
    idle_interval_seconds: float = 1.0
    """The shortened interval of each periodic job while its idle window is measured (a whole number of them
    fits the window); a multiple of the sync listener's 0.25 s poll, below which its PINGs cannot come."""
    settle_seconds: float = 1.0
    """How long a started worker runs before an idle window opens (start-up claims are not idleness)."""
    scale_levels: tuple[int, ...] = (10**4, 10**5, 10**6)
    scale_ops: int = 2_000
    """set_timer calls and fired timers measured at each scale level."""
    topic_levels: tuple[int, ...] = (1, 100, 1000, 5000)
    """Topic counts of the scale scenario's round-trip cost (benchmarks/topics.py)."""
    fanout: tuple[int, ...] = (1, 2, 4)
    cluster_timers: int = 10_000
    """Timers per drain of the cluster scenario."""
    scenarios: tuple[str, ...] = SCENARIOS
    seed: int = 1
    legacy_import: bool = True
    """False (`--no-legacy-import`): library workers run with LEGACY_IMPORT_OFF."""
    freeze_gc: bool = True
    """Worker processes freeze their start-up heap, as `TIMERS_FREEZE_GC=1` does (`--no-freeze-gc`: they don't)."""

    @classmethod
    def quick(cls) -> Config:
        return cls(
            timers=200,
            repeat=1,
            lateness_timers=50,
            lateness_seconds=1.0,
            idle_seconds=1.0,
            idle_interval_seconds=0.25,
            settle_seconds=0.3,
            scale_levels=(10**3, 10**4),
            scale_ops=40,
            topic_levels=(1, 100),
            cluster_timers=200,
        )


class Context:
    def __init__(
        self,
        url: str,
        config: Config,
        pool: WorkerPool,
        *,
        parent: Context | None = None,
        cluster_nodes: tuple[redis.Redis, ...] = (),
        shards: int = 1,
        poll_interval: float = 0.001,
    ) -> None:
        """`cluster_nodes`: a plain client of each primary of the cluster `url` names; then `control` and the
        parent's `Timers` use a cluster client, over a namespace of `shards` shards. `parent`: the context of the
        run's single server, whose results and progress clock this one shares, so that one table holds both.
        `poll_interval`: seconds between the parent's probes of whether a drain is done."""
        self.url = url
        self.config = config
        self.pool = pool
        self.nodes = cluster_nodes
        self.namespace = Namespace(SETTINGS.namespace, shards)
        self.settings = dataclasses.replace(SETTINGS, shards=shards)
        self.control: redis.Redis = (
            cast(redis.Redis, redis.cluster.RedisCluster.from_url(url, socket_timeout=60))
            if cluster_nodes
            else redis.Redis.from_url(url, socket_timeout=60)
        )
        """Typed as a plain client: a cluster client has the commands the scenarios send (single-slot ones)."""
        self.results: Results = parent.results if parent is not None else Results()
        self.poll_interval = poll_interval
        self.rng = random.Random(config.seed)
        router = Router()
        for topic in TOPICS:
            if topic == "lateness":
                router.handler(topic=topic, schema=LatenessPayload)(_never_called)
            else:
                router.handler(topic=topic, schema=BenchPayload)(_never_called)
        self.timers = SyncTimers(redis_client=self.control, routers=[router], settings=self.settings)
        """The parent's own blocking `Timers`, to schedule timers that must wake a sleeping worker."""
        self._started: float = parent._started if parent is not None else time.monotonic()

    def progress(self, message: str) -> None:
        sys.stderr.write(f"[{time.monotonic() - self._started:6.1f}s] {message}\n")
        sys.stderr.flush()

    def settle(self, impl: str, topic: str, seconds: float) -> None:
        """Let a just-started worker get going: subscribed (library) and past its start-up round trips."""
        if impl == "library":
            # Every shard's channel: on a cluster, a worker listens to each shard's node.
            channels = [keyspace.channel(topic) for keyspace in self.namespace.keyspaces]
            wait_until(
                lambda: all(self._subscribers(channel) >= 1 for channel in channels),
                10,
                "the worker to subscribe",
                0.005,
            )
        time.sleep(seconds)

    def _subscribers(self, channel: str) -> int:
        # PUBLISH reaches every node of a cluster, so a subscriber on any node hears it: count them all.
        return sum(_subscribers(node, channel) for node in self.nodes or (self.control,))

    def pending(self, topic: str, boundary: str) -> int:
        """Timers of `topic` due or leased at or before `boundary`, over every shard."""
        timelines = [keyspace.timeline(topic) for keyspace in self.namespace.keyspaces]
        if len(timelines) == 1:
            return int(self.control.zcount(timelines[0], "-inf", boundary))
        pipe = self.control.pipeline(transaction=False)
        for timeline in timelines:
            pipe.zcount(timeline, "-inf", boundary)
        return sum(int(count) for count in pipe.execute())

    def close(self) -> None:
        self.control.close()
        for node in self.nodes:
            node.close()


def _subscribers(client: redis.Redis, channel: str) -> int:
    reply = client.pubsub_numsub(channel)
    return int(reply[0][1]) if reply else 0


def _never_called(payload: pydantic.BaseModel, context: dict[str, object]) -> None:
    raise AssertionError("the benchmark's own Timers only schedules")
