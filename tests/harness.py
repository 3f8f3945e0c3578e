"""One blocking test API over both front ends, so each scenario is written once.

`Front("sync", url)` drives `redis_timers.sync.Timers` over `redis.Redis` directly;
`Front("async", url)` drives `redis_timers.Timers` over `redis.asyncio.Redis` on an event
loop running in a thread (an anyio blocking portal). Handlers are plain functions
`(payload, context) -> None`; for the async front end they are wrapped in `async def`,
and a handler registered with `blocking=True` (one that waits on a `Gate` or otherwise
blocks) runs through `anyio.to_thread.run_sync` so it never blocks the event loop.

Synchronisation is by events and conditions with timeouts (`Gate`, `Recorder`); the only
polling helper, `wait_until`, is for state that has no event to wait on: another process's
(a subprocess, a Redis subscription) or Redis keys a worker settles after a handler returns.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime
import functools
import inspect
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, cast

import anyio
import anyio.from_thread
import anyio.to_thread
import pydantic
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

import redis_timers
import redis_timers.sync
from redis_timers import DeadLetter, Router, TimerInfo, TimersSettings
from redis_timers.keys import Keyspace, Namespace
from redis_timers.observe import TimersObserver

FrontKind = Literal["sync", "async"]
FRONT_KINDS: tuple[FrontKind, ...] = ("sync", "async")
CLUSTER_VARIANTS = tuple(f"{kind}-cluster" for kind in FRONT_KINDS)
"""`front` over cluster clients (`@pytest.mark.cluster` adds them; `parametrize("front", CLUSTER_VARIANTS)` alone)."""
CLUSTER_SHARDS = 6
"""Shards of a cluster variant's namespace: two per primary of the session cluster, so each holds timers."""
HandlerFunc = Callable[[Any, dict[str, Any]], object]
T = TypeVar("T")

DEFAULT_WAIT = 20.0
"""Generous timeout for anything that should happen: waits end as soon as it does."""

PROTOCOL_VARIABLE = "TIMERS_TEST_PROTOCOL"
"""`2` or `3`: the RESP version of every client the harness gives the library, unless a test names one.

Unset, clients speak redis-py's default (RESP3 from redis-py 8, RESP2 before). CI runs the cluster tests
on Python 3.10 with `TIMERS_TEST_PROTOCOL=2`, and every other scenario on redis-py 5.3 (RESP2 by default), so
every scenario is checked on both protocols.
"""


def client_protocol() -> dict[str, Any]:
    """The `protocol=` keyword for new clients, from `TIMERS_TEST_PROTOCOL` (nothing when it is unset)."""
    raw = os.environ.get(PROTOCOL_VARIABLE, "")
    if not raw:
        return {}
    if raw not in ("2", "3"):
        raise ValueError(f"{PROTOCOL_VARIABLE} must be 2 or 3, got {raw!r}")
    return {"protocol": int(raw)}


# -- synchronisation helpers ---------------------------------------------------------------


class Gate:
    """Lets blocked handlers go once opened. `wait` returns whether the gate opened in time."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def open(self) -> None:
        self._event.set()

    @property
    def is_open(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float = DEFAULT_WAIT) -> bool:
        return self._event.wait(timeout)


class Recorder(Generic[T]):
    """Things handlers report, in order; tests wait for a count with a timeout."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._items: list[T] = []

    def record(self, item: T) -> int:
        """Append `item`; returns how many items there are now (1 for the first)."""
        with self._condition:
            self._items.append(item)
            self._condition.notify_all()
            return len(self._items)

    @property
    def items(self) -> list[T]:
        with self._condition:
            return list(self._items)

    def __len__(self) -> int:
        with self._condition:
            return len(self._items)

    def wait_for(self, count: int, timeout: float = DEFAULT_WAIT) -> list[T]:
        """Wait until at least `count` items are recorded; fail the test if that takes longer than `timeout`."""
        with self._condition:
            if not self._condition.wait_for(lambda: len(self._items) >= count, timeout):
                raise AssertionError(f"expected {count} recorded item(s) within {timeout}s, got {len(self._items)}")
            return list(self._items)

    def arrives(self, count: int, timeout: float) -> bool:
        """Whether `count` items are recorded within `timeout` (for checking that something does NOT happen)."""
        with self._condition:
            return self._condition.wait_for(lambda: len(self._items) >= count, timeout)

    def wait_until(self, predicate: Callable[[list[T]], bool], timeout: float = DEFAULT_WAIT) -> list[T]:
        with self._condition:
            if not self._condition.wait_for(lambda: predicate(self._items), timeout):
                raise AssertionError(f"condition not met within {timeout}s; recorded: {self._items!r:.2000}")
            return list(self._items)


class ConcurrencyProbe:
    """Counts handlers inside `with probe:` and remembers the most at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = 0
        self.peak = 0

    def __enter__(self) -> ConcurrencyProbe:
        with self._lock:
            self.current += 1
            self.peak = max(self.peak, self.current)
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self.current -= 1


def wait_until(predicate: Callable[[], bool], timeout: float = DEFAULT_WAIT, interval: float = 0.01) -> None:
    """Poll state owned by another process (a Redis key, a subprocess) until `predicate()` holds.

    Only for state there is no event for; in-process waits use `Gate` and `Recorder`.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@contextlib.contextmanager
def worker_process(command: Sequence[str], cwd: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """A worker in a process of its own, its stderr kept for what it says on the way out; killed if the test
    ends with it still running (a failed assertion), so that no worker outlives its test."""
    worker = subprocess.Popen(list(command), cwd=cwd, env=env, stderr=subprocess.PIPE, text=True)
    try:
        yield worker
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(DEFAULT_WAIT)


def stop_gracefully(worker: subprocess.Popen[str], timeout: float = DEFAULT_WAIT) -> str:
    """SIGTERM `worker`; it exits 0 saying it stopped gracefully. Its stderr."""
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=timeout)
    assert worker.returncode == 0, stderr
    assert "stopped gracefully after SIGTERM" in stderr
    return stderr


def server_time_ms(client: redis.Redis) -> int:
    """The Redis server's clock in whole milliseconds, rounded down like the library's Lua."""
    seconds, microseconds = client.time()
    return int(seconds) * 1000 + int(microseconds) // 1000


def subscribers(client: redis.Redis, channel: str) -> int:
    """How many connections listen on `channel` (a worker subscribes once it is ready for wake-ups)."""
    return int(client.pubsub_numsub(channel)[0][1])


def ms_to_datetime(milliseconds: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(milliseconds / 1000, tz=datetime.timezone.utc)


def datetime_to_ms(moment: datetime.datetime) -> int:
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (moment - epoch) // datetime.timedelta(milliseconds=1)


# -- handlers ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HandlerSpec:
    """A handler written once: the harness turns it into what each front end runs."""

    topic: str
    schema: type[pydantic.BaseModel]
    func: HandlerFunc
    blocking: bool = False
    """True if the function blocks (waits on a Gate, sleeps in Redis...): on the async front
    end it then runs through `anyio.to_thread.run_sync` instead of on the event loop."""
    max_attempts: int | None = None


def spec(
    topic: str,
    schema: type[pydantic.BaseModel],
    func: HandlerFunc,
    *,
    blocking: bool = False,
    max_attempts: int | None = None,
) -> HandlerSpec:
    return HandlerSpec(topic=topic, schema=schema, func=func, blocking=blocking, max_attempts=max_attempts)


def _as_coroutine_function(handler: HandlerSpec) -> Callable[[Any, dict[str, Any]], Any]:
    func = handler.func
    if handler.blocking:

        async def run_in_thread(payload: Any, context: dict[str, Any]) -> None:
            # abandon_on_cancel: like an `await` on an event, the wait ends when the run is cancelled.
            await anyio.to_thread.run_sync(functools.partial(func, payload, context), abandon_on_cancel=True)

        return run_in_thread

    async def run_inline(payload: Any, context: dict[str, Any]) -> None:
        func(payload, context)

    return run_inline


# -- fronts ---------------------------------------------------------------------------------


class Front:
    """A front end under test: builds `Timers` instances and closes everything it built."""

    def __init__(self, kind: FrontKind, url: str, *, cluster: bool = False, shards: int = 1) -> None:
        """`cluster`: `url` names a node of a Redis Cluster, and every client is a cluster client of it.

        `shards`: other than 1, every `Timers` built here has that many shards, whatever settings a test
        passes (the cluster variants of the contract tests use two per primary, so every primary does its share).
        """
        self.kind: FrontKind = kind
        self.url = url
        self.cluster = cluster
        self.shards = shards
        self.namespace = Namespace(TimersSettings().namespace, shards)
        """The default namespace as this front's `Timers` split it: where to look for a timer's keys."""
        # Typed as a plain client: a cluster client has the same commands (tests of a cluster cast it).
        self.raw: redis.Redis = (
            cast(redis.Redis, redis.cluster.RedisCluster.from_url(url, decode_responses=True))
            if cluster
            else redis.Redis.from_url(url, decode_responses=True)
        )
        """A plain (or cluster) client for inspecting and arranging Redis state; never handed to the library."""
        self._stack = contextlib.ExitStack()
        self._portal: anyio.from_thread.BlockingPortal | None = None
        if kind == "async":
            self._portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
        self._instances: list[TimersHarness] = []
        self._gates: list[Gate] = []
        self._node_clients: dict[str, redis.Redis] = {}

    @property
    def is_async(self) -> bool:
        return self.kind == "async"

    @property
    def portal(self) -> anyio.from_thread.BlockingPortal:
        if self._portal is None:
            raise RuntimeError("the sync front end has no event loop")
        return self._portal

    def gate(self) -> Gate:
        """A gate that is opened when the front closes, so no handler outlives its test."""
        gate = Gate()
        self._gates.append(gate)
        return gate

    def router(self, *handlers: HandlerSpec) -> Router:
        router = Router()
        for handler in handlers:
            func: Callable[[Any, dict[str, Any]], Any] = (
                _as_coroutine_function(handler) if self.is_async else handler.func
            )
            router.handler(topic=handler.topic, schema=handler.schema, max_attempts=handler.max_attempts)(func)
        return router

    def client(self, *, url: str | None = None, decode_responses: bool = True, **client_kwargs: Any) -> Any:
        """A new client of this front end's kind (`redis.Redis` or `redis.asyncio.Redis`)."""
        target = url or self.url
        client_kwargs = {**client_protocol(), **client_kwargs}
        if not self.is_async:
            sync_type = redis.cluster.RedisCluster if self.cluster else redis.Redis
            return sync_type.from_url(target, decode_responses=decode_responses, **client_kwargs)

        async def make() -> Any:
            # Not initialize()d: the library must cope with a cluster client that has not loaded its slot map.
            async_type = redis.asyncio.cluster.RedisCluster if self.cluster else redis.asyncio.Redis
            return async_type.from_url(target, decode_responses=decode_responses, **client_kwargs)

        return self.portal.call(make)

    def close_client(self, client: Any) -> None:
        if self.is_async:
            self.portal.call(client.aclose)
        else:
            client.close()

    def timers(
        self,
        *handlers: HandlerSpec,
        routers: Sequence[Router] = (),
        context: dict[str, Any] | None = None,
        settings: TimersSettings | None = None,
        decode_responses: bool = True,
        url: str | None = None,
        client: Any = None,
        client_kwargs: dict[str, Any] | None = None,
        observer: TimersObserver | None = None,
    ) -> TimersHarness:
        """A `Timers` of this front end with its own client (or `client`), handlers from `handlers` and `routers`."""
        owns_client = client is None
        if client is None:
            client = self.client(url=url, decode_responses=decode_responses, **(client_kwargs or {}))
        kwargs: dict[str, Any] = {
            "redis_client": client,
            "context": context,
            "settings": self.settings(settings),
        }
        if observer is not None:
            kwargs["observer"] = observer
        if routers:
            kwargs["routers"] = list(routers)
        timers = redis_timers.Timers(**kwargs) if self.is_async else redis_timers.sync.Timers(**kwargs)
        harness = TimersHarness(self, timers, client, owns_client=owns_client)
        if handlers:
            harness.include_router(self.router(*handlers))
        self._instances.append(harness)
        return harness

    def settings(self, settings: TimersSettings | None = None) -> TimersSettings:
        """`settings` (explicit defaults if None, so TIMERS_* variables don't leak in) with this front's shards."""
        chosen = settings or TimersSettings()
        return chosen if self.shards == 1 else dataclasses.replace(chosen, shards=self.shards)

    def keyspace_for(self, topic: str, timer_id: str) -> Keyspace:
        """The keys of the shard that holds timer (`topic`, `timer_id`) of the default namespace."""
        return self.namespace.keyspace_for(topic, timer_id)

    def nodes(self, *, replicas: bool = False) -> list[redis.Redis]:
        """A plain client of each server: the one server, or every primary of the cluster (and replica if asked).

        For what a cluster client asks one node only or answers per node (INFO, CONFIG RESETSTAT, PUBSUB
        NUMSUB): a test adds up the nodes' answers itself. The clients are closed with the front.
        """
        if not self.cluster:
            return [self.raw]
        cluster = cast(redis.cluster.RedisCluster, self.raw)
        nodes = cluster.get_nodes() if replicas else cluster.get_primaries()  # type: ignore[no-untyped-call]
        return [self.node(node.host, node.port) for node in nodes]

    def node(self, host: str, port: int) -> redis.Redis:
        """A plain client of one server, the same one for the front's life (a new connection's HELLO would be
        counted as traffic); closed with the front."""
        name = f"{host}:{port}"
        if name not in self._node_clients:
            self._node_clients[name] = redis.Redis(host=host, port=port, decode_responses=True)
        return self._node_clients[name]

    def subscribers(self, channel: str) -> int:
        """How many connections listen on `channel`, on any server (a cluster's regular pub/sub spans every node)."""
        return sum(subscribers(node, channel) for node in self.nodes(replicas=True))

    def wake_channels(self, topic: str) -> list[str]:
        """The wake-up channel of `topic` on every shard (a worker listens on each)."""
        return [keyspace.channel(topic) for keyspace in self.namespace.keyspaces]

    def all_keys(self) -> list[str]:
        if self.cluster:  # KEYS on a cluster client asks one node: ask every primary
            cluster = cast(redis.cluster.RedisCluster, self.raw)
            primaries = cluster.get_primaries()  # type: ignore[no-untyped-call]
            return sorted(str(key) for node in primaries for key in cluster.keys("*", target_nodes=node))
        return sorted(cast(list[str], self.raw.keys("*")))

    def timer_data(self) -> list[str]:
        """Every key, and every per-timer field of the state hashes: empty once no timer or dead letter is left.

        State hashes keep bookkeeping fields (`#seq`, the claim counter) after their timers are gone, each shard the
        topic sets its workers registered, and a namespace of several shards its recorded shard count.
        """
        leftovers: list[str] = []
        for key in self.all_keys():
            if self.shards > 1 and key == self.namespace.layout_key:
                continue  # the recorded shard count stays for the namespace's life
            if "}:topics:" in key:
                continue  # a worker's registered topic set (see docs/protocol.md)
            if ":state:" not in key:
                leftovers.append(key)
                continue
            fields = cast(list[str], self.raw.hkeys(key))
            leftovers.extend(f"{key} {field}" for field in fields if not field.startswith("#"))
        return leftovers

    def close(self) -> None:
        for gate in self._gates:
            gate.open()
        try:
            for instance in self._instances:
                instance.shutdown_worker()
            for instance in self._instances:
                instance.close_client()
        finally:
            if self._portal is not None:
                with contextlib.suppress(RuntimeError):
                    self._portal.call(self._portal.stop, True)
            self._stack.close()
            for node in self._node_clients.values():
                node.close()
            self.raw.close()


class TimersHarness:
    """One `Timers` instance with a blocking API, whatever its front end."""

    def __init__(self, front: Front, timers: Any, client: Any, *, owns_client: bool) -> None:
        self.front = front
        self.timers = timers
        self.client = client
        self._owns_client = owns_client
        self._worker_done: _DoneEvent | None = None
        self._worker_error: BaseException | None = None
        self._worker_future: concurrent.futures.Future[None] | None = None

    # -- calls -------------------------------------------------------------------------

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a `Timers` method by name and return its result (awaited on the loop for the async front end)."""
        func = getattr(self.timers, method)
        if not self.front.is_async:
            return func(*args, **kwargs)

        async def outcome() -> tuple[bool, Any]:
            # A BaseException other than cancellation (SystemExit from a validator, say) comes back as a value:
            # older anyio (4.2) would also re-raise it in the portal's own task group when the portal closes.
            try:
                result = func(*args, **kwargs)  # `stop()` is a plain method
                return True, (await result) if inspect.isawaitable(result) else result
            except Exception:
                raise
            except BaseException as error:
                if _is_cancellation(error):
                    raise
                return False, error

        returned, value = self.front.portal.call(outcome)
        if not returned:
            raise value
        return value

    def background(self, method: str, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        """Start a `Timers` method without waiting for it; the future holds its outcome."""
        func = getattr(self.timers, method)
        if self.front.is_async:
            return self.front.portal.start_task_soon(functools.partial(func, *args, **kwargs))
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            future.set_running_or_notify_cancel()
            try:
                future.set_result(func(*args, **kwargs))
            except BaseException as error:
                future.set_exception(error)

        threading.Thread(target=run, name=f"harness-{method}", daemon=True).start()
        return future

    def include_router(self, router: Router) -> None:
        self.timers.include_router(router)

    def include_routers(self, *routers: Router) -> None:
        self.timers.include_routers(*routers)

    def set_timer(
        self,
        topic: str,
        timer_id: Any,
        payload: Any,
        activation_period: Any = None,
        *,
        activate_at: Any = None,
        durable: bool = False,
    ) -> Any:
        """Returns what the library's `set_timer` returns."""
        extra: dict[str, Any] = {"durable": True} if durable else {}
        if activate_at is None:
            return self.call("set_timer", topic, timer_id, payload, activation_period, **extra)
        return self.call("set_timer", topic, timer_id, payload, activation_period, activate_at=activate_at, **extra)

    def remove_timer(self, topic: str, timer_id: Any, *, durable: bool = False) -> bool:
        extra: dict[str, Any] = {"durable": True} if durable else {}
        return cast(bool, self.call("remove_timer", topic, timer_id, **extra))

    def get_timer(self, topic: str, timer_id: Any) -> TimerInfo | None:
        return cast("TimerInfo | None", self.call("get_timer", topic, timer_id))

    def dead_letters(self) -> list[DeadLetter]:
        return cast(list[DeadLetter], self.call("dead_letters"))

    def requeue_dead_letter(self, topic: str, timer_id: Any, *, durable: bool = False) -> bool:
        extra: dict[str, Any] = {"durable": True} if durable else {}
        return cast(bool, self.call("requeue_dead_letter", topic, timer_id, **extra))

    def purge_dead_letters(self) -> int:
        return cast(int, self.call("purge_dead_letters"))

    def handle_ready_timers(self) -> None:
        self.call("handle_ready_timers")

    def ping(self) -> bool:
        """Use the client given to the library, to show it is still open."""
        if self.front.is_async:
            return cast(bool, self.front.portal.call(self.client.ping))
        return cast(bool, self.client.ping())

    def set_timers_concurrently(
        self,
        items: Iterable[tuple[str, str, pydantic.BaseModel, datetime.timedelta]],
        parallelism: int,
    ) -> None:
        """Sync: `parallelism` threads share this instance; async: `parallelism` tasks on its event loop."""
        work = list(items)
        if not self.front.is_async:
            with concurrent.futures.ThreadPoolExecutor(max_workers=parallelism) as pool:
                list(pool.map(lambda item: self.timers.set_timer(*item), work))
            return

        timers = self.timers

        async def set_all() -> None:
            queue = iter(work)

            async def task() -> None:
                for item in queue:
                    await timers.set_timer(*item)

            async with anyio.create_task_group() as tasks:
                for _ in range(parallelism):
                    tasks.start_soon(task)

        self.front.portal.call(set_all)

    # -- the worker ----------------------------------------------------------------------

    @property
    def worker_running(self) -> bool:
        return self._worker_done is not None and not self._worker_done.is_set()

    def start_worker(self, *, concurrency: int | None = None, on_exit: Callable[[], object] | None = None) -> None:
        """Start `run_forever` (sync: in a thread; async: as a task on the portal's loop).

        `on_exit` is called (from the worker's thread) once run_forever has returned or raised.
        """
        assert not self.worker_running, "this instance already runs a worker"
        done = _DoneEvent(on_exit)
        self._worker_done, self._worker_error = done, None
        timers = self.timers

        if self.front.is_async:

            async def run_async() -> None:
                try:
                    await timers.run_forever(concurrency=concurrency)
                except BaseException as error:
                    self._worker_error = error
                    # wait_worker re-raises it. Only a cancellation goes on to the portal: older anyio
                    # (4.2) re-raises any other BaseException of a portal task when the portal closes.
                    if _is_cancellation(error):
                        raise
                finally:
                    done.set()

            self._worker_future = self.front.portal.start_task_soon(run_async)
            return

        def run_sync() -> None:
            try:
                timers.run_forever(concurrency=concurrency)
            except BaseException as error:
                self._worker_error = error
            finally:
                done.set()

        threading.Thread(target=run_sync, name="harness-run-forever", daemon=True).start()

    def request_stop(self) -> None:
        """Call `stop()` and return at once (the worker may still be finishing handlers)."""
        self.call("stop")

    def wait_worker(self, timeout: float = DEFAULT_WAIT, *, cancelled_ok: bool = False) -> None:
        """Wait for `run_forever` to return; re-raise what it raised."""
        assert self._worker_done is not None, "no worker was started"
        if not self._worker_done.wait(timeout):
            raise AssertionError(f"run_forever did not return within {timeout}s")
        error = self._worker_error
        if error is None:
            return
        if cancelled_ok and _is_cancellation(error):
            return
        raise error

    def stop_worker(self, timeout: float = DEFAULT_WAIT) -> float:
        """`stop()` from this (another) thread; returns how long run_forever took to return."""
        started = time.monotonic()
        self.request_stop()
        self.wait_worker(timeout)
        return time.monotonic() - started

    def request_cancel(self) -> None:
        """Async only: cancel the `run_forever` task and return at once."""
        assert self.front.is_async, "only an asyncio task can be cancelled"
        assert self._worker_future is not None
        self._worker_future.cancel()

    def cancel_worker(self, timeout: float = DEFAULT_WAIT) -> float:
        """Async only: cancel the `run_forever` task; returns how long it took to end."""
        started = time.monotonic()
        self.request_cancel()
        self.wait_worker(timeout, cancelled_ok=True)
        assert self._worker_error is None or _is_cancellation(self._worker_error)
        return time.monotonic() - started

    def shutdown_worker(self) -> None:
        if self.worker_running:
            with contextlib.suppress(BaseException):
                self.stop_worker(timeout=30)
            if self.worker_running and self._worker_future is not None:
                self._worker_future.cancel()

    def close_client(self) -> None:
        if self._owns_client:
            with contextlib.suppress(Exception):
                self.front.close_client(self.client)


class _DoneEvent:
    """A `threading.Event` that also runs a callback when set."""

    def __init__(self, on_set: Callable[[], object] | None) -> None:
        self._event = threading.Event()
        self._on_set = on_set

    def set(self) -> None:
        self._event.set()
        if self._on_set is not None:
            self._on_set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)


LISTENER_THREAD_NAME = "redis-timers-listener"


def listener_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == LISTENER_THREAD_NAME]


def _is_cancellation(error: BaseException) -> bool:
    import asyncio

    return isinstance(error, asyncio.CancelledError)


@contextlib.contextmanager
def running(harness: TimersHarness, *, concurrency: int | None = None) -> Iterator[TimersHarness]:
    """`run_forever` for the duration of a `with` block, stopped (and checked) at its end."""
    harness.start_worker(concurrency=concurrency)
    try:
        yield harness
    finally:
        if harness.worker_running:
            harness.stop_worker()
