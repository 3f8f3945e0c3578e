from __future__ import annotations

import pytest
import redis
import redis.asyncio

from redis_timers.cli.redis_url import describe_client, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("rediss://app:s3cret@cache.internal:6380/2", "rediss://app:***@cache.internal:6380/2"),
        ("redis://app:p@ss:w@rd@127.0.0.1/0", "redis://app:***@127.0.0.1/0"),
        ("redis://app@127.0.0.1/0", "redis://app@127.0.0.1/0"),
        ("unix:///run/redis.sock?db=1&password=s3cret", "unix:///run/redis.sock?db=1&password=***"),
    ],
)
def test_redact_url_hides_passwords_only(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_describe_client_never_shows_the_password() -> None:
    clients = [
        (redis.Redis.from_url("redis://app:s3cret@127.0.0.1:6390/3"), "redis://app:***@127.0.0.1:6390/3"),
        (redis.asyncio.Redis.from_url("redis://127.0.0.1:6391/0"), "redis://127.0.0.1:6391/0"),
        (redis.Redis.from_url("rediss://:s3cret@127.0.0.1:6392/0"), "rediss://:***@127.0.0.1:6392/0"),
        (redis.Redis(unix_socket_path="/run/redis.sock", db=2), "unix:///run/redis.sock?db=2"),
    ]
    for client, shown in clients:
        assert describe_client(client) == shown
    assert describe_client(object()) == "object"
