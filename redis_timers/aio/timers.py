"""`Timers` for asyncio services: the seed's interface over `redis.asyncio`."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any, ClassVar

import pydantic
import redis.asyncio
import redis.asyncio.cluster

from redis_timers.aio.driver import AsyncDriver
from redis_timers.aio.worker import AsyncWorker
from redis_timers.bulk import SetMode, SetResult, TimerRef, TimerSpec
from redis_timers.core import TimersCore
from redis_timers.records import DeadLetter, DueHistogram, Page, ScheduledTimer, TimerInfo, TimersStats
from redis_timers.timing import ms_to_datetime


class Timers(TimersCore):
    """Async timers over `redis.asyncio.Redis`. Runs `async def` handlers, and plain `def` ones in threads."""

    accepts_async_handlers: ClassVar[bool] = True
    front_end: ClassVar[str] = "async"

    def __init__(
        self, *, redis_client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster, **kwargs: Any
    ) -> None:
        super().__init__(redis_client=redis_client, **kwargs)
        self._driver = AsyncDriver(redis_client)
        self._workers: list[AsyncWorker] = []
        # Each worker has a stop flag of its own; a stop() made while no run_forever runs waits here for the
        # next one(s), until they have all returned (not merely the first: see the sync twin).
        self._stop_pending = False
        self._loops = 0  # run_forever calls under way

    def use_client(self, redis_client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster) -> None:
        """Use another client from now on (for example one built from a URL by the CLI); call it before running."""
        self.redis_client = redis_client
        self._driver = AsyncDriver(redis_client)

    async def set_timer(
        self,
        topic: str,
        timer_id: str,
        payload: pydantic.BaseModel,
        activation_period: datetime.timedelta | None = None,
        *,
        activate_at: datetime.datetime | None = None,
        durable: bool = False,
        mode: SetMode = "replace",
    ) -> datetime.datetime:
        """Schedule (or replace) a timer, due after `activation_period` or at the aware `activate_at`.

        Returns the due time (UTC, millisecond precision, on the Redis server's clock); with `durable`, once
        replicas confirmed the write (else `TimersDurabilityError`: the write stands, a retry is safe).
        `mode` says what to do when the timer is already scheduled ("replace", "keep", "earlier", "later"); when
        it kept the existing timer, the due time returned is the existing one.
        """
        call = self._set_timer_call(topic, timer_id, payload, activation_period, activate_at, mode)
        if not self._layout_checked:
            await self._driver.drive(self._layout_flow())
        if durable:
            return ms_to_datetime(await self._driver.drive(self._set_timer_durably_flow(call, topic, timer_id)))
        # The hot path: the call's one script call, without a flow's generator round.
        return ms_to_datetime(self._set_done(topic, timer_id, await self._driver.execute(call)))

    async def set_timers(self, timers: Iterable[TimerSpec], *, mode: SetMode = "replace") -> list[SetResult]:
        """Set many timers (`TimerSpec`s) as `set_timer` would one after the other, in batches per shard.

        Every timer is checked before anything is written. Returns each timer's `SetResult`, in order.
        """
        batches = self._set_batches(timers, mode)
        if not batches.calls:
            return []
        if not self._layout_checked:
            await self._driver.drive(self._layout_flow())
        return self._sets_done(batches.results(await self._driver.execute_each(batches.calls)))

    async def remove_timers(self, timers: Iterable[TimerRef]) -> list[bool]:
        """Remove many timers (`(topic, timer_id)` pairs); returns, per timer in order, whether one was scheduled."""
        batches = self._remove_batches(timers)
        if not batches.calls:
            return []
        if not self._layout_checked:
            await self._driver.drive(self._layout_flow())
        return batches.results(await self._driver.execute_each(batches.calls))

    async def remove_timer(self, topic: str, timer_id: str, *, durable: bool = False) -> bool:
        """Remove a timer; returns whether one was scheduled (with `durable`, once replicas confirmed it)."""
        return await self._driver.drive(self._remove_timer_flow(topic, timer_id, durable))

    async def get_timer(self, topic: str, timer_id: str) -> TimerInfo | None:
        return await self._driver.drive(self._get_timer_flow(topic, timer_id))

    async def fetch_all_timers(self) -> tuple[list[str], dict[str, str]]:
        """The original library's listing: every `topic--id` of the handled topics, earliest first, and a dict of
        their payload JSON. Unbounded: for tests and small sets."""
        return await self._driver.drive(self._fetch_all_timers_flow())

    async def fetch_ready_timers(self, timestamp: datetime.datetime) -> list[str]:
        """The original library's listing of the `topic--id` timers due at or before the aware `timestamp`."""
        return await self._driver.drive(self._fetch_ready_timers_flow(timestamp))

    async def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest failure first, in one `HGETALL` per shard: for small sets. For big ones,
        `dead_letter_page` and `count_dead_letters` read them in bounded pages."""
        return await self._driver.drive(self._dead_letters_flow())

    async def requeue_dead_letter(self, topic: str, timer_id: str, *, durable: bool = False) -> bool:
        """Schedule a dead letter's payload again, due now; returns whether the dead letter existed."""
        return await self._driver.drive(self._requeue_dead_letter_flow(topic, timer_id, durable))

    async def purge_dead_letters(self) -> int:
        """Delete every dead letter; returns how many there were. The server frees them in the background (`UNLINK`)."""
        return await self._driver.drive(self._purge_dead_letters_flow())

    async def topics(self) -> list[str]:
        """The handled topics and every topic with timers in the namespace (bounded SCAN pages per shard), sorted."""
        return await self._driver.drive(self._topics_flow())

    async def count_timers(
        self,
        topic: str | None = None,
        *,
        due_after: datetime.datetime | None = None,
        due_before: datetime.datetime | None = None,
    ) -> int:
        """How many timers (of `topic`, or of every topic) are due at or after `due_after` and before `due_before`
        (a running one counts at its lease's end); one `ZCOUNT` per topic and shard."""
        return await self._driver.drive(self._count_timers_flow(topic, due_after, due_before))

    async def list_timers(
        self,
        topic: str | None = None,
        *,
        due_after: datetime.datetime | None = None,
        due_before: datetime.datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[ScheduledTimer]:
        """A page of at most `limit` timers, earliest first, across every shard (see docs/operations.md
        "Inspection"); pass the page's `cursor` back for the next one."""
        return await self._driver.drive(self._list_timers_flow(topic, due_after, due_before, limit, cursor))

    async def running_timers(
        self, topic: str | None = None, *, limit: int = 100, cursor: str | None = None
    ) -> Page[ScheduledTimer]:
        """A page of the timers a handler runs now (live lease), earliest lease end first."""
        return await self._driver.drive(self._running_timers_flow(topic, limit, cursor))

    async def stats(self, *, overdue_after: datetime.timedelta = datetime.timedelta(seconds=1)) -> TimersStats:
        """Per topic: pending, due now, overdue, running, dead, next due and oldest overdue (see docs/operations.md)."""
        return await self._driver.drive(self._stats_flow(overdue_after))

    async def due_histogram(
        self, window: datetime.timedelta, *, buckets: int = 24, topic: str | None = None
    ) -> DueHistogram:
        """How many timers are due in each of `buckets` equal parts of the next `window`, and how many before."""
        return await self._driver.drive(self._due_histogram_flow(window, buckets, topic))

    async def dead_letter_page(
        self, topic: str | None = None, *, limit: int = 100, cursor: str | None = None
    ) -> Page[DeadLetter]:
        """A page of at most `limit` dead letters (of `topic`, or all), one bounded `HSCAN` at a time."""
        return await self._driver.drive(self._dead_letter_page_flow(topic, limit, cursor))

    async def count_dead_letters(self, topic: str | None = None) -> int:
        """How many dead letters there are: `HLEN` per shard, or for one topic a bounded `HSCAN` pass."""
        return await self._driver.drive(self._count_dead_letters_flow(topic))

    async def handle_ready_timers(self) -> None:
        """Handle every timer due now, then return."""
        await self._run_worker(single_pass=True)

    async def run_forever(self, *, concurrency: int | None = None) -> None:
        """Handle timers as they become due until `stop()` is called or the task is cancelled."""
        await self._run_worker(single_pass=False, concurrency=concurrency)

    def stop(self) -> None:
        """Ask every `run_forever` to stop claiming, finish in-flight handlers within the grace period, and return.

        Called while none runs, it stops the next one(s) started, until they have all returned.
        """
        self._stop_pending = True
        for worker in self._workers:
            worker.stop()

    async def _run_worker(self, *, single_pass: bool, concurrency: int | None = None) -> None:
        worker = AsyncWorker(
            driver=self._driver,
            engine=self._new_engine(single_pass=single_pass, concurrency=concurrency),
            context=self.context,
            settings=self.settings,
            listen=not single_pass,
        )
        if self._stop_pending and not single_pass:
            worker.stop()
        self._workers.append(worker)
        self._loops += not single_pass
        try:
            await worker.run()
        finally:
            self._workers.remove(worker)
            self._loops -= not single_pass
            if not single_pass and not self._loops:
                self._stop_pending = False  # seen by every run_forever it was meant for
