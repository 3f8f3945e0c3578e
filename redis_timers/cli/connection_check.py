"""Whether Redis answers and accepts us, checked before a command starts working, and said in one line.

The library retries a Redis it cannot reach, forever, as a worker should during an outage. A command
that has never reached its Redis is more likely misconfigured (a wrong password, host or database, a
server that never answers): it says so and exits instead of retrying in silence.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import anyio
import redis
import redis.asyncio
import redis.exceptions

from redis_timers.errors import TimersAuthenticationError, TimersError

DEFAULT_CONNECT_TIMEOUT_SECONDS = 5.0


class RedisUnusable(Exception):
    """Redis did not answer, or refused us; the message is the one line to show."""


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def authentication_failure(error: BaseException) -> BaseException | None:
    """The authentication error behind `error`: the library's typed one, or redis-py's (from a client we PING)."""
    for link in _chain(error):
        if isinstance(link, (TimersAuthenticationError, redis.exceptions.AuthenticationError)):
            return link
    return None


def explain(error: BaseException, where: str, within_seconds: float | None = None) -> str:
    """One line saying what went wrong between us and the Redis at `where` (a URL without its password)."""
    auth = authentication_failure(error)
    if auth is not None:
        return f"authentication failed at {where}: {auth}"
    if isinstance(error, (redis.exceptions.TimeoutError, TimeoutError)):
        within = f" within {within_seconds:g}s" if within_seconds is not None else ""
        return f"Redis at {where} did not answer{within}: {error}"
    if isinstance(error, redis.exceptions.ResponseError):
        return f"Redis at {where} refused: {error}"
    if isinstance(error, (redis.exceptions.ConnectionError, OSError)):
        return f"cannot reach Redis at {where}: {error}"
    if isinstance(error, redis.exceptions.RedisClusterException):
        return f"no Redis Cluster at {where}: {error}"
    if isinstance(error, TimersError):
        return f"{type(error).__name__}: {error}"
    return f"{type(error).__name__} from Redis at {where}: {error}"


# A cluster client's own error (not a RedisError) when it reads no slot map from the node it was given: nothing
# listens there, or the server is not in cluster mode.
CHECKED_ERRORS = (redis.exceptions.RedisError, redis.exceptions.RedisClusterException, OSError, TimersError)


def is_cluster_node(info: dict[str, object]) -> bool:
    """Whether `INFO cluster` says the server runs in cluster mode."""
    return str(info.get("cluster_enabled", 0)) == "1"


def cluster_info(client: redis.Redis) -> dict[str, object]:
    try:
        return client.info("cluster")
    except redis.exceptions.NoPermissionError:
        return {}  # a user limited to what the worker needs (docs/operations.md) has no INFO: nothing to tell


async def cluster_info_async(client: redis.asyncio.Redis) -> dict[str, object]:
    try:
        return await client.info("cluster")
    except redis.exceptions.NoPermissionError:
        return {}  # as `cluster_info`


def plain_client_on_cluster_node(where: str) -> RedisUnusable:
    # A plain client of one node gets MOVED for every key of another node's slots, and the worker would retry
    # that for ever: a setup to fix, said at once.
    return RedisUnusable(f"Redis at {where} is a node of a Redis Cluster: run with --cluster (and a cluster client)")


def check_sync(client: redis.Redis, where: str, within_seconds: float) -> None:
    """PING with `client` within `within_seconds`, or raise RedisUnusable saying why not.

    The PING runs in a daemon thread so that a server that never answers cannot hold us past the
    deadline whatever the client's own socket timeouts; the command exits soon after, thread and all.
    """
    outcome: list[BaseException | None] = []
    done = threading.Event()

    def ping() -> None:
        try:
            client.ping()
            if isinstance(client, redis.Redis) and is_cluster_node(cluster_info(client)):
                outcome.append(plain_client_on_cluster_node(where))
            else:
                outcome.append(None)
        except BaseException as error:
            outcome.append(error)
        finally:
            done.set()

    threading.Thread(target=ping, name="redis-timers-connection-check", daemon=True).start()
    if not done.wait(within_seconds):
        raise RedisUnusable(f"Redis at {where} did not answer within {within_seconds:g}s")
    failure = outcome[0]
    if failure is None:
        return
    if isinstance(failure, RedisUnusable):
        raise failure
    if isinstance(failure, CHECKED_ERRORS):
        raise RedisUnusable(explain(failure, where, within_seconds)) from failure
    raise failure


async def check_async(client: redis.asyncio.Redis, where: str, within_seconds: float) -> None:
    """The same as `check_sync`, for an async client on the running event loop."""
    try:
        with anyio.fail_after(within_seconds):
            await client.ping()
            cluster_node = isinstance(client, redis.asyncio.Redis) and is_cluster_node(await cluster_info_async(client))
    except TimeoutError as error:  # anyio's deadline; before OSError, whose subclass it is
        raise RedisUnusable(f"Redis at {where} did not answer within {within_seconds:g}s") from error
    except CHECKED_ERRORS as error:
        raise RedisUnusable(explain(error, where, within_seconds)) from error
    if cluster_node:
        raise plain_client_on_cluster_node(where)
