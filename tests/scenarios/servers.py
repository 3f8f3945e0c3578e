"""Real servers put into the states a deployment goes through: demoted, busy, loading, out of memory.

Each state is a context manager over a plain client of the server: entered, it waits until the
server answers in that state; left, it waits until the server serves writes again.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redis_timers import server_errors
from redis_timers.cli.embedded import EmbeddedServer, free_port, server_binary
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


SENTINEL_MASTER = "timers-primary"


class SentinelProcess:
    """One `valkey-server --sentinel` on a free loopback port, watching the primary at `primary_port`."""

    def __init__(self, primary_port: int, *, down_after_ms: int = 500, failover_timeout_ms: int = 2000) -> None:
        self.port = free_port()
        self.host = "127.0.0.1"
        self._dir = Path(tempfile.mkdtemp(prefix="redis-timers-sentinel-"))
        config = self._dir / "sentinel.conf"
        config.write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    f"bind {self.host}",
                    f"dir {self._dir}",
                    f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {primary_port} 2",
                    f"sentinel down-after-milliseconds {SENTINEL_MASTER} {down_after_ms}",
                    f"sentinel failover-timeout {SENTINEL_MASTER} {failover_timeout_ms}",
                    f"sentinel parallel-syncs {SENTINEL_MASTER} 1",
                    "",
                ]
            ),
            encoding="utf-8",
        )
        log = open(self._dir / "sentinel.log", "ab")  # noqa: SIM115 - owned by the process
        self._process = subprocess.Popen([server_binary(), str(config), "--sentinel"], stdout=log, stderr=log)
        client = redis.Redis(host=self.host, port=self.port, retry=NO_RETRIES, socket_connect_timeout=0.5)
        try:
            wait_until(lambda: _answers_ping(client), timeout=10)
        finally:
            client.close()

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait(10)
        shutil.rmtree(self._dir, ignore_errors=True)


def _answers_ping(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False


class SentinelDeployment:
    """A primary, one replica and three sentinels, as a small production deployment runs them."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        fast_sync = ("--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0")
        try:
            self.primary = self._stack.enter_context(EmbeddedServer(extra_args=fast_sync))
            self.replica = self._stack.enter_context(
                EmbeddedServer(extra_args=(*fast_sync, "--replicaof", "127.0.0.1", str(self.primary.port)))
            )
            self.nodes = [self.primary, self.replica]
            wait_until(lambda: self._replica_in_sync(self.primary), timeout=20)
            self.sentinels = [SentinelProcess(self.primary.port) for _ in range(3)]
            for sentinel in self.sentinels:
                self._stack.callback(sentinel.close)
            # Every sentinel knows the replica and the other sentinels before anything fails over.
            wait_until(lambda: all(self._sentinel_ready(sentinel) for sentinel in self.sentinels), timeout=20)
        except BaseException:
            self._stack.close()
            raise

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [(sentinel.host, sentinel.port) for sentinel in self.sentinels]

    def primary_port(self) -> int:
        client = redis.Redis(host=self.sentinels[0].host, port=self.sentinels[0].port, retry=NO_RETRIES)
        try:
            address: Any = client.sentinel_get_master_addr_by_name(SENTINEL_MASTER)
            return int(address[1])
        finally:
            client.close()

    def failover(self) -> None:
        """SENTINEL FAILOVER: the replica becomes the primary, the primary its replica."""
        client = redis.Redis(host=self.sentinels[0].host, port=self.sentinels[0].port, retry=NO_RETRIES)
        try:
            client.execute_command("SENTINEL", "FAILOVER", SENTINEL_MASTER)  # type: ignore[no-untyped-call]
        finally:
            client.close()

    def node(self, port: int) -> EmbeddedServer:
        return next(node for node in self.nodes if node.port == port)

    def _replica_in_sync(self, primary: EmbeddedServer) -> bool:
        client = redis.Redis(host=primary.host, port=primary.port, retry=NO_RETRIES)
        try:
            info = client.info("replication")
            return int(info.get("connected_slaves", 0)) == 1 and info["slave0"]["state"] == "online"
        finally:
            client.close()

    def _sentinel_ready(self, sentinel: SentinelProcess) -> bool:
        client = redis.Redis(host=sentinel.host, port=sentinel.port, retry=NO_RETRIES, decode_responses=True)
        try:
            master: Any = client.sentinel_master(SENTINEL_MASTER)
            return int(master["num-slaves"]) == 1 and int(master["num-other-sentinels"]) == 2
        except redis.exceptions.RedisError:
            return False
        finally:
            client.close()

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> SentinelDeployment:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
