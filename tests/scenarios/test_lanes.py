"""Script calls through a lane: one pooled connection a `Timers` keeps (`sync/lane.py`, `aio/lane.py`).

A lane is only right if no reply ever answers the wrong call: not under contention, not
after its connection is killed, timed out or cancelled mid-reply, not across a fork. What
it sends must be what the pool would send, whatever the client's encoding, and it must
stay away from pools that cannot spare a connection for good.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import functools
import gc
import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest
import redis
import redis.asyncio
import redis.asyncio.retry
from redis.backoff import NoBackoff
from redis.retry import Retry

import redis_timers
import redis_timers.sync
from redis_timers import TimersConnectionError, TimersSettings
from tests.harness import Front, Recorder, TimersHarness, ms_to_datetime, server_time_ms, spec
from tests.scenarios.models import Job, Other

NOW = datetime.timedelta(0)
TIMELINE = "{timers}:timeline:jobs"
PAYLOADS = "{timers}:payloads:jobs"
PAUSE_MS = 5_000
"""The longest CLIENT PAUSE lasts: tests unpause as soon as the paused call has given up."""

Call = Callable[[Any], Any]
"""One call on a `Timers` (given as the argument), returning its result or its awaitable."""


def retries(front: Front, count: int) -> dict[str, Any]:
    """Client options for `count` retries without backoff (redis-py has a `Retry` class per front end)."""
    policy = redis.asyncio.retry.Retry(NoBackoff(), count) if front.is_async else Retry(NoBackoff(), count)
    return {"retry": policy}


def ignore(payload: Any, context: dict[str, Any]) -> None:
    return None


def far_future(front: Front) -> int:
    """A due time (server ms) an hour from now: nothing set for it fires during a test."""
    return server_time_ms(front.raw) + 3_600_000


def named_clients(front: Front, name: str) -> list[dict[str, Any]]:
    return [client for client in front.raw.client_list() if client["name"] == name]


def kill_named_clients(front: Front, name: str) -> int:
    return sum(int(front.raw.client_kill_filter(_id=client["id"])) for client in named_clients(front, name))


@contextlib.contextmanager
def writes_paused(front: Front) -> Iterator[None]:
    """The server holds back every write command (scripts included) until the block ends."""
    front.raw.client_pause(PAUSE_MS, all=False)
    try:
        yield
    finally:
        front.raw.client_unpause()


def blocking_client(front: Front, max_connections: int, **client_kwargs: Any) -> Any:
    """A client of the front's kind on a `BlockingConnectionPool`, which a lane must leave alone."""
    options: dict[str, Any] = {"max_connections": max_connections, "timeout": 5, "decode_responses": True}
    options.update(client_kwargs)
    if not front.is_async:
        return redis.Redis.from_pool(redis.BlockingConnectionPool.from_url(front.url, **options))

    async def make() -> redis.asyncio.Redis:
        return redis.asyncio.Redis.from_pool(redis.asyncio.BlockingConnectionPool.from_url(front.url, **options))

    return front.portal.call(make)


def pool_usage(client: Any) -> tuple[int, int]:
    """(connections the pool ever made and still holds, how many of them are checked out now)."""
    pool = client.connection_pool
    if isinstance(pool, redis.BlockingConnectionPool):
        made = len(pool._connections)
        idle = sum(1 for connection in pool.pool.queue if connection is not None)
        return made, made - idle
    available, in_use = len(pool._available_connections), len(pool._in_use_connections)
    return available + in_use, in_use


def set_at(topic: str, timer_id: str, payload: Any, due_ms: int) -> Call:
    return lambda timers: timers.set_timer(topic, timer_id, payload, activate_at=ms_to_datetime(due_ms))


def get(topic: str, timer_id: str) -> Call:
    return lambda timers: timers.get_timer(topic, timer_id)


def remove(topic: str, timer_id: str) -> Call:
    return lambda timers: timers.remove_timer(topic, timer_id)


def call_concurrently(harness: TimersHarness, calls: list[Call], parallelism: int) -> list[Any]:
    """`calls` on one `Timers`, `parallelism` at a time; results in the order of `calls`.

    Sync: `parallelism` threads released together; async: `parallelism` tasks on the front's event loop.
    """
    results: list[Any] = [None] * len(calls)
    chunks = [range(start, len(calls), parallelism) for start in range(parallelism)]
    timers = harness.timers
    if not harness.front.is_async:
        barrier = threading.Barrier(parallelism)

        def run_chunk(indices: range) -> None:
            barrier.wait(timeout=10)
            for index in indices:
                results[index] = calls[index](timers)

        with concurrent.futures.ThreadPoolExecutor(max_workers=parallelism) as pool:
            for future in [pool.submit(run_chunk, indices) for indices in chunks]:
                future.result()
        return results

    async def run_all() -> None:
        async def run_chunk(indices: range) -> None:
            for index in indices:
                results[index] = await calls[index](timers)

        async with anyio.create_task_group() as tasks:
            for indices in chunks:
                tasks.start_soon(run_chunk, indices)

    harness.front.portal.call(run_all)
    return results


# -- contention ------------------------------------------------------------------------------


def test_concurrent_calls_each_get_their_own_reply(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, ignore))
    parallelism, per_caller = 8, 50
    total = parallelism * per_caller
    base = far_future(front)
    ids = [f"t{n}" for n in range(total)]
    payloads = [Job(n=n, note=timer_id) for n, timer_id in enumerate(ids)]

    # Each timer is due at its own millisecond: a reply that crossed over shows as a wrong due time.
    dues = call_concurrently(timers, [set_at("jobs", ids[n], payloads[n], base + n) for n in range(total)], parallelism)
    assert dues == [ms_to_datetime(base + n) for n in range(total)]

    infos = call_concurrently(timers, [get("jobs", timer_id) for timer_id in ids], parallelism)
    assert [(info.timer_id, info.payload, info.due_at) for info in infos] == [
        (ids[n], payloads[n], ms_to_datetime(base + n)) for n in range(total)
    ]
    assert front.raw.zcard(TIMELINE) == total
    assert front.raw.hlen(PAYLOADS) == total

    # Interleaved removals of existing and missing timers: an answer that swapped shows as a wrong boolean.
    removals = [remove("jobs", ids[n] if n % 2 == 0 else f"missing-{n}") for n in range(total)]
    assert call_concurrently(timers, removals, parallelism) == [n % 2 == 0 for n in range(total)]
    left = call_concurrently(timers, [get("jobs", timer_id) for timer_id in ids], parallelism)
    assert [info is None for info in left] == [n % 2 == 0 for n in range(total)]
    assert front.raw.zcard(TIMELINE) == total // 2


def test_concurrent_calls_alongside_a_worker_pass(front: Front) -> None:
    """A worker pass's round trips and other calls share one Timers, and so its lane."""
    handled: Recorder[int] = Recorder()
    timers = front.timers(spec("jobs", Job, lambda payload, context: handled.record(payload.n)))
    total = 200
    for n in range(total):
        timers.set_timer("jobs", f"due{n}", Job(n=n), NOW)
    base = far_future(front)
    pass_done = timers.background("handle_ready_timers")
    calls = [set_at("jobs", f"later{n}", Job(n=-n), base + n) for n in range(total)]
    assert call_concurrently(timers, calls, 4) == [ms_to_datetime(base + n) for n in range(total)]
    pass_done.result(timeout=20)
    # The pass handles everything due when it started; timers set while it ran are not due.
    assert sorted(handled.items) == list(range(total))
    info = timers.get_timer("jobs", f"later{total - 1}")
    assert info is not None
    assert info.payload == Job(n=1 - total)


# -- a killed connection ---------------------------------------------------------------------


def test_a_killed_idle_lane_connection_without_retries(front: Front) -> None:
    """Redis (an idle timeout, a proxy, an operator) may close the lane's connection while it sits unused.

    A client built by `from_url` gives its connections no retries. Without a lane, the pool notices a
    closed connection when it hands it out and reconnects it, so the next call succeeds; so must a lane.
    """
    name = "lane-victim"
    timers = front.timers(spec("jobs", Job, ignore), client_kwargs={"client_name": name})
    base = far_future(front)
    assert timers.set_timer("jobs", "first", Job(n=1), activate_at=ms_to_datetime(base)) == ms_to_datetime(base)
    # The lane ran the script call; the pool's connection only loaded the script.
    lanes = [client for client in named_clients(front, name) if client["cmd"] == "evalsha"]
    assert len(lanes) == 1
    assert int(front.raw.client_kill_filter(_id=lanes[0]["id"])) == 1

    assert timers.set_timer("jobs", "second", Job(n=2), activate_at=ms_to_datetime(base + 1)) == ms_to_datetime(
        base + 1
    )
    info = timers.get_timer("jobs", "second")
    assert info is not None
    assert (info.timer_id, info.payload, info.due_at) == ("second", Job(n=2), ms_to_datetime(base + 1))
    assert timers.remove_timer("jobs", "first") is True
    assert front.raw.zcard(TIMELINE) == 1
    assert front.raw.hlen(PAYLOADS) == 1


def test_bulk_calls_take_the_lane_and_survive_its_killed_connection(front: Front) -> None:
    """`set_timers` and `remove_timers` send their batches on the lane too (its framing costs less than a
    pipeline's), and like single calls go through the pool once the lane's connection was closed."""
    name = "lane-victim"
    timers = front.timers(spec("jobs", Job, ignore), client_kwargs={"client_name": name})
    base = far_future(front)
    timers.set_timer("jobs", "first", Job(n=1), activate_at=ms_to_datetime(base))
    batch = [
        redis_timers.TimerSpec("jobs", f"b{n}", Job(n=n), activate_at=ms_to_datetime(base + n)) for n in range(700)
    ]

    assert [result.written for result in timers.call("set_timers", batch)] == [True] * 700
    # The script calls of both went on the one lane; the pool's connection only loaded the scripts.
    lanes = [client for client in named_clients(front, name) if client["cmd"] == "evalsha"]
    assert len(lanes) == 1
    assert int(front.raw.client_kill_filter(_id=lanes[0]["id"])) == 1

    assert timers.call("remove_timers", [redis_timers.TimerRef("jobs", f"b{n}") for n in range(350)]) == [True] * 350
    assert [result.due_at for result in timers.call("set_timers", batch[:10])] == [
        ms_to_datetime(base + n) for n in range(10)
    ]
    assert front.raw.zcard(TIMELINE) == 1 + 350 + 10
    assert front.raw.hlen(PAYLOADS) == 1 + 350 + 10


def test_connections_killed_between_calls_with_a_retry_policy(front: Front) -> None:
    """Every connection of the client killed before each call: the client's retry policy reconnects."""
    name = "lane-victim"
    client_kwargs: dict[str, Any] = {"client_name": name, **retries(front, 2)}
    timers = front.timers(spec("jobs", Job, ignore), client_kwargs=client_kwargs)
    base = far_future(front)
    assert timers.set_timer("jobs", "first", Job(n=1), activate_at=ms_to_datetime(base)) == ms_to_datetime(base)

    rounds = 3
    for round_ in range(1, rounds + 1):
        assert kill_named_clients(front, name) >= 1
        due = ms_to_datetime(base + round_)
        assert timers.set_timer("jobs", f"after-kill-{round_}", Job(n=round_ + 1), activate_at=due) == due
    assert kill_named_clients(front, name) >= 1
    info = timers.get_timer("jobs", f"after-kill-{rounds}")
    assert info is not None
    assert (info.payload, info.due_at) == (Job(n=rounds + 1), ms_to_datetime(base + rounds))
    assert kill_named_clients(front, name) >= 1
    assert timers.remove_timer("jobs", "first") is True

    # Each timer stored once, with its own payload.
    assert front.raw.zcard(TIMELINE) == rounds
    assert front.raw.hlen(PAYLOADS) == rounds
    for round_ in range(1, rounds + 1):
        info = timers.get_timer("jobs", f"after-kill-{round_}")
        assert info is not None
        assert info.payload == Job(n=round_ + 1)


# -- a call interrupted mid-reply ------------------------------------------------------------


def test_a_timed_out_call_does_not_answer_the_next_one(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, ignore), client_kwargs={"socket_timeout": 0.3, **retries(front, 0)})
    base = far_future(front)
    # Scripts loaded and a lane connection in place before the server stalls.
    assert timers.set_timer("jobs", "first", Job(n=1), activate_at=ms_to_datetime(base)) == ms_to_datetime(base)

    started = time.monotonic()
    with writes_paused(front), pytest.raises(TimersConnectionError):
        timers.set_timer("jobs", "stalled", Job(n=2), activate_at=ms_to_datetime(base + 1))
    assert time.monotonic() - started < 3.0

    # Were the stalled call's reply left unread, it would answer this call (with base + 1).
    assert timers.set_timer("jobs", "next", Job(n=3), activate_at=ms_to_datetime(base + 2)) == ms_to_datetime(base + 2)
    info = timers.get_timer("jobs", "next")
    assert info is not None
    assert (info.timer_id, info.payload, info.due_at) == ("next", Job(n=3), ms_to_datetime(base + 2))
    assert timers.remove_timer("jobs", "first") is True
    stalled = timers.get_timer("jobs", "stalled")  # the server may or may not have run it after the pause
    assert stalled is None or stalled.payload == Job(n=2)


@pytest.mark.parametrize("front", ["async"], indirect=True)
@pytest.mark.parametrize("call_during_pause", ["set_timer", "get_timer"])
def test_a_cancelled_call_does_not_answer_the_next_one(front: Front, call_during_pause: str) -> None:
    timers = front.timers(spec("jobs", Job, ignore))
    base = far_future(front)
    assert timers.set_timer("jobs", "first", Job(n=1), activate_at=ms_to_datetime(base)) == ms_to_datetime(base)
    assert timers.get_timer("jobs", "first") is not None  # every script loaded before the pause
    aio_timers = timers.timers

    async def cancelled_call() -> bool:
        with anyio.move_on_after(0.3) as scope:
            if call_during_pause == "set_timer":
                await aio_timers.set_timer("jobs", "stalled", Job(n=2), activate_at=ms_to_datetime(base + 1))
            else:
                await aio_timers.get_timer("jobs", "first")
        return bool(scope.cancelled_caught)

    with writes_paused(front):
        assert front.portal.call(cancelled_call), "the call was not held by the pause"

    assert timers.set_timer("jobs", "next", Job(n=3), activate_at=ms_to_datetime(base + 2)) == ms_to_datetime(base + 2)
    info = timers.get_timer("jobs", "next")
    assert info is not None
    assert (info.timer_id, info.payload, info.due_at) == ("next", Job(n=3), ms_to_datetime(base + 2))
    assert timers.remove_timer("jobs", "missing") is False
    assert timers.remove_timer("jobs", "first") is True


@pytest.mark.parametrize("front", ["async"], indirect=True)
def test_a_cancelled_call_among_concurrent_ones(front: Front) -> None:
    """Tasks cancelled mid-call while others run on the same Timers: the survivors' replies are their own."""
    timers = front.timers(spec("jobs", Job, ignore))
    base = far_future(front)
    timers.set_timer("jobs", "warm-up", Job(n=0), NOW)
    timers.get_timer("jobs", "warm-up")
    aio_timers = timers.timers
    total = 40

    async def cancel_all() -> bool:
        with anyio.move_on_after(0.3) as scope:
            async with anyio.create_task_group() as tasks:
                for n in range(total):
                    tasks.start_soon(
                        functools.partial(
                            aio_timers.set_timer, "jobs", f"stalled{n}", Job(n=n), activate_at=ms_to_datetime(base + n)
                        )
                    )
        return bool(scope.cancelled_caught)

    with writes_paused(front):
        assert front.portal.call(cancel_all), "the calls were not held by the pause"
    calls = [set_at("jobs", f"next{n}", Job(n=1000 + n), base + 1000 + n) for n in range(total)]
    assert call_concurrently(timers, calls, 8) == [ms_to_datetime(base + 1000 + n) for n in range(total)]
    infos = call_concurrently(timers, [get("jobs", f"next{n}") for n in range(total)], 8)
    assert [info.payload for info in infos] == [Job(n=1000 + n) for n in range(total)]


# -- the client's encoding -------------------------------------------------------------------


@pytest.mark.parametrize("decode_responses", [True, False])
def test_a_client_with_another_encoding(front: Front, decode_responses: bool) -> None:
    """Calls through a lane and calls through a pool (a blocking pool is never laned) agree on every byte."""
    handled: Recorder[str] = Recorder()
    handler = spec("texts", Other, lambda payload, context: handled.record(payload.text))
    client_kwargs: dict[str, Any] = {"encoding": "latin-1", "decode_responses": decode_responses}
    laned = front.timers(handler, decode_responses=decode_responses, client_kwargs={"encoding": "latin-1"})
    client = blocking_client(front, 2, **client_kwargs)
    try:
        pooled = front.timers(handler, client=client)
        base = far_future(front)
        texts = {"laned-é": "posé par la voie, à l'été", "pooled-é": "posé par le pool, thé"}
        assert laned.set_timer(
            "texts", "laned-é", Other(text=texts["laned-é"]), activate_at=ms_to_datetime(base)
        ) == ms_to_datetime(base)
        assert pooled.set_timer(
            "texts", "pooled-é", Other(text=texts["pooled-é"]), activate_at=ms_to_datetime(base + 1)
        ) == ms_to_datetime(base + 1)
        laned.set_timer("texts", "café-laned", Other(text="thé é"), NOW)
        pooled.set_timer("texts", "café-pooled", Other(text="crème é"), NOW)

        for reader in (laned, pooled):
            for n, timer_id in enumerate(texts):
                info = reader.get_timer("texts", timer_id)
                assert info is not None, timer_id
                assert (info.timer_id, info.payload, info.due_at, info.attempts) == (
                    timer_id,
                    Other(text=texts[timer_id]),
                    ms_to_datetime(base + n),
                    0,
                )
        assert front.raw.zcard("{timers}:timeline:texts") == 4  # one entry per id, not one per encoding

        laned.handle_ready_timers()
        assert sorted(handled.items) == ["crème é", "thé é"]
        assert pooled.get_timer("texts", "café-laned") is None
        assert laned.get_timer("texts", "café-pooled") is None

        assert pooled.remove_timer("texts", "laned-é") is True
        assert laned.remove_timer("texts", "pooled-é") is True
        assert front.timer_data() == []
    finally:
        front.close_client(client)


# -- fork ------------------------------------------------------------------------------------


def _tot_cmds(front: Front, client_id: str) -> int | None:
    """Commands the server has run for one connection (None if it is gone or the server does not say)."""
    for client in front.raw.client_list():
        if client["id"] == client_id:
            return int(client["tot-cmds"]) if "tot-cmds" in client else None
    return None


@pytest.mark.parametrize("front", ["sync"], indirect=True)  # forking a process that runs an event loop is unsafe
def test_a_forked_child_leaves_the_parents_lane_alone(front: Front) -> None:
    name = "lane-forked"
    timers = front.timers(spec("jobs", Job, ignore), client_kwargs={"client_name": name})
    base = far_future(front)
    assert timers.set_timer("jobs", "parent-1", Job(n=1), activate_at=ms_to_datetime(base)) == ms_to_datetime(base)
    assert timers.get_timer("jobs", "parent-1") is not None
    (lane,) = [client for client in named_clients(front, name) if client["cmd"] == "evalsha"]
    commands_before = _tot_cmds(front, lane["id"])

    def child() -> None:
        due = base + 1
        if timers.timers.set_timer("jobs", "child", Job(n=2), activate_at=ms_to_datetime(due)) != ms_to_datetime(due):
            raise AssertionError("the child got another call's reply")
        info = timers.timers.get_timer("jobs", "child")
        if info is None or info.payload != Job(n=2):
            raise AssertionError(f"the child read back {info!r}")

    process = multiprocessing.get_context("fork").Process(target=child, name="lane-child")
    process.start()
    try:
        process.join(timeout=20)
        assert process.exitcode == 0
    finally:
        if process.exitcode is None:
            process.kill()
            process.join(timeout=10)

    # The parent's connection is still up, and the child sent it nothing (servers without the
    # per-connection `tot-cmds` count, such as Redis 7, only show the former).
    assert any(client["id"] == lane["id"] for client in front.raw.client_list())
    assert _tot_cmds(front, lane["id"]) == commands_before
    assert timers.set_timer("jobs", "parent-2", Job(n=3), activate_at=ms_to_datetime(base + 2)) == ms_to_datetime(
        base + 2
    )
    if commands_before is not None:
        commands_after = _tot_cmds(front, lane["id"])  # a script's own commands count too
        assert commands_after is not None
        assert commands_after > commands_before, "the parent's call did not use its lane"
    for timer_id, payload in [("parent-1", Job(n=1)), ("child", Job(n=2)), ("parent-2", Job(n=3))]:
        info = timers.get_timer("jobs", timer_id)
        assert info is not None, timer_id
        assert info.payload == payload
    assert front.raw.zcard(TIMELINE) == 3


# -- pools a lane must not take from ---------------------------------------------------------


@pytest.mark.parametrize("max_connections", [1, 2])
def test_a_blocking_pool_is_not_laned(front: Front, max_connections: int) -> None:
    """A lane would keep one of the pool's few connections for good: calls would starve waiting for another."""
    handled: Recorder[int] = Recorder()
    client = blocking_client(front, max_connections)
    try:
        timers = front.timers(
            spec("jobs", Job, lambda payload, context: handled.record(payload.n)),
            client=client,
            settings=TimersSettings(concurrent_processing_limit=4),
        )
        base = far_future(front)
        total = 20
        dues = call_concurrently(timers, [set_at("jobs", f"t{n}", Job(n=n), base + n) for n in range(total)], 4)
        assert dues == [ms_to_datetime(base + n) for n in range(total)]
        assert pool_usage(client)[1] == 0
        assert timers.remove_timer("jobs", "t0") is True
        assert timers.remove_timer("jobs", "t0") is False
        for n in range(total):
            timers.set_timer("jobs", f"now{n}", Job(n=n), NOW)
        timers.handle_ready_timers()
        assert sorted(handled.items) == list(range(total))
        info = timers.get_timer("jobs", f"t{total - 1}")
        assert info is not None
        assert info.payload == Job(n=total - 1)

        made, in_use = pool_usage(client)
        assert 1 <= made <= max_connections
        assert in_use == 0, "a connection was kept out of the pool"
    finally:
        front.close_client(client)


# -- a Timers dropped while its client lives on ------------------------------------------------


def test_dropped_timers_give_their_lane_connection_back(front: Front) -> None:
    """An application may make a `Timers` per request over one shared client: the pool must not run dry."""
    client = front.client()
    router = front.router(spec("jobs", Job, ignore))
    base = far_future(front)
    try:
        for n in range(20):
            kwargs: dict[str, Any] = {"redis_client": client, "routers": [router], "settings": TimersSettings()}
            timers = redis_timers.Timers(**kwargs) if front.is_async else redis_timers.sync.Timers(**kwargs)
            call = set_at("jobs", f"t{n}", Job(n=n), base + n)
            due = front.portal.call(call, timers) if front.is_async else call(timers)
            assert due == ms_to_datetime(base + n)
            del timers
            gc.collect()  # the next Timers' first call gives the collected one's connection back
        made, in_use = pool_usage(client)
        assert made <= 2, f"{made} connections for 20 short-lived Timers"
        assert in_use <= 1
        assert int(front.raw.zcard(TIMELINE)) == 20
    finally:
        front.close_client(client)
