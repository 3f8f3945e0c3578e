"""One connection of the client's pool, kept for this `Timers`' script calls.

redis-py checks a connection out of its pool for every command: a lock, metrics, and a
non-blocking read (three system calls) to make sure nothing was left unread. For a call
as small as `set_timer` that costs about as much client time as sending the command and
reading its reply. The lane checks one connection out once and keeps it; a call takes it
when no other thread has it, and otherwise goes through the pool as usual, so threads
never wait on each other. The connection stays clean because any failure mid-call
disconnects it (the next call reconnects), exactly as redis-py does.

Pools that must not lose a connection for good (a `BlockingConnectionPool` may be small),
client-side caching, single-connection clients and cluster clients are not laned.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis
import redis.exceptions

from redis_timers.ops import Arg
from redis_timers.resp import CommandFramer


class Lane:
    def __init__(self, pool: redis.ConnectionPool) -> None:
        self._pool = pool
        self._lock = threading.Lock()
        self._connection: Any = None
        self._framer = CommandFramer()
        self._pid = os.getpid()

    @classmethod
    def for_client(cls, client: redis.Redis) -> Lane | None:
        pool = getattr(client, "connection_pool", None)
        if (
            pool is None
            or getattr(client, "connection", None) is not None
            or isinstance(pool, redis.BlockingConnectionPool)
            or getattr(pool, "cache", None) is not None
        ):
            return None
        return cls(pool)

    def try_execute(self, prefix: tuple[Arg, ...], rest: tuple[Arg, ...], *, raw_reply: bool) -> tuple[bool, Any]:
        """(True, reply to `*prefix, *rest`), or (False, None) when another thread holds the lane: use the pool then.

        `prefix` is what repeats from call to call (see `resp.CommandFramer`).
        """
        if not self._lock.acquire(blocking=False):
            return False, None
        try:
            connection = self._take_connection()
            packed = [self._framer.frame(prefix, rest)]
            try:
                return True, connection.retry.call_with_retry(
                    lambda: self._send(connection, packed, raw_reply),
                    lambda error: connection.disconnect(),
                )
            finally:
                # As redis-py does after every command: the server may have announced maintenance (a move).
                if getattr(connection, "should_reconnect", bool)():
                    connection.disconnect()
        finally:
            self._lock.release()

    def _take_connection(self) -> Any:
        if self._pid != os.getpid():
            # Forked: the connection's socket is the parent's; leave it to the parent. (A lane that another
            # thread held at the fork stays locked in the child, whose calls then all use the pool.)
            self._connection, self._pid = None, os.getpid()
        if self._connection is None:
            self._connection = self._pool.get_connection()
            encoder = self._connection.encoder
            self._framer = CommandFramer(encoder.encoding, encoder.encoding_errors)
        return self._connection

    @staticmethod
    def _send(connection: Any, packed: list[bytes], raw_reply: bool) -> Any:
        try:
            connection.send_packed_command(packed)
            return connection.read_response(disable_decoding=raw_reply)
        except redis.exceptions.ResponseError:
            raise  # an error reply was read in full: the connection is fine
        except BaseException:
            # Failed or interrupted mid-reply: what was left unread would answer the next call.
            connection.disconnect()
            raise
