"""Messages from handler threads/tasks and the notification listener to the worker loop.

Each is a closure over the engine, queued by whoever observed the event and applied by
the worker loop alone, so the engine is only ever touched from one thread or task. The
listener's decisions (what a pub/sub message means, when a quiet connection needs a PING,
when it counts as dead, how long to pause before reconnecting) live here, so that both
front ends only do the I/O.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from redis_timers import codec, server_errors
from redis_timers.errors import TimersServerError
from redis_timers.retry import cycle_failure_pause
from redis_timers.settings import TimersSettings

if TYPE_CHECKING:
    from redis_timers.engine import WorkerEngine

logger = logging.getLogger("redis_timers")

Event = Callable[[float], None]
"""Called by the worker loop with its monotonic `now`."""

LISTEN_POLL_SECONDS = 0.25
"""How often a blocked listener looks up to see whether it should stop (no Redis traffic)."""


def subscription(engine: WorkerEngine, encoder: Any = None) -> list[bytes]:
    """The channels a worker subscribes to, as the UTF-8 bytes the scripts publish on.

    As bytes, so that redis-py sends them as they are: a `str` would go out in the client's `encoding`,
    which for a non-ASCII topic under, say, latin-1 is another channel. `encoder` is the client's own
    (`pubsub.encoder`): a client with `decode_responses` decodes every channel it hears in its `encoding`, and
    one that cannot decode a channel's bytes and encode them back unchanged (a non-ASCII topic under `ascii`)
    would fail on each message of it; such channels are left out, with a warning, and their timers are found
    by the worker's safety claim instead (once per `TIMERS_SAFETY_WAKEUP_SECONDS`).
    """
    channels = [channel.encode("utf-8") for channel in engine.channels]
    if encoder is None:
        return channels
    heard = [channel for channel in channels if _survives(encoder, channel)]
    if len(heard) < len(channels):
        unheard = [codec.text(channel) for channel in channels if channel not in heard]
        logger.warning(
            "a client with decode_responses and encoding=%r cannot read the wake-ups of %s; their timers fire "
            "within the safety interval instead (use decode_responses=False or a UTF-8 encoding)",
            getattr(encoder, "encoding", None),
            ", ".join(repr(channel) for channel in unheard),
        )
    return heard


def _survives(encoder: Any, channel: bytes) -> bool:
    try:
        return bool(encoder.encode(encoder.decode(channel)) == channel)
    except UnicodeError:
        return False


def event_for_message(
    engine: WorkerEngine,
    message: Mapping[str, Any],
    encode: Callable[[Any], Any] | None = None,
    subscribed: int | None = None,
) -> Event | None:
    """The loop event a pub/sub message calls for, if any; `subscribed` channels were asked for (all by default).

    `encode` is the client's own encoder (`pubsub.encoder.encode`): a client with `decode_responses` has
    decoded the channel and data in its `encoding`; encoding them back gives the bytes that were published.
    """
    kind = codec.text(message["type"])
    if kind == "message":
        channel, data = message["channel"], message["data"]
        if encode is not None:
            channel, data = encode(channel), encode(data)
        return lambda now: engine.notified_on(channel, data)
    if kind == "subscribe" and message["data"] == (len(engine.channels) if subscribed is None else subscribed):
        # Subscribed to every topic: from now on nothing is missed; claim once for what came before.
        return lambda now: engine.rearm()
    return None


class ConnectionWatch:
    """Tells when a quiet notification connection needs a PING, and when a missing reply means it is dead.

    One PING per `interval` of silence is the only traffic of an idle worker.
    """

    def __init__(self, interval: float, now: float) -> None:
        self._interval = interval
        self._last_heard_at = now
        self._ping_sent_at: float | None = None

    def heard(self, now: float) -> None:
        self._last_heard_at, self._ping_sent_at = now, None

    def pinged(self, now: float) -> None:
        self._ping_sent_at = now

    def ping_due(self, now: float) -> bool:
        return self._ping_sent_at is None and now - self._last_heard_at >= self._interval

    def dead(self, now: float) -> bool:
        return self._ping_sent_at is not None and now - self._ping_sent_at >= self._interval

    def seconds_to_next_check(self, now: float) -> float:
        since = self._last_heard_at if self._ping_sent_at is None else self._ping_sent_at
        return max(0.0, since + self._interval - now)


def reconnect_pause(failures: int, error: BaseException, settings: TimersSettings, rng: random.Random) -> float:
    """How long a listener waits before reconnecting after its `failures`-th consecutive failure."""
    pause = cycle_failure_pause(failures, settings, rng)
    if failures == 1 and not server_errors.is_outage(error) and isinstance(error, TimersServerError):
        # Refused for good (an ACL without the wake-up channels): the worker still claims, but misses wake-ups.
        logger.error(
            "notification connection refused (%s): wake-ups are missed until this is fixed; retrying in %.2fs",
            error,
            pause,
        )
        return pause
    # The worker loop reports the outage itself; say it here once, not on every retry.
    log = logger.warning if failures == 1 else logger.debug
    log("notification connection lost (%s); reconnecting in %.2fs", error, pause)
    return pause
