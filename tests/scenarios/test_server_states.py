"""A real server in the states a deployment goes through: the worker rides them out, calls raise typed errors.

READONLY (a demoted primary), MASTERDOWN (a replica whose primary is gone), BUSY (another
client's slow script), LOADING (a restart's reload) and OOM are outages: set_timer and
remove_timer raise a typed `TimersError` at once, and a running worker backs off and
carries on once the state passes, its notification listener included. A permanent error
(a key of the wrong type) stops the worker with that error and loses no timer; a wrong
password fails every call at once.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from redis_timers import (
    TimersAuthenticationError,
    TimersError,
    TimersOutOfMemoryError,
    TimersServerError,
    TimersSettings,
    TimersUnavailableError,
)
from redis_timers.cli.embedded import EmbeddedServer
from tests.harness import FRONT_KINDS, Front, FrontKind, Recorder, spec, subscribers, wait_until
from tests.scenarios import servers
from tests.scenarios.models import Job

NOW = datetime.timedelta(0)
SOON = datetime.timedelta(milliseconds=500)
"""Due while the state holds: every state below is entered within a few ms and lasts a second or more."""
CHANNEL = "{timers}:wake:jobs"
FAST_RETRIES = TimersSettings(handling_sleep=0.01)
"""The worker's first pause after a failure: short, so the tests see it carry on quickly."""

State = Callable[[EmbeddedServer, redis.Redis], contextlib.AbstractContextManager[None]]
STATES: dict[str, tuple[State, type[TimersServerError]]] = {
    "READONLY": (lambda server, client: servers.demoted(client), TimersUnavailableError),
    "MASTERDOWN": (lambda server, client: servers.master_down(client), TimersUnavailableError),
    "BUSY": (lambda server, client: servers.busy(server), TimersUnavailableError),
    "LOADING": (lambda server, client: servers.loading(server), TimersUnavailableError),
    "OOM": (lambda server, client: servers.out_of_memory(client), TimersOutOfMemoryError),
}


@pytest.fixture
def server() -> Iterator[EmbeddedServer]:
    with servers.state_server() as started:
        yield started


@pytest.fixture(params=FRONT_KINDS)
def front(request: pytest.FixtureRequest, server: EmbeddedServer) -> Iterator[Front]:
    kind: FrontKind = request.param
    built = Front(kind, server.url)
    try:
        yield built
    finally:
        built.close()


def warned_about(caplog: pytest.LogCaptureFixture, code: str) -> Callable[[], bool]:
    return lambda: any(code in record.getMessage() for record in list(caplog.records))


@pytest.mark.parametrize("code", list(STATES))
def test_calls_raise_a_typed_error_and_the_worker_rides_the_state_out(
    front: Front, server: EmbeddedServer, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    enter, error_class = STATES[code]
    fired: Recorder[str] = Recorder()
    worker = front.timers(spec("jobs", Job, lambda payload, context: fired.record(payload.note)), settings=FAST_RETRIES)
    writer = front.timers(spec("jobs", Job, lambda payload, context: None))
    writer.set_timer("jobs", "kept", Job(n=0), datetime.timedelta(hours=1))
    caplog.set_level(logging.WARNING, logger="redis_timers")

    with contextlib.ExitStack() as stack:
        stack.callback(worker.shutdown_worker)
        worker.start_worker()
        writer.set_timer("jobs", "before", Job(n=1, note="before"), NOW)
        fired.wait_for(1)
        writer.set_timer("jobs", "during", Job(n=2, note="during"), SOON)
        with enter(server, front.raw):
            with pytest.raises(error_class) as raised:
                writer.set_timer("jobs", "refused", Job(n=3, note="refused"), NOW)
            assert raised.value.code == code
            if error_class is TimersOutOfMemoryError:
                # Deleting needs no memory. Nor does the worker's round trip always: a script may write on
                # once its first write (the round trip's DEL of its previous claim record) went through.
                assert writer.remove_timer("jobs", "absent") is False
            else:
                with pytest.raises(error_class):
                    writer.remove_timer("jobs", "kept")
                wait_until(warned_about(caplog, code))  # the worker met the state when "during" came due
            assert worker.worker_running
        fired.wait_for(2)
        writer.set_timer("jobs", "after", Job(n=4, note="after"), NOW)
        fired.wait_for(3)
        worker.stop_worker()  # returns normally: the state never ended run_forever

    assert fired.items == ["before", "during", "after"]
    assert writer.get_timer("jobs", "kept") is not None
    assert writer.get_timer("jobs", "refused") is None


def lane_connections(front: Front, name: str) -> set[int]:
    return {int(client["id"]) for client in front.raw.client_list() if client["name"] == name}


def test_a_lane_on_a_demoted_primary_is_dropped_so_the_next_call_reconnects(front: Front) -> None:
    writer = front.timers(spec("jobs", Job, lambda payload, context: None), client_kwargs={"client_name": "writer"})
    writer.set_timer("jobs", "a", Job(n=1), NOW)
    before = lane_connections(front, "writer")  # the lane's, and the pool's that loaded the script

    with servers.demoted(front.raw):
        with pytest.raises(TimersUnavailableError, match="READONLY"):
            writer.set_timer("jobs", "b", Job(n=2), NOW)
        wait_until(lambda: len(before - lane_connections(front, "writer")) == 1)

    writer.set_timer("jobs", "b", Job(n=2), NOW)
    assert writer.get_timer("jobs", "b") is not None


@pytest.mark.parametrize("code", ["BUSY", "LOADING", "MASTERDOWN"])
def test_the_listener_rides_the_state_out(
    front: Front, server: EmbeddedServer, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    enter, _ = STATES[code]
    fired: Recorder[str] = Recorder()
    # The listener PINGs its quiet connection every tenth of a second: during the state, the PING is refused.
    settings = TimersSettings(handling_sleep=0.01, safety_wakeup_seconds=0.1)
    worker = front.timers(spec("jobs", Job, lambda payload, context: fired.record(payload.note)), settings=settings)
    writer = front.timers(spec("jobs", Job, lambda payload, context: None))
    caplog.set_level(logging.DEBUG, logger="redis_timers")
    with contextlib.ExitStack() as stack:
        stack.callback(worker.shutdown_worker)
        worker.start_worker()
        wait_until(lambda: subscribers(front.raw, CHANNEL) == 1)
        with enter(server, front.raw):
            wait_until(
                lambda: any(
                    "notification connection" in record.getMessage() and code in record.getMessage()
                    for record in list(caplog.records)
                )
            )
        wait_until(lambda: subscribers(front.raw, CHANNEL) == 1)
        assert worker.worker_running
        # Wake-ups work again: a timer due now fires though the worker knew of nothing to do.
        started = time.monotonic()
        writer.set_timer("jobs", "woken", Job(n=1, note="woken"), NOW)
        fired.wait_for(1)
        assert time.monotonic() - started < 5
        worker.stop_worker()


def test_a_permanent_error_stops_the_worker_with_it_and_loses_no_timer(
    front: Front, caplog: pytest.LogCaptureFixture
) -> None:
    fired: Recorder[str] = Recorder()
    # A short lease: the round trip that failed may have leased a timer before the error (a script stops at the
    # failing command, keeping what it did before); that timer is due again when the lease ends.
    settings = TimersSettings(handling_sleep=0.01, lease_seconds=1)
    worker = front.timers(spec("jobs", Job, lambda payload, context: fired.record(payload.note)), settings=settings)
    worker.set_timer("jobs", "first", Job(n=1, note="first"), NOW)
    worker.set_timer("jobs", "second", Job(n=2, note="second"), SOON)
    # Another application clobbers one of the worker's keys with a value of the wrong type.
    front.raw.delete("{timers}:state:jobs")
    front.raw.set("{timers}:state:jobs", "not a hash")
    caplog.set_level(logging.ERROR, logger="redis_timers")

    worker.start_worker()
    with pytest.raises(TimersServerError) as raised:
        worker.wait_worker()  # itself, not wrapped (in an exception group, for the async front end)
    assert raised.value.code == "WRONGTYPE"
    assert warned_about(caplog, "the worker stops")()
    with pytest.raises(TimersServerError, match="WRONGTYPE"):
        worker.get_timer("jobs", "first")
    assert front.raw.zcard("{timers}:timeline:jobs") == 2  # nothing lost

    front.raw.delete("{timers}:state:jobs")  # the operator repairs the key
    worker.start_worker()
    fired.wait_for(2)
    worker.stop_worker()
    assert sorted(fired.items) == ["first", "second"]


@pytest.fixture
def password_server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(extra_args=("--requirepass", "right-password")) as started:
        yield started


@pytest.mark.parametrize("password", ["wrong-password", None], ids=["wrong", "missing"])
@pytest.mark.parametrize("kind", FRONT_KINDS)
def test_an_authentication_failure_fails_every_call_at_once(
    kind: FrontKind, password_server: EmbeddedServer, password: str | None
) -> None:
    credentials = "" if password is None else f":{password}@"
    front = Front(kind, f"redis://{credentials}{password_server.host}:{password_server.port}/0")
    try:
        timers = front.timers(spec("jobs", Job, lambda payload, context: None))
        calls: list[tuple[str, Any]] = [
            ("set_timer", lambda: timers.set_timer("jobs", "a", Job(n=1), NOW)),
            ("remove_timer", lambda: timers.remove_timer("jobs", "a")),
            ("get_timer", lambda: timers.get_timer("jobs", "a")),
            ("dead_letters", timers.dead_letters),
            ("handle_ready_timers", timers.handle_ready_timers),
        ]
        for name, call in calls:
            started = time.monotonic()
            with pytest.raises(TimersAuthenticationError, match="authentication failed") as raised:
                call()
            assert time.monotonic() - started < 2, name
            assert isinstance(raised.value, TimersError)
        timers.start_worker()
        started = time.monotonic()
        with pytest.raises(TimersAuthenticationError):
            timers.wait_worker()
        assert time.monotonic() - started < 2
    finally:
        front.close()
