"""Giving a dropped lane's connection back to its pool, outside the garbage collector.

A lane (see `sync/lane.py`) keeps one connection checked out of its client's pool. When
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
