"""Real servers put into the states a deployment goes through: demoted, busy, loading, out of memory.

Each state is a context manager over a plain client of the server: entered, it waits until the
server answers in that state; left, it waits until the server serves writes again.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redis_timers import server_errors
from redis_timers.cli.embedded import EmbeddedServer, free_port
from tests.harness import wait_until

DEBUG_ARGS = ("--enable-debug-command", "local")
"""DEBUG RELOAD (for LOADING) is off by default; `local` allows it from loopback only."""
NO_RETRIES = Retry(NoBackoff(), 0)
"""For the clients that arrange and probe a state: redis-py would otherwise retry LOADING, hiding it."""
BUSY_THRESHOLD_MS = 20
"""A script running longer than this makes the server answer BUSY (`busy-reply-threshold`)."""
SPIN_SCRIPT = """
local started = tonumber(redis.call('TIME')[1])
while tonumber(redis.call('TIME')[1]) - started < 60 do end
return 0
"""
"""Another client's slow script: reads only, so SCRIPT KILL can end it."""
LOADING_KEYS = 5_000
LOADING_DELAY_US = 200
"""`key-load-delay` per key: the reload of LOADING_KEYS keys takes about a second."""


def state_server() -> EmbeddedServer:
    return EmbeddedServer(extra_args=DEBUG_ARGS)


def answers(client: redis.Redis, code: str) -> Callable[[], bool]:
    """Whether a write (the state's own check) is answered with the error `code`."""

    def check() -> bool:
        try:
            client.set("{state-probe}", "1")
        except redis.exceptions.RedisError as error:
            return server_errors.server_reply(error).startswith(code + " ")
        return False

    return check


def serves_writes(client: redis.Redis) -> Callable[[], bool]:
    def check() -> bool:
        try:
            client.set("{state-probe}", "1")
        except redis.exceptions.RedisError:
            return False
        client.delete("{state-probe}")
        return True

    return check


@contextlib.contextmanager
def demoted(client: redis.Redis) -> Iterator[None]:
    """READONLY: the server becomes a replica (of a port nobody listens on, so it keeps its data)."""
    client.replicaof("127.0.0.1", str(free_port()))
    try:
        yield
    finally:
        client.replicaof("NO", "ONE")
        wait_until(serves_writes(client))


@contextlib.contextmanager
def master_down(client: redis.Redis) -> Iterator[None]:
    """MASTERDOWN: a replica whose primary is gone, set not to serve stale data."""
    client.config_set("replica-serve-stale-data", "no")
    try:
        with demoted(client):
            yield
    finally:
        client.config_set("replica-serve-stale-data", "yes")


@contextlib.contextmanager
def out_of_memory(client: redis.Redis) -> Iterator[None]:
    """OOM: `maxmemory` far below what the server uses, with the default `noeviction` policy."""
    client.config_set("maxmemory", "1")
    try:
        yield
    finally:
        client.config_set("maxmemory", "0")
        wait_until(serves_writes(client))


@contextlib.contextmanager
def busy(server: EmbeddedServer) -> Iterator[None]:
    """BUSY: another client runs a long script; every other command is refused until SCRIPT KILL."""
    control = redis.Redis(host=server.host, port=server.port, retry=NO_RETRIES)
    spinner = redis.Redis(host=server.host, port=server.port, retry=NO_RETRIES)
    control.config_set("busy-reply-threshold", str(BUSY_THRESHOLD_MS))
    outcome: list[BaseException] = []

    def spin() -> None:
        try:
            spinner.eval(SPIN_SCRIPT, 0)
        except redis.exceptions.ResponseError as error:
            outcome.append(error)  # killed, as planned

    thread = threading.Thread(target=spin, name="busy-script", daemon=True)
    thread.start()
    try:
        wait_until(answers(control, "BUSY"))
        yield
    finally:
        wait_until(lambda: _kill_script(control))
        thread.join(20)
        spinner.close()
        control.close()
    assert outcome, "the slow script ended on its own instead of by SCRIPT KILL"


def _kill_script(control: redis.Redis) -> bool:
    try:
        control.script_kill()
    except redis.exceptions.ResponseError:
        return False  # NOTBUSY: not started yet, or already killed
    return True


@contextlib.contextmanager
def loading(server: EmbeddedServer) -> Iterator[None]:
    """LOADING: DEBUG RELOAD of a dataset loaded slowly (`key-load-delay`); the state ends on its own."""
    control = redis.Redis(host=server.host, port=server.port, retry=NO_RETRIES)
    control.execute_command("DEBUG", "POPULATE", str(LOADING_KEYS), "{loading-filler}")  # type: ignore[no-untyped-call]
    control.config_set("key-load-delay", str(LOADING_DELAY_US))
    control.config_set("loading-process-events-interval-bytes", "1024")  # answer LOADING while loading
    reloaded = threading.Event()

    def reload() -> None:
        reloader = redis.Redis(host=server.host, port=server.port, retry=NO_RETRIES)
        try:
            reloader.execute_command("DEBUG", "RELOAD")  # type: ignore[no-untyped-call]
        finally:
            reloader.close()
            reloaded.set()

    threading.Thread(target=reload, name="debug-reload", daemon=True).start()
    try:
        wait_until(answers(control, "LOADING"))
        yield
    finally:
        assert reloaded.wait(30), "DEBUG RELOAD did not finish"
        control.config_set("key-load-delay", "0")
        wait_until(serves_writes(control))
        control.close()
