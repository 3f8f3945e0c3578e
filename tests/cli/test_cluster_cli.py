"""`redis-timers worker --cluster` and `demo --cluster` as subprocesses, on a local cluster."""

from __future__ import annotations

import datetime
import re
import signal
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.cluster

from redis_timers.cli.demo import NAMESPACE
from redis_timers.cli.embedded import free_port
from redis_timers.sync import Router
from redis_timers.sync import Timers as SyncTimers
from tests.cli.app import TOPIC, Job
from tests.cli.conftest import Spawn
from tests.cli.test_demo import SUMMARY
from tests.conftest import skip_without_cluster_clients
from tests.scenarios.test_acl import PASSWORD, documented_acl_rules

NOW = datetime.timedelta(0)
SHARES = re.compile(
    r"^script calls per primary \(set_timer and worker round trips, INFO commandstats\): (?P<shares>.*)$"
)
SHARE = re.compile(r"127\.0\.0\.1:\d+ (?P<calls>\d+) \((?P<percent>\d+)%\)")


@pytest.fixture
def cluster_client(cluster_url: str) -> Iterator[redis.cluster.RedisCluster]:
    client = redis.cluster.RedisCluster.from_url(cluster_url)
    yield client
    client.close()


FIRED = re.compile(r"^timers fired per primary \(the primary of each timer's shard\): (?P<shares>.*)$")


def primary_shares(output_lines: list[str], pattern: re.Pattern[str] = SHARES) -> list[tuple[int, int]]:
    line = next(match for line in output_lines if (match := pattern.match(line)))
    return [(int(share["calls"]), int(share["percent"])) for share in SHARE.finditer(line["shares"])]


@pytest.mark.parametrize("attribute", ["async_timers", "sync_timers"])
def test_worker_runs_on_a_cluster_named_by_any_node(
    spawn: Spawn, cluster_url: str, cluster_client: redis.cluster.RedisCluster, attribute: str
) -> None:
    router = Router()

    @router.handler(topic=TOPIC, schema=Job)
    def not_run_here(job: Job, context: dict[str, Any]) -> None:
        raise AssertionError("the test process never handles timers")

    scheduler = SyncTimers(redis_client=cluster_client, routers=[router])
    worker = spawn("worker", f"tests.cli.cluster_app:{attribute}", "--cluster", "--redis-url", cluster_url)
    startup = worker.wait_for("redis-timers worker starting")
    assert "Redis a Redis Cluster, via 127.0.0.1:" in startup

    scheduler.set_timer(TOPIC, "job-1", Job(name="job-1"), NOW)
    worker.wait_for("handler finished job-1")
    worker.process.send_signal(signal.SIGTERM)

    assert worker.wait_exit() == 0, worker.output
    assert scheduler.get_timer(TOPIC, "job-1") is None


def test_worker_cluster_needs_a_url(spawn: Spawn) -> None:
    worker = spawn("worker", "tests.cli.cluster_app:sync_timers", "--cluster")
    assert worker.wait_exit() == 2
    assert "worker --cluster needs --redis-url" in worker.output


@pytest.mark.parametrize("attribute", ["async_timers", "sync_timers"])
@pytest.mark.parametrize("server", ["not a cluster node", "nothing listening"])
def test_worker_cluster_on_a_url_that_is_no_cluster_node_says_so_in_one_line_and_exits_2(
    spawn: Spawn, redis_url: str, attribute: str, server: str
) -> None:
    skip_without_cluster_clients()
    url = redis_url if server == "not a cluster node" else f"redis://127.0.0.1:{free_port()}"
    worker = spawn("worker", f"tests.cli.cluster_app:{attribute}", "--cluster", "--redis-url", url)
    assert worker.wait_exit() == 2, worker.output
    assert "redis-timers worker cannot start:" in worker.output
    assert "Traceback" not in worker.output
    assert ("Cluster mode is not enabled" if server == "not a cluster node" else "onnect") in worker.output


@pytest.mark.parametrize("attribute", ["async_timers", "sync_timers"])
def test_worker_without_cluster_on_a_cluster_node_says_to_run_with_cluster_and_exits_2(
    spawn: Spawn, cluster_url: str, attribute: str
) -> None:
    """A plain client of one node would get MOVED for the keys of the others' slots, retried for ever."""
    worker = spawn("worker", f"tests.cli.app:{attribute}", "--redis-url", cluster_url)
    assert worker.wait_exit() == 2, worker.output
    assert "is a node of a Redis Cluster: run with --cluster" in worker.output


@pytest.mark.parametrize("attribute", ["async_timers", "sync_timers"])
def test_worker_under_the_documented_acl_user_starts_without_info(spawn: Spawn, redis_url: str, attribute: str) -> None:
    """The start-up check asks whether the server is a cluster node; the documented ACL has no INFO."""
    admin = redis.Redis.from_url(redis_url)
    version = tuple(int(part) for part in str(admin.info("server")["redis_version"]).split(".")[:2])
    admin.execute_command("ACL", "SETUSER", "timers", *documented_acl_rules(version))  # type: ignore[no-untyped-call]
    try:
        url = redis_url.replace("redis://", f"redis://timers:{PASSWORD}@")
        worker = spawn("worker", f"tests.cli.app:{attribute}", "--redis-url", url)
        worker.wait_for("redis-timers worker starting")
        worker.process.send_signal(signal.SIGTERM)
        assert worker.wait_exit() == 0, worker.output
    finally:
        admin.acl_deluser("timers")
        admin.close()


def test_demo_on_a_cluster_named_by_any_node_reports_each_primarys_share(
    spawn: Spawn, cluster_url: str, cluster_client: redis.cluster.RedisCluster
) -> None:
    demo = spawn("demo", "--cluster", "--redis-url", cluster_url, "--count", "8", "--spread", "0.5")

    assert demo.wait_exit() == 0, demo.output
    summary = next(match for line in demo.lines if (match := SUMMARY.match(line)))
    assert summary["fired"] == summary["expected"] == "8"
    assert "a cluster of 3 primaries, namespace in 1 shard(s)" in demo.output
    shares = primary_shares(demo.lines)
    assert len(shares) == 3
    assert max(calls for calls, _ in shares) > 8  # one set_timer and at least one round trip for each timer
    primaries = cluster_client.get_primaries()  # type: ignore[no-untyped-call]
    keys = [key for node in primaries for key in cluster_client.keys("*", target_nodes=node)]
    assert [key for key in keys if NAMESPACE.encode() in key and b":shards" not in key] == []  # tidied up


def test_demo_cluster_without_a_url_starts_and_stops_an_embedded_cluster(spawn: Spawn) -> None:
    skip_without_cluster_clients()
    demo = spawn("demo", "--cluster", "--count", "30", "--spread", "0.5")

    assert demo.wait_exit() == 0, demo.output
    assert "(embedded, started for this demo; a cluster of 3 primaries, namespace in 6 shard(s))" in demo.output
    assert any(SUMMARY.match(line) for line in demo.lines)
    shares = primary_shares(demo.lines)
    assert len(shares) == 3
    assert 99 <= sum(percent for _, percent in shares) <= 101
    assert all(calls > 0 for calls, _ in shares)
    fired = primary_shares(demo.lines, FIRED)
    assert len(fired) == 3
    assert sum(count for count, _ in fired) == 30
    assert all(count > 0 for count, _ in fired)  # 6 shards, 2 on each primary: every primary fires timers
    assert demo.lines[-1] == "embedded cluster shut down"
