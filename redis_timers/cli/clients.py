"""The redis-py clients the command line makes from a URL: a plain client, or with `--cluster` a cluster client
(the URL names any node of the cluster; the client finds the others)."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster


def sync_client(url: str, *, cluster: bool, **kwargs: Any) -> Any:
    """A `redis.Redis`, or with `cluster` a `redis.cluster.RedisCluster`, for `url`."""
    if cluster:
        return redis.cluster.RedisCluster.from_url(url, **kwargs)
    return redis.Redis.from_url(url, **kwargs)


def async_client(url: str, *, cluster: bool, **kwargs: Any) -> Any:
    """A `redis.asyncio.Redis`, or with `cluster` a `redis.asyncio.cluster.RedisCluster`, for `url`."""
    if cluster:
        return redis.asyncio.cluster.RedisCluster.from_url(url, **kwargs)
    return redis.asyncio.Redis.from_url(url, **kwargs)
