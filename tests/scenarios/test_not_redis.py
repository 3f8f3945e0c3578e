"""A URL that leads to something other than Redis (a web server, a wrong port): calls raise a typed error.

redis-py raises `InvalidResponse` for bytes that are not the Redis protocol, a class outside both its
connection and its reply errors; it must not reach the caller as a raw `redis.exceptions` error.
"""

from __future__ import annotations

import contextlib
import datetime
import socket
import threading
from collections.abc import Iterator

import pytest
import redis.exceptions

from redis_timers import TimersConnectionError
from tests.harness import FRONT_KINDS, Front, FrontKind, spec
from tests.scenarios.models import Job

NOT_RESP = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"


@contextlib.contextmanager
def web_server() -> Iterator[str]:
    """A loopback server that answers whatever it is sent as a web server would, then closes."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # closed
            with connection, contextlib.suppress(OSError):
                connection.recv(65536)
                connection.sendall(NOT_RESP)

    threading.Thread(target=serve, name="not-redis", daemon=True).start()
    try:
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    finally:
        listener.close()


@pytest.mark.parametrize("kind", FRONT_KINDS)
def test_a_server_that_does_not_speak_redis_gets_a_connection_error(kind: FrontKind, redis_url: str) -> None:
    with web_server() as url:
        front = Front(kind, redis_url)
        try:
            timers = front.timers(spec("jobs", Job, lambda payload, context: None), url=url)
            calls = [
                lambda: timers.set_timer("jobs", "a", Job(n=1), datetime.timedelta(0)),
                lambda: timers.remove_timer("jobs", "a"),
                lambda: timers.get_timer("jobs", "a"),
                timers.dead_letters,
                timers.handle_ready_timers,
            ]
            for call in calls:
                with pytest.raises(TimersConnectionError) as raised:
                    call()
                assert isinstance(raised.value.__cause__, redis.exceptions.RedisError)
        finally:
            front.close()
