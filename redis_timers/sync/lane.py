"""One connection of the client's pool, kept for this `Timers`' script calls.

redis-py checks a connection out of its pool for every command: a lock, metrics, and a
non-blocking read (three system calls) to make sure nothing was left unread. For a call
as small as `set_timer` that costs about as much client time as sending the command and
reading its reply. The lane checks one connection out once and keeps it; a call takes it
when no other thread has it, and otherwise goes through the pool as usual, so threads
never wait on each other. The connection stays clean because any failure mid-call
disconnects it, as redis-py does; after a connection error (say the server closed the idle
connection) the call is made again through the pool, which checks the connection it hands
out, under the client's own retry policy. Every script is safe to send twice (see
docs/protocol.md, "Replays").

Pools that must not lose a connection for good (a `BlockingConnectionPool` may be small),
client-side caching, single-connection clients and cluster clients are not laned.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import redis
import redis.exceptions

from redis_timers import server_errors
from redis_timers.lanes import HandBack, lane_pool, unread_replies
from redis_timers.ops import Arg
from redis_timers.resp import CommandFramer

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
    def __init__(self, pool: redis.ConnectionPool) -> None:
        self._pool = pool
        self._lock = threading.Lock()
        self._held = HANDBACK.watch(self, pool)
        self._framer = CommandFramer()
        self._should_reconnect: Callable[[], bool] = bool
        self._pid = os.getpid()
        self._dropped = False

    @classmethod
    def for_client(cls, client: Any) -> Lane | None:
        """A lane for a plain client; None for any other (a cluster client has a pool per node, see `lane_pool`)."""
        pool = lane_pool(client, redis.BlockingConnectionPool)
        return None if pool is None else cls(pool)

    def try_execute(self, prefix: tuple[str, ...], rest: tuple[Arg, ...]) -> tuple[bool, Any]:
        """(True, reply to `*prefix, *rest`), or (False, None): another thread holds the lane, or the connection
        failed (it is dropped; the caller then goes through the pool, whose retry policy takes over).

        `prefix` is what repeats from call to call (see `resp.CommandFramer`).
        """
        if not self._lock.acquire(blocking=False):
            return False, None
        connection = None
        try:
            connection = self._take_connection()
            if self._dropped:
                # Connected again by `connect()` itself, not by the next command's implicit reconnect, which
                # skips what a subclass does there (a Sentinel-managed connection asks for the current primary).
                connection.connect()
                self._dropped = False
            connection.send_packed_command([self._framer.frame(prefix, rest)])
            reply = connection.read_response(disable_decoding=True)
        except SERVER_REPLY_ERRORS as error:
            # An error reply was read in full: the connection is sound, but during an outage (READONLY after a
            # failover) the server it leads to may no longer be the one to talk to; the pool's next one asks again.
            if server_errors.drops_connection(error):
                self._drop(connection)
            raise
        except CONNECTION_ERRORS:
            # Closed while idle (a server timeout, a restart) or failed mid-call: the pool checks the connection
            # it hands out, so the call is made again there.
            self._drop(connection)
            return False, None
        except BaseException:
            # Interrupted mid-reply: what was left unread would answer the next call.
            self._drop(connection)
            raise
        else:
            # As redis-py does after every command: the server may have announced maintenance (a move).
            if self._should_reconnect():
                self._drop(connection)
            return True, reply
        finally:
            self._lock.release()

    def try_execute_all(self, commands: tuple[tuple[tuple[str, ...], tuple[Arg, ...]], ...]) -> tuple[bool, list[Any]]:
        """As `try_execute`, for several commands sent back to back on the lane's one connection (a durable
        write's script call and its WAITs); every reply is read, an error reply returned in its place (not raised)."""
        if not self._lock.acquire(blocking=False):
            return False, []
        connection = None
        try:
            connection = self._take_connection()
            if self._dropped:
                connection.connect()  # as in `try_execute`
                self._dropped = False
            # Framed one by one as sent (`send_packed_command` writes each item as it gets it): the server runs a
            # call while the next is framed, which is most of a `set_timers` batch's client time. Framing cannot
            # fail part way for the callers' arguments (checked as UTF-8 strings, ints and bytes beforehand);
            # were it to, the connection is dropped below, as after any failure mid-call.
            connection.send_packed_command(self._framer.frame(prefix, rest) for prefix, rest in commands)
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(connection.read_response(disable_decoding=True))
                except SERVER_REPLY_ERRORS as error:
                    replies.append(error)
                    if isinstance(error, redis.exceptions.ConnectionError):
                        break  # redis-py closed the connection as it raised this reply: see `unread_replies`
            if len(replies) < len(commands):
                replies += unread_replies(len(commands) - len(replies))
                self._drop(connection)
                return True, replies
            if any(server_errors.drops_connection(reply) for reply in replies if isinstance(reply, BaseException)):
                self._drop(connection)  # as in `try_execute`
                return True, replies
        except CONNECTION_ERRORS:
            self._drop(connection)
            return False, []
        except BaseException:
            self._drop(connection)
            raise
        else:
            if self._should_reconnect():
                self._drop(connection)
            return True, replies
        finally:
            self._lock.release()

    def _take_connection(self) -> Any:
        if HANDBACK.queue:
            for pool, orphan in HANDBACK.take():
                pool.release(orphan)
        if self._pid != os.getpid():
            # Forked: the connection's socket is the parent's; leave it to the parent. (A lane that another
            # thread held at the fork stays locked in the child, whose calls then all use the pool.)
            self._held.connection, self._pid = None, os.getpid()
        if self._held.connection is None:
            self._held.connection = self._pool.get_connection()
            self._should_reconnect = getattr(self._held.connection, "should_reconnect", bool)
        return self._held.connection

    def _drop(self, connection: Any) -> None:
        if connection is not None:
            connection.disconnect()
            self._dropped = True
