"""Every error the library raises on purpose derives from `TimersError`.

Errors about bad input also derive from the matching built-in (`ValueError`,
`TypeError`), and the seed's "Handler is not found" stays a `RuntimeError`, so
code written against either keeps catching what it caught before.
"""

from __future__ import annotations

from typing import ClassVar


class TimersError(Exception):
    """Base class of every error raised by redis-timers."""


class HandlerNotFoundError(TimersError, RuntimeError):
    """No handler is registered for the topic."""

    def __init__(self, topic: str) -> None:
        super().__init__(f"Handler is not found, topic={topic!r}")
        self.topic = topic


class InvalidTimerError(TimersError, ValueError):
    """A timer request is malformed; nothing was written."""


class InvalidTimerIdError(InvalidTimerError):
    """The timer id is empty, too long or not a string."""


class InvalidTopicError(InvalidTimerError):
    """The topic can never name a handler: empty, not printable, too long, or containing the separator."""


class NaiveDatetimeError(InvalidTimerError):
    """A datetime without a timezone was given where an instant is needed."""


class ActivationError(InvalidTimerError):
    """Exactly one of `activation_period` and `activate_at` must be given, and it must be valid."""


class SetModeError(InvalidTimerError):
    """`mode` is not one of "replace", "keep", "earlier" and "later"."""


class InspectionArgumentError(TimersError, ValueError):
    """An inspection call (`list_timers`, `stats`, ...) got an argument it can't use: a `limit` out of range, a
    due window that is not one, a histogram's `window` or `buckets`."""


class InvalidCursorError(InspectionArgumentError):
    """A `cursor=` that no page of this same call (same method, topic and window) returned."""


class PayloadTypeError(TimersError, TypeError):
    """The payload is not an instance of the topic's schema."""


class UnstorablePayloadError(PayloadTypeError):
    """The payload is of the topic's schema, but its handler could never receive it.

    Its JSON could not be made (a field holding an object pydantic can't serialize, a serializer
    that raises), or does not validate back into the schema (a validator refuses it or raises).
    """


class HandlerRegistrationError(TimersError, ValueError):
    """A handler cannot be registered: bad topic, duplicate topic, or a function this front end can't run."""


class SettingsError(TimersError, ValueError):
    """A setting (or the environment variable behind it) has an invalid value."""


class ShardLayoutError(SettingsError):
    """This process's shard count (`TIMERS_SHARDS`) is not the one its namespace holds timers under.

    A timer's shard is a function of the count, so a process with another count would look for timers in
    shards that do not hold them; it refuses to run instead (see `layout.check_layout`).
    """


class StoredPayloadError(TimersError, ValueError):
    """What Redis holds can't be read back: a stored payload no longer validates against its topic's schema,
    a due time written by hand is no date, or a dead letter's record is not one this library writes."""


class UnsupportedClientError(TimersError, TypeError):
    """The Redis client given to `Timers` is of a kind this library cannot drive with the installed redis-py."""


class TimersConnectionError(TimersError, ConnectionError):
    """Redis could not be reached; the operation may not have been applied."""


class ReplacedFeatureError(TimersError, RuntimeError):
    """A part of the original redis-timers that has no working equivalent here; the message names what replaces it."""


STOP_REQUESTS = (KeyboardInterrupt, SystemExit)
"""What a signal handler raises (Ctrl-C, or `sys.exit` in a SIGTERM handler) in whatever code the thread runs.

Never blamed on the payload being validated at that moment, so never turned into a library error or a dead
letter: they propagate. A validator that raises one itself stops its worker; the timer is claimed again once
its lease ends, and dead-lettered once claimed more often than its attempts.
"""


class TimersServerError(TimersError):
    """Redis answered the call with an error reply.

    `code` is the reply's first word (`WRONGTYPE`, `ERR`, ...), `reply` the whole of it. This
    base class is for the permanent ones: retrying cannot help until someone fixes the server,
    its data or its configuration.
    """

    transient: ClassVar[bool] = False
    """Whether the state passes on its own, so that a worker backs off and tries again."""
    summary: ClassVar[str] = "Redis answered with an error"

    def __init__(self, reply: str) -> None:
        super().__init__(f"{self.summary}: {reply}")
        self.reply = reply
        self.code = reply.split(" ", 1)[0]


class TimersUnavailableError(TimersServerError):
    """Redis cannot serve the call for now: a failover demoted it (READONLY), another client's script runs
    (BUSY), it is loading its data (LOADING), its primary is gone (MASTERDOWN), the cluster is down or
    resharding (CLUSTERDOWN, TRYAGAIN), too few replicas are up (NOREPLICAS), or it could not save its
    snapshot and refuses writes until it can (MISCONF). Try again later."""

    transient = True


class TimersOutOfMemoryError(TimersServerError):
    """Redis reached `maxmemory` and refuses writes (OOM) until memory is freed or the limit raised."""

    transient = True


class TimersPermissionError(TimersServerError):
    """The Redis ACL user may not run a command or touch a key or channel the library needs (NOPERM)."""


class TimersAuthenticationError(TimersServerError):
    """Redis rejected the client's credentials (WRONGPASS, NOAUTH): a wrong password or user, or none."""

    summary = "Redis authentication failed"


class TimersDurabilityError(TimersError):
    """A `durable=True` write was applied on the primary, but fewer replicas than asked confirmed they received
    it before the timeout (`WAIT`). The write stands, and making the same call again is safe.

    `acknowledged` is how many replicas confirmed it, `required` how many were asked for.
    """

    def __init__(self, acknowledged: int, required: int, timeout_seconds: float, *, fsync: bool = False) -> None:
        if fsync:
            what = f"{acknowledged} of the {required} replica(s) asked for (and the primary) wrote it to their AOF"
        else:
            what = f"{acknowledged} of the {required} replica(s) asked for confirmed it"
        super().__init__(
            f"the write was applied on the primary, but {what} within {timeout_seconds:g} s; it stands, and "
            "calling again is safe"
        )
        self.acknowledged = acknowledged
        self.required = required
        self.fsync = fsync
        """Whether it was the append-only files' sync (`TIMERS_DURABLE_FSYNC`) that was not confirmed in time."""


REDIS_FAILURES = (TimersConnectionError, TimersServerError)
"""What a call to Redis raises when Redis, not the caller's input, is the trouble."""
