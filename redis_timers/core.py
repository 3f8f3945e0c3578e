"""What both `Timers` front ends share: handlers, settings, keys, and the flows behind each method."""

from __future__ import annotations

import datetime
import random
from collections.abc import Iterable
from typing import Any, ClassVar, TypeVar

import pydantic

from redis_timers import bulk, codec, flows, heap, inspect, layout, seed
from redis_timers.durability import Learned
from redis_timers.engine import WorkerEngine
from redis_timers.keys import Namespace
from redis_timers.observe import Guarded, TimersObserver, guarded
from redis_timers.ops import Flow, ScriptCall
from redis_timers.records import DeadLetter, DueHistogram, Page, ScheduledTimer, TimerInfo, TimersStats
from redis_timers.registry import HandlerRegistry
from redis_timers.router import Router
from redis_timers.settings import TimersSettings

T = TypeVar("T")


UNNAMED_SOCKET_TIMEOUT = 5.0
"""redis-py's socket timeout for a connection made without one (8.x: 5 s; a client made from a URL names none in
its pool's keyword arguments, yet each of its connections times out reads after 5 s)."""


class TimersCore:
    accepts_async_handlers: ClassVar[bool]
    front_end: ClassVar[str]

    def __init__(
        self,
        *,
        redis_client: Any,
        context: dict[str, Any] | None = None,
        routers: Iterable[Router] | None = None,
        settings: TimersSettings | None = None,
        observer: TimersObserver | None = None,
    ) -> None:
        self.redis_client = redis_client
        self.observer = observer
        self.context: dict[str, Any] = {} if context is None else context
        self.settings = TimersSettings.from_env() if settings is None else settings
        self.namespace = Namespace(self.settings.namespace, self.settings.shards)
        # Whether this instance checked the namespace's shard count (`layout.py`): once, before its first call.
        self._layout_checked = False
        # What each node's durable writes learned about its append-only file, by node name (`durability`).
        self._aof_sync = Learned()
        self.registry = HandlerRegistry(
            separator=self.settings.separator,
            accepts_async=self.accepts_async_handlers,
            front_end=self.front_end,
        )
        self._rng = random.Random()
        if routers:
            self.include_routers(*routers)

    def include_router(self, router: Router) -> None:
        self.registry.include(router)
        if router.handlers:
            # New topics: their one-shard data must be checked too (`layout.check_layout`), before the next call.
            self._layout_checked = False

    def include_routers(self, *routers: Router) -> None:
        for router in routers:
            self.include_router(router)

    def _set_timer_call(
        self,
        topic: str,
        timer_id: str,
        payload: pydantic.BaseModel,
        activation_period: datetime.timedelta | None,
        activate_at: datetime.datetime | None,
        mode: str = "replace",
    ) -> ScriptCall:
        call = flows.set_timer_call(
            self.namespace, self.registry, topic, timer_id, payload, activation_period, activate_at, mode
        )
        if self._observer is not None:
            traceparent = self._observer.carried(topic, timer_id)
            if traceparent is not None:
                # In the stored payload, which the claim hands back as it is (`codec.traced`).
                timer_id_arg, body, *rest = call.args
                assert isinstance(body, bytes)
                call = call._replace(args=(timer_id_arg, codec.traced(traceparent, body), *rest))
        return call

    @property
    def observer(self) -> TimersObserver | None:
        """Told of the timers this instance schedules and of its workers' runs (`redis_timers.observe`).

        Set it before `run_forever`: a worker takes the observer it finds when it starts.
        """
        return None if self._observer is None else self._observer.observer

    @observer.setter
    def observer(self, observer: TimersObserver | None) -> None:
        self._observer: Guarded | None = guarded(observer)

    def _set_done(self, topic: str, timer_id: str, reply: Any) -> int:
        """A set script's reply: the due ms; the observer is told when the timer was written (not kept)."""
        due_ms, written = flows.set_reply(reply)
        if written and self._observer is not None:
            self._observer.scheduled(topic, timer_id)
        return due_ms

    def _sets_done(self, results: list[bulk.SetResult]) -> list[bulk.SetResult]:
        if self._observer is not None:
            for result in results:
                if result.written:
                    self._observer.scheduled(result.topic, result.timer_id)
        return results

    def _set_batches(self, timers: Iterable[bulk.TimerSpec], mode: str) -> bulk.SetBatches:
        return bulk.set_batches(self.namespace, self.registry, timers, mode)

    def _remove_batches(self, timers: Iterable[bulk.TimerRef]) -> bulk.RemoveBatches:
        return bulk.remove_batches(self.namespace, self.registry, timers)

    def _layout_flow(self) -> Flow[int]:
        """The shard-count check (`layout.check_layout`); once it passed, this instance never sends it again.

        The front ends run it before their first `set_timer` (a flag test on every later one, the hot path
        otherwise unchanged), the other flows start with it (`_checked`), and a worker's engine runs it first.
        """
        checked = yield from layout.check_layout(self.namespace, self.registry.topics)
        self._layout_checked = True
        return checked

    def _checked(self, flow: Flow[T]) -> Flow[T]:
        return layout.checked_first(None if self._layout_checked else self._layout_flow(), flow)

    def _socket_timeout(self) -> float | None:
        """The client's socket timeout, which a durable write's WAITs must each reply within (`flows.write`).

        Read from the keyword arguments its connections are made with: a plain client's pool's, a cluster
        client's own (async) or its node manager's (sync). Where they name none (a client made from a URL
        without `socket_timeout`, or a cluster client), its connections use redis-py's default, `UNNAMED_SOCKET_
        TIMEOUT`, which is assumed: a wait split that needed no split only costs a few WAITs more.
        """
        client = self.redis_client
        for holder in (getattr(client, "connection_pool", None), client, getattr(client, "nodes_manager", None)):
            connection_kwargs = getattr(holder, "connection_kwargs", None)
            if isinstance(connection_kwargs, dict) and "socket_timeout" in connection_kwargs:
                timeout = connection_kwargs["socket_timeout"]
                return float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else None
        return UNNAMED_SOCKET_TIMEOUT

    def _set_timer_durably_flow(self, call: ScriptCall, topic: str, timer_id: str) -> Flow[int]:
        # `flows.set_timer_durably`, keeping whether it wrote (for the observer); its layout is checked by the
        # front end.
        reply = yield from flows.write(call, self.settings, self._socket_timeout(), self._aof_sync)
        return self._set_done(topic, timer_id, reply)

    def _remove_timer_flow(self, topic: str, timer_id: str, durable: bool) -> Flow[bool]:
        durability = self.settings if durable else None
        return self._checked(
            flows.remove_timer(
                self.namespace,
                self.registry,
                topic,
                timer_id,
                durability=durability,
                read_timeout_seconds=self._socket_timeout(),
                learned=self._aof_sync,
            )
        )

    def _get_timer_flow(self, topic: str, timer_id: str) -> Flow[TimerInfo | None]:
        return self._checked(flows.get_timer(self.namespace, self.registry, topic, timer_id))

    def _dead_letters_flow(self) -> Flow[list[DeadLetter]]:
        return self._checked(flows.dead_letters(self.namespace))

    def _requeue_dead_letter_flow(self, topic: str, timer_id: str, durable: bool) -> Flow[bool]:
        return self._checked(
            flows.requeue_dead_letter(
                self.namespace,
                self.settings,
                topic,
                timer_id,
                durable=durable,
                read_timeout_seconds=self._socket_timeout(),
                learned=self._aof_sync,
            )
        )

    def _purge_dead_letters_flow(self) -> Flow[int]:
        return self._checked(flows.purge_dead_letters(self.namespace))

    def _topics_flow(self) -> Flow[list[str]]:
        return self._checked(inspect.topics(self.namespace, self.registry))

    def _count_timers_flow(
        self, topic: str | None, due_after: datetime.datetime | None, due_before: datetime.datetime | None
    ) -> Flow[int]:
        return self._checked(
            inspect.count_timers(self.namespace, self.registry, self.settings, topic, due_after, due_before)
        )

    def _list_timers_flow(
        self,
        topic: str | None,
        due_after: datetime.datetime | None,
        due_before: datetime.datetime | None,
        limit: int,
        cursor: str | None,
    ) -> Flow[Page[ScheduledTimer]]:
        return self._checked(
            inspect.list_timers(
                self.namespace, self.registry, self.settings, topic, due_after, due_before, limit, cursor
            )
        )

    def _running_timers_flow(self, topic: str | None, limit: int, cursor: str | None) -> Flow[Page[ScheduledTimer]]:
        return self._checked(inspect.running_timers(self.namespace, self.registry, self.settings, topic, limit, cursor))

    def _stats_flow(self, overdue_after: datetime.timedelta) -> Flow[TimersStats]:
        return self._checked(inspect.stats(self.namespace, self.registry, self.settings, overdue_after))

    def _due_histogram_flow(self, window: datetime.timedelta, buckets: int, topic: str | None) -> Flow[DueHistogram]:
        return self._checked(
            inspect.due_histogram(self.namespace, self.registry, self.settings, window, buckets, topic)
        )

    def _dead_letter_page_flow(self, topic: str | None, limit: int, cursor: str | None) -> Flow[Page[DeadLetter]]:
        return self._checked(inspect.dead_letter_page(self.namespace, self.settings, topic, limit, cursor))

    def _count_dead_letters_flow(self, topic: str | None) -> Flow[int]:
        return self._checked(inspect.count_dead_letters(self.namespace, self.settings, topic))

    @property
    def handlers_by_topics(self) -> seed.HandlersByTopic:
        """The original library's topic -> handler map, read-only (`include_router` adds to it)."""
        return seed.HandlersByTopic(self.registry)

    def _fetch_all_timers_flow(self) -> Flow[tuple[list[str], dict[str, str]]]:
        return self._checked(seed.fetch_all_timers(self.namespace, self.registry, self.settings))

    def _fetch_ready_timers_flow(self, timestamp: datetime.datetime) -> Flow[list[str]]:
        return self._checked(seed.fetch_ready_timers(self.namespace, self.registry, self.settings, timestamp))

    def _new_engine(self, *, single_pass: bool, concurrency: int | None = None) -> WorkerEngine:
        """The engine of a worker about to run; a `run_forever` one freezes the heap first (`TIMERS_FREEZE_GC`)."""
        if self.settings.freeze_gc and not single_pass:
            heap.freeze_heap()
        return WorkerEngine(
            namespace=self.namespace,
            registry=self.registry,
            settings=self.settings,
            rng=self._rng,
            single_pass=single_pass,
            concurrency=concurrency,
            layout_check=None if self._layout_checked else self._layout_flow,
            observer=self._observer,
        )
