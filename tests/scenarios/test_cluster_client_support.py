"""Cluster clients of a redis-py the library does not drive them on are refused when `Timers` is built."""

from __future__ import annotations

import anyio
import pytest
import redis
import redis.asyncio.cluster
import redis.cluster

import redis_timers
import redis_timers.sync
from redis_timers import UnsupportedClientError
from redis_timers.cli.embedded import EmbeddedCluster
from redis_timers.routing import CLUSTER_CLIENTS_SINCE, version_tuple

pytestmark = pytest.mark.skipif(
    version_tuple(redis.__version__) >= CLUSTER_CLIENTS_SINCE,
    reason="this redis-py drives cluster clients (the floors run of CI checks the refusal)",
)


def test_cluster_clients_of_an_older_redis_py_are_refused_by_both_front_ends() -> None:
    with EmbeddedCluster(primaries=3, replicas=0) as cluster:
        sync_client = redis.cluster.RedisCluster.from_url(cluster.url)
        try:
            with pytest.raises(UnsupportedClientError, match=r"redis-py 8\.1 or newer"):
                redis_timers.sync.Timers(redis_client=sync_client)
        finally:
            sync_client.close()

        async def build_async() -> None:
            async_client = redis.asyncio.cluster.RedisCluster.from_url(cluster.url)
            try:
                with pytest.raises(UnsupportedClientError, match=r"redis-py 8\.1 or newer"):
                    redis_timers.Timers(redis_client=async_client)
            finally:
                await async_client.aclose()

        anyio.run(build_async)
