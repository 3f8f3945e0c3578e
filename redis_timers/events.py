"""Messages from handler threads/tasks and the notification listener to the worker loop.

Each is a closure over the engine, queued by whoever observed the event and applied by
the worker loop alone, so the engine is only ever touched from one thread or task.
"""

from __future__ import annotations

from collections.abc import Callable

Event = Callable[[float], None]
"""Called by the worker loop with its monotonic `now`."""

LISTEN_POLL_SECONDS = 0.25
"""How often a blocked listener looks up to see whether it should stop (no Redis traffic)."""


def pong_overdue(ping_sent_at: float | None, now: float, limit: float) -> bool:
    return ping_sent_at is not None and now - ping_sent_at >= limit


def ping_due(last_heard_at: float, ping_sent_at: float | None, now: float, interval: float) -> bool:
    return ping_sent_at is None and now - last_heard_at >= interval
