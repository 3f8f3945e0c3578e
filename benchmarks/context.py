"""What a scenario runs with: sizes, the server, the worker processes, the results, a progress log."""

from __future__ import annotations

import dataclasses
import random
import sys
import time

import pydantic
import redis

from benchmarks.common import KEYSPACE, SETTINGS, BenchPayload, LatenessPayload, wait_until
from benchmarks.results import Results
from benchmarks.workers import WorkerPool
from redis_timers import Router
from redis_timers.sync import Timers as SyncTimers

TOPICS = ("schedule", "drain", "lateness", "idle", "scale")
SCENARIOS = ("schedule", "drain", "lateness", "idle", "scale")


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
    fanout: tuple[int, ...] = (1, 2, 4)
    scenarios: tuple[str, ...] = SCENARIOS
    seed: int = 1
    legacy_import: bool = True
    """False (`--no-legacy-import`): library workers run with LEGACY_IMPORT_OFF."""

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
        )


class Context:
    def __init__(self, url: str, config: Config, pool: WorkerPool) -> None:
        self.url = url
        self.config = config
        self.pool = pool
        self.control = redis.Redis.from_url(url, socket_timeout=60)
        self.results = Results()
        self.rng = random.Random(config.seed)
        router = Router()
        for topic in TOPICS:
            if topic == "lateness":
                router.handler(topic=topic, schema=LatenessPayload)(_never_called)
            else:
                router.handler(topic=topic, schema=BenchPayload)(_never_called)
        self.timers = SyncTimers(redis_client=self.control, routers=[router], settings=SETTINGS)
        """The parent's own blocking `Timers`, to schedule timers that must wake a sleeping worker."""
        self._started = time.monotonic()

    def progress(self, message: str) -> None:
        sys.stderr.write(f"[{time.monotonic() - self._started:6.1f}s] {message}\n")
        sys.stderr.flush()

    def settle(self, impl: str, topic: str, seconds: float) -> None:
        """Let a just-started worker get going: subscribed (library) and past its start-up round trips."""
        if impl == "library":
            channel = KEYSPACE.channel(topic)
            wait_until(lambda: _subscribers(self.control, channel) >= 1, 10, "the worker to subscribe", 0.005)
        time.sleep(seconds)

    def close(self) -> None:
        self.control.close()


def _subscribers(client: redis.Redis, channel: str) -> int:
    reply = client.pubsub_numsub(channel)
    return int(reply[0][1]) if reply else 0


def _never_called(payload: pydantic.BaseModel, context: dict[str, object]) -> None:
    raise AssertionError("the benchmark's own Timers only schedules")
