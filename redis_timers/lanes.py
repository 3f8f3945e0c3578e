"""What the two front ends' lanes (`sync/lane.py`, `aio/lane.py`) share: which clients get one,
and giving a dropped lane's connection back to its pool, outside the garbage collector.

A lane keeps one connection checked out of its client's pool. When
its `Timers` is garbage collected, that connection must go back to the pool, or an
application that makes a `Timers` per request would drain the pool one connection at a
time. The collector may run while the pool's own (non-reentrant) lock is held, so the
finalizer only queues the connection here; the next call on any lane of that front end
gives it back, outside every lock.
"""

from __future__ import annotations

import collections
import weakref
from typing import Any


def lane_pool(client: Any, blocking_pool_type: type) -> Any:
    """The pool a lane of `client` may keep a connection of, or None when it must not.

    Not a pool that may be small and must not lose a connection for good (`blocking_pool_type`), nor one
    with client-side caching, nor a single-connection client, nor a client without a pool (a cluster).
    """
    pool = getattr(client, "connection_pool", None)
    if (
        pool is None
        or getattr(client, "connection", None) is not None
        or getattr(client, "single_connection_client", False)
        or isinstance(pool, blocking_pool_type)
        or getattr(pool, "cache", None) is not None
    ):
        return None
    return pool


class Holder:
    """The connection a lane currently holds (None before its first call or after a fork)."""

    __slots__ = ("connection",)

    def __init__(self) -> None:
        self.connection: Any = None


class HandBack:
    def __init__(self) -> None:
        self.queue: collections.deque[tuple[Any, Any]] = collections.deque()  # (pool, connection)

    def watch(self, lane: object, pool: Any) -> Holder:
        """A holder for `lane`'s connection, queued with `pool` once `lane` is collected."""
        holder = Holder()
        weakref.finalize(lane, self._orphaned, pool, holder)
        return holder

    def _orphaned(self, pool: Any, holder: Holder) -> None:
        if holder.connection is not None:
            self.queue.append((pool, holder.connection))  # a deque append: safe in a finalizer

    def take(self) -> list[tuple[Any, Any]]:
        """Every queued (pool, connection); the caller gives each back with the pool's `release`."""
        taken = []
        while self.queue:
            taken.append(self.queue.popleft())
        return taken


def unread_replies(count: int) -> list[Any]:
    """What stands for the last `count` replies of several commands when the connection closed before they were read.

    redis-py files a few error replies (LOADING, a refused password) under connection errors and closes the
    connection as it raises them: the replies after one are lost with the connection, and reading on would fail
    on a closed socket. The error reply itself was read in full and stays the answer to its command, so a
    caller that raises the first failure (as `set_timers` and the worker do) raises that one. The commands
    whose replies are lost may have run: each is a connection error, which every caller treats as a call whose
    outcome is unknown (every script is safe to send twice).
    """
    return [ConnectionError("the connection closed after an earlier reply")] * count
