"""One connection of the client's pool, kept for this `Timers`' script calls (asyncio).

The asyncio twin of `redis_timers/sync/lane.py`, whose docstring says why. A call takes
the lane when no other task has it and otherwise goes through the pool as usual, so
tasks never wait on each other. A call cancelled or failed mid-reply disconnects the
connection, so nothing unread can answer the next call; after a connection error the
call is made again through the pool, under the client's own retry policy.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

import anyio
import redis.asyncio
import redis.exceptions

from redis_timers import server_errors
from redis_timers.lanes import HandBack, lane_pool, unread_replies
from redis_timers.ops import Arg
from redis_timers.resp import CommandFramer

SMALL_WRITE_BYTES = 16 * 1024
"""Below asyncio's default high-water mark (64 KiB): a write this small never waits for the socket."""
HANDBACK = HandBack()
"""Connections of this front end's collected lanes, given back to their pools by the next lane call."""
CONNECTION_ERRORS = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
    # Bytes that are not the Redis protocol: whatever is at the other end is not a Redis server to talk to.
    redis.exceptions.InvalidResponse,
    # A cluster client that read no slot map from any node it knows, or ran out of redirections and retries
    # (a failover under way): there is no node to send the command to yet.
    redis.exceptions.RedisClusterException,
    redis.exceptions.ClusterError,
)
SERVER_REPLY_ERRORS = (
    redis.exceptions.ResponseError,
    # Error replies too, although redis-py files them under connection errors:
    redis.exceptions.AuthenticationError,
    redis.exceptions.BusyLoadingError,
)
"""An error reply of the server: it was read in full, and `server_errors` says what it means."""


class Lane:
    def __init__(self, pool: redis.asyncio.ConnectionPool) -> None:
        self._pool = pool
        self._busy = False  # one event loop: checked and set with no await in between
        self._held = HANDBACK.watch(self, pool)
        self._framer = CommandFramer()
        self._should_reconnect: Callable[[], bool] = bool
        self._pid = os.getpid()
        self._dropped = False

    @classmethod
    def for_client(cls, client: Any) -> Lane | None:
        """A lane for a plain client; None for any other (a cluster client has a pool per node, see `lane_pool`)."""
        pool = lane_pool(client, redis.asyncio.BlockingConnectionPool)
        return None if pool is None else cls(pool)

    async def try_execute(self, prefix: tuple[str, ...], rest: tuple[Arg, ...]) -> tuple[bool, Any]:
        """(True, reply to `*prefix, *rest`), or (False, None): another task holds the lane, or the connection
        failed (it is dropped; the caller then goes through the pool, whose retry policy takes over).

        `prefix` is what repeats from call to call (see `resp.CommandFramer`).
        """
        if self._busy:
            return False, None
        self._busy = True
        connection = None
        try:
            connection = self._held.connection
            if connection is None or self._pid != os.getpid():
                connection = await self._connect()
            elif self._dropped:
                # Connected again by `connect()` itself (see sync/lane.py): a Sentinel-managed connection asks
                # for the current primary there.
                await connection.connect()
            self._dropped = False
            data = self._framer.frame(prefix, rest)
            writer = getattr(connection, "_writer", None)
            if writer is None or len(data) >= SMALL_WRITE_BYTES or connection.health_check_interval:
                await connection.send_packed_command([data])
            else:
                # redis-py wraps each write in asyncio.wait_for when the client has a socket timeout, which
                # before Python 3.12 runs the write as a task of its own: two more turns of the event loop per
                # call. A write below the transport's high-water mark never waits, so it goes to the transport.
                writer.write(data)
            reply = await connection.read_response(disable_decoding=True)
        except SERVER_REPLY_ERRORS as error:
            # An error reply was read in full: the connection is sound, but during an outage (READONLY after a
            # failover) the server it leads to may no longer be the one to talk to; the pool's next one asks again.
            if server_errors.drops_connection(error):
                await self._drop(connection)
            raise
        except CONNECTION_ERRORS:
            await self._drop(connection)
            return False, None
        except BaseException:
            # Cancelled or interrupted mid-reply: what was left unread would answer the next call.
            await self._drop(connection)
            raise
        else:
            # As redis-py does after every command: the server may have announced maintenance (a move).
            if self._should_reconnect():
                await self._drop(connection)
            return True, reply
        finally:
            self._busy = False

    async def try_execute_all(
        self, commands: tuple[tuple[tuple[str, ...], tuple[Arg, ...]], ...]
    ) -> tuple[bool, list[Any]]:
        """As `try_execute`, for several commands sent back to back on the lane's one connection (a durable
        write's script call and its WAITs); every reply is read, an error reply returned in its place (not raised)."""
        if self._busy:
            return False, []
        self._busy = True
        connection = None
        try:
            connection = self._held.connection
            if connection is None or self._pid != os.getpid():
                connection = await self._connect()
            elif self._dropped:
                await connection.connect()  # as in `try_execute`
            self._dropped = False
            # Each call written as soon as it is framed (see sync/lane.py): the server runs it while the next is
            # framed. A transport write goes out at once unless data is waiting already.
            for index, (prefix, rest) in enumerate(commands):
                await connection.send_packed_command([self._framer.frame(prefix, rest)], check_health=index == 0)
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(await connection.read_response(disable_decoding=True))
                except SERVER_REPLY_ERRORS as error:
                    replies.append(error)
                    if isinstance(error, redis.exceptions.ConnectionError):
                        break  # redis-py closed the connection as it raised this reply: see `unread_replies`
            if len(replies) < len(commands):
                replies += unread_replies(len(commands) - len(replies))
                await self._drop(connection)
                return True, replies
            if any(server_errors.drops_connection(reply) for reply in replies if isinstance(reply, BaseException)):
                await self._drop(connection)  # as in `try_execute`
                return True, replies
        except CONNECTION_ERRORS:
            await self._drop(connection)
            return False, []
        except BaseException:
            await self._drop(connection)
            raise
        else:
            if self._should_reconnect():
                await self._drop(connection)
            return True, replies
        finally:
            self._busy = False

    async def _connect(self) -> Any:
        # First call, a dropped connection, or a fork (the parent's socket is left to the parent).
        self._held.connection, self._pid = None, os.getpid()
        for pool, orphan in HANDBACK.take():
            released = pool.release(orphan)
            if inspect.isawaitable(released):  # a coroutine in recent redis-py, a plain call before
                await released
        connection = await self._pool.get_connection()  # type: ignore[no-untyped-call]
        self._should_reconnect = getattr(connection, "should_reconnect", bool)
        self._held.connection = connection
        return connection

    async def _drop(self, connection: Any) -> None:
        if connection is None:
            return
        self._dropped = True
        with anyio.CancelScope(shield=True):
            await connection.disconnect(nowait=True)
