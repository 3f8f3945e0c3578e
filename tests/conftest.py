from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.servers import RunningServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RunningServer]:
    server = RunningServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_url(redis_server: RunningServer) -> Iterator[str]:
    """A clean keyspace for each test."""
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    yield redis_server.url
