"""docs/cluster.md against real servers: its example runs on the local cluster, the default it names is the server's."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import redis
import redis.asyncio.cluster
import redis.cluster

from redis_timers import Timers
from redis_timers.cli.embedded import EmbeddedServer
from redis_timers.sync import Timers as SyncTimers

CLUSTER_DOC = (Path(__file__).resolve().parents[2] / "docs" / "cluster.md").read_text(encoding="utf-8")
CLUSTER = " ".join(CLUSTER_DOC.split())
EXAMPLE_URL = "redis://node-1:6379"


def test_the_example_builds_both_front_ends_over_cluster_clients_of_six_shards(cluster_url: str) -> None:
    (example,) = re.findall(r"```python\n(.*?)```", CLUSTER_DOC, re.DOTALL)
    assert EXAMPLE_URL in example
    scope: dict[str, Any] = {}
    exec(example.replace(EXAMPLE_URL, cluster_url), scope)  # noqa: S102 - the page's own example
    timers, sync_timers = scope["timers"], scope["sync_timers"]
    assert isinstance(timers, Timers)
    assert isinstance(timers.redis_client, redis.asyncio.cluster.RedisCluster)
    assert isinstance(sync_timers, SyncTimers)
    assert isinstance(sync_timers.redis_client, redis.cluster.RedisCluster)
    try:
        # Both reach every shard of the cluster (and the first records the namespace's 6 shards).
        assert sync_timers.dead_letters() == []
        assert asyncio.run(_dead_letters(timers)) == []
        assert sync_timers.redis_client.get("{timers}:shards") in (b"6", "6")
    finally:
        sync_timers.redis_client.close()


async def _dead_letters(timers: Timers) -> list[Any]:
    try:
        return list(await timers.dead_letters())
    finally:
        await timers.redis_client.aclose()


def test_the_default_node_timeout_is_the_one_the_page_names(redis_server: EmbeddedServer) -> None:
    client = redis.Redis(host=redis_server.host, port=redis_server.port, decode_responses=True)
    try:
        assert client.config_get("cluster-node-timeout") == {"cluster-node-timeout": "15000"}
    finally:
        client.close()
    assert "the project's tests use 1000 ms (the default is 15000)" in CLUSTER
