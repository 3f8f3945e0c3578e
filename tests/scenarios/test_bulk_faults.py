"""`set_timers` against a server that refuses or drops it mid-call, through both front ends: the typed error, what
stands, a retry that converges, and a connection that answers the next call with that call's own replies."""

from __future__ import annotations

import contextlib
import datetime
import logging
from typing import Any

import anyio
import pytest

from redis_timers import (
    TimerRef,
    TimersConnectionError,
    TimersError,
    TimersOutOfMemoryError,
    TimerSpec,
    TimersSettings,
)
from redis_timers.cli.embedded import EmbeddedServer
from redis_timers.keys import Namespace
from tests.harness import Front, Recorder, spec, wait_until
from tests.scenarios import servers, test_server_states
from tests.scenarios.models import Job
from tests.scenarios.test_server_states import STATES, warned_about

server = test_server_states.server
"""One server that each state of `STATES` can be entered on, for each test."""
front = test_server_states.front
"""Both front ends over `server`."""

LATER = datetime.timedelta(hours=1)
SHARDS = 4
NAMESPACE = Namespace("timers", SHARDS)


def no_op(payload: Any, context: dict[str, Any]) -> None:
    pass


def written(front: Front) -> int:
    return sum(front.raw.zcard(keyspace.timeline("jobs")) for keyspace in NAMESPACE.keyspaces)


def items(count: int, note: str = "") -> list[TimerSpec]:
    return [TimerSpec("jobs", f"j{n}", Job(n=n, note=note), LATER) for n in range(count)]


@pytest.mark.parametrize("code", list(STATES))
def test_a_bulk_call_refused_by_the_server_raises_its_error_writes_nothing_and_the_next_call_is_sound(
    front: Front, server: EmbeddedServer, code: str
) -> None:
    """Every batch refused: the state's own typed error (LOADING's reply closes redis-py's connection as it is
    read, and the replies after it are lost with it), nothing written, and the next calls answered right."""
    enter, error_class = STATES[code]
    timers = front.timers(spec("jobs", Job, no_op), settings=TimersSettings(shards=SHARDS))
    timers.call("set_timers", [("jobs", "warm-up", Job(n=0), LATER)])
    with enter(server, front.raw):
        with pytest.raises(error_class) as raised:
            timers.call("set_timers", items(3000))
        assert raised.value.code == code
        if error_class is not TimersOutOfMemoryError:  # removing needs no memory
            with pytest.raises(error_class):
                timers.call("remove_timers", [TimerRef("jobs", f"j{n}") for n in range(3000)] + [("jobs", "warm-up")])
            with pytest.raises(error_class):  # a script call and its WAITs, on one connection
                timers.call("set_timer", "jobs", "durable", Job(n=1), LATER, durable=True)
    assert written(front) == 1
    results = timers.call("set_timers", items(3000), mode="keep")
    assert [result.written for result in results] == [True] * 3000
    assert written(front) == 3001
    assert timers.call("remove_timers", [("jobs", "absent"), ("jobs", "warm-up")]) == [False, True]


def test_a_worker_over_shards_rides_loading_out(
    front: Front, server: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A round trip over several shards is one pipelined call per shard: LOADING's reply to the first is an
    outage the worker waits out, as on one shard."""
    fired: Recorder[str] = Recorder()
    settings = TimersSettings(shards=SHARDS, handling_sleep=0.01)
    worker = front.timers(spec("jobs", Job, lambda payload, context: fired.record(payload.note)), settings=settings)
    writer = front.timers(spec("jobs", Job, no_op), settings=settings)
    with contextlib.ExitStack() as stack:
        stack.callback(worker.shutdown_worker)
        worker.start_worker()
        writer.set_timer("jobs", "before", Job(n=1, note="before"), datetime.timedelta(0))
        fired.wait_for(1)
        caplog.set_level(logging.WARNING, logger="redis_timers")
        # Due together on every shard: the worker's round trip is one call to each, in one pipeline.
        soon = datetime.timedelta(milliseconds=500)
        writer.call("set_timers", [("jobs", f"during{n}", Job(n=n, note="during"), soon) for n in range(16)])
        assert len({NAMESPACE.keyspace_for("jobs", f"during{n}").shard for n in range(16)}) == SHARDS
        with servers.loading(server):
            wait_until(lambda: not worker.worker_running or warned_about(caplog, "LOADING")())
            assert worker.worker_running
        fired.wait_for(17)
        writer.set_timer("jobs", "after", Job(n=3, note="after"), datetime.timedelta(0))
        fired.wait_for(18)
        worker.stop_worker()
    assert fired.items == ["before", *["during"] * 16, "after"]


def test_a_bulk_call_that_runs_out_of_memory_midway_leaves_whole_batches_and_a_retry_writes_the_rest(
    front: Front,
) -> None:
    timers = front.timers(spec("jobs", Job, no_op), settings=TimersSettings(shards=SHARDS))
    timers.call("set_timers", [("jobs", "warm-up", Job(n=0), LATER)])
    used = int(front.raw.info("memory")["used_memory"])
    front.raw.config_set("maxmemory", str(used + 400_000))
    big = [TimerSpec("jobs", f"j{n}", Job(n=n, note="x" * 400), LATER) for n in range(10_000)]
    try:
        with pytest.raises(TimersError) as raised:
            timers.call("set_timers", big)
        assert raised.value.code == "OOM"  # type: ignore[attr-defined]
        assert 1 < written(front) < 10_001
        assert whole(front)  # every timer that stands has its payload: nothing half-written
    finally:
        front.raw.config_set("maxmemory", "0")
    assert all(result.written for result in timers.call("set_timers", big))
    assert written(front) == 10_001


def whole(front: Front) -> bool:
    return all(
        front.raw.zcard(keyspace.timeline("jobs")) == front.raw.hlen(keyspace.payloads("jobs"))
        for keyspace in NAMESPACE.keyspaces
    )


def kill_other_clients(front: Front) -> int:
    own = front.raw.client_id()
    killed = 0
    for client in front.raw.client_list():
        if int(client["id"]) != own:
            killed += int(front.raw.client_kill_filter(_id=str(client["id"])))
    return killed


def test_a_connection_killed_mid_call_the_call_is_made_again_and_every_timer_stands(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, no_op), settings=TimersSettings(shards=SHARDS))
    timers.call("set_timers", [("jobs", "warm-up", Job(n=0), LATER)])
    call = timers.background("set_timers", items(100_000))
    wait_until(lambda: written(front) > 1, timeout=30, interval=0.001)
    assert kill_other_clients(front) >= 1
    try:
        results = call.result(timeout=60)
    except TimersConnectionError:
        results = None
    assert whole(front)
    if results is not None:
        assert [result.timer_id for result in results] == [f"j{n}" for n in range(100_000)]
    assert timers.call("set_timers", items(10), mode="keep")
    assert written(front) >= 11
    again = timers.call("set_timers", [("jobs", "j0", Job(n=0), LATER)], mode="keep")
    assert [result.written for result in again] == [False]


def test_an_async_bulk_call_cancelled_midway_leaves_nothing_for_the_next_call_to_read() -> None:
    with servers.state_server() as server:
        front = Front("async", server.url)
        try:
            timers = front.timers(spec("jobs", Job, no_op), settings=TimersSettings(shards=SHARDS))
            timers.call("set_timers", [("jobs", "warm-up", Job(n=0), LATER)])
            for attempt in range(5):

                async def cancelled(attempt: int = attempt) -> None:
                    with anyio.move_on_after(0.02 + attempt * 0.03):
                        await timers.timers.set_timers(items(50_000, note=str(attempt)))

                front.portal.call(cancelled)
                assert whole(front)
                kept = timers.call("set_timers", [("jobs", "warm-up", Job(n=1), LATER)], mode="keep")
                assert [result.written for result in kept] == [False]
                info = timers.call("get_timer", "jobs", "warm-up")
                assert info is not None
                assert info.payload == Job(n=0)
                removed = timers.call("remove_timers", [("jobs", "absent"), ("jobs", "warm-up")])
                assert removed == [False, True]
                timers.call("set_timers", [("jobs", "warm-up", Job(n=0), LATER)])
        finally:
            front.close()
