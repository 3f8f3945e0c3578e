"""Every error the library raises on purpose derives from `TimersError`.

Errors about bad input also derive from the matching built-in (`ValueError`,
`TypeError`), and the seed's "Handler is not found" stays a `RuntimeError`, so
code written against either keeps catching what it caught before.
"""

from __future__ import annotations


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


class StoredPayloadError(TimersError, ValueError):
    """A stored payload no longer validates against its topic's schema."""


class TimersConnectionError(TimersError, ConnectionError):
    """Redis could not be reached; the operation may not have been applied."""


STOP_REQUESTS = (KeyboardInterrupt, SystemExit)
"""What a signal handler raises (Ctrl-C, or `sys.exit` in a SIGTERM handler) in whatever code the thread runs.

Never blamed on the payload being validated at that moment, so never turned into a library error or a dead
letter: they propagate. A validator that raises one itself stops its worker; the timer is claimed again once
its lease ends, and dead-lettered once claimed more often than its attempts.
"""
