"""Lane.for_client: which clients get a lane (a kept connection) and which go through their pool every call.

No client here ever connects: a port-1 address would refuse any connection attempt.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
from redis.cache import CacheConfig

from redis_timers.aio.lane import Lane as AsyncLane
from redis_timers.sync.lane import Lane as SyncLane

ADDRESS: dict[str, Any] = {"host": "127.0.0.1", "port": 1}


class UnconnectedPool(redis.ConnectionPool):
    """Hands out connections without connecting them.

    A sync client with `single_connection_client=True` takes its connection at construction, and the pool
    connects it; this lets such a client be built with nothing listening.
    """

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        return self.make_connection()


class ClusterLike:
    """Like a cluster client: no `connection_pool` (each node has its own)."""

    def execute_command(self, *args: Any) -> Any:
        raise AssertionError("never called")


def test_sync_plain_client_gets_a_lane() -> None:
    client = redis.Redis(**ADDRESS)

    lane = SyncLane.for_client(client)

    assert isinstance(lane, SyncLane)
    assert lane._pool is client.connection_pool


def test_sync_client_on_its_own_plain_pool_gets_a_lane() -> None:
    pool = redis.ConnectionPool(**ADDRESS)

    lane = SyncLane.for_client(redis.Redis(connection_pool=pool))

    assert isinstance(lane, SyncLane)
    assert lane._pool is pool


def test_sync_client_on_a_blocking_pool_gets_none() -> None:
    pool = redis.BlockingConnectionPool(max_connections=2, **ADDRESS)  # type: ignore[no-untyped-call]
    client = redis.Redis(connection_pool=pool)

    assert SyncLane.for_client(client) is None


def test_sync_single_connection_client_gets_none() -> None:
    shared = redis.Redis(connection_pool=UnconnectedPool(**ADDRESS))
    single = redis.Redis(connection_pool=UnconnectedPool(**ADDRESS), single_connection_client=True)

    assert single.connection is not None  # what redis-py sets up for a single-connection client
    assert isinstance(SyncLane.for_client(shared), SyncLane)  # the same pool without it is laned
    assert SyncLane.for_client(single) is None


def test_sync_client_side_caching_client_gets_none() -> None:
    client = redis.Redis(protocol=3, cache_config=CacheConfig(), **ADDRESS)

    assert client.connection_pool.cache is not None
    assert SyncLane.for_client(client) is None


def test_sync_client_without_a_connection_pool_gets_none() -> None:
    stub: Any = object()
    cluster_like: Any = ClusterLike()

    assert SyncLane.for_client(stub) is None
    assert SyncLane.for_client(cluster_like) is None


def test_async_plain_client_gets_a_lane() -> None:
    client = redis.asyncio.Redis(**ADDRESS)

    lane = AsyncLane.for_client(client)

    assert isinstance(lane, AsyncLane)
    assert lane._pool is client.connection_pool


def test_async_client_on_its_own_plain_pool_gets_a_lane() -> None:
    pool = redis.asyncio.ConnectionPool(**ADDRESS)

    lane = AsyncLane.for_client(redis.asyncio.Redis(connection_pool=pool))

    assert isinstance(lane, AsyncLane)
    assert lane._pool is pool


def test_async_client_on_a_blocking_pool_gets_none() -> None:
    client = redis.asyncio.Redis(connection_pool=redis.asyncio.BlockingConnectionPool(max_connections=2, **ADDRESS))

    assert AsyncLane.for_client(client) is None


def test_async_single_connection_client_gets_none() -> None:
    client = redis.asyncio.Redis(single_connection_client=True, **ADDRESS)

    assert client.connection is None  # an asyncio client takes its connection on first use only
    assert AsyncLane.for_client(client) is None


def test_async_client_without_a_connection_pool_gets_none() -> None:
    stub: Any = object()
    cluster_like: Any = ClusterLike()

    assert AsyncLane.for_client(stub) is None
    assert AsyncLane.for_client(cluster_like) is None
