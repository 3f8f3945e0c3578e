"""Which error replies of a Redis server are outages to wait out, and which need someone to act.

Both drivers turn every error reply into one of the `TimersServerError` classes here, so a
caller never sees a raw client error, and the worker decides from the class alone whether
to back off and try again (`transient`) or to stop and say why.
"""

from __future__ import annotations

from redis_timers.errors import (
    TimersAuthenticationError,
    TimersConnectionError,
    TimersOutOfMemoryError,
    TimersPermissionError,
    TimersServerError,
    TimersUnavailableError,
)

OUTAGE_CODES = frozenset(
    {"READONLY", "BUSY", "LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "MOVED", "ASK", "NOREPLICAS", "MISCONF"}
)
"""States that pass on their own: a failover, another client's slow script, a restart, a resharding, a
snapshot that could not be saved (a full disk: Redis tries again, and takes writes once one succeeds).
MOVED and ASK reach the library only when a cluster client ran out of redirections (its slot map trails a
failover or a slot being moved), or when a durable write, sent to its node without them, met one (the slot
map is then read again): the shard's calls are retried once the cluster settles."""
ERROR_CLASSES: dict[str, type[TimersServerError]] = {
    **dict.fromkeys(OUTAGE_CODES, TimersUnavailableError),
    "OOM": TimersOutOfMemoryError,
    "NOPERM": TimersPermissionError,
    "WRONGPASS": TimersAuthenticationError,
    "NOAUTH": TimersAuthenticationError,
}

CODES_OF_CLIENT_ERRORS = {
    "ReadOnlyError": "READONLY",
    "BusyLoadingError": "LOADING",
    "OutOfMemoryError": "OOM",
    "NoPermissionError": "NOPERM",
    "AuthenticationError": "WRONGPASS",
    "MasterDownError": "MASTERDOWN",
    "TryAgainError": "TRYAGAIN",
    "ClusterDownError": "CLUSTERDOWN",
    "MovedError": "MOVED",
    "AskError": "ASK",
    "NoScriptError": "NOSCRIPT",
    "ExecAbortError": "EXECABORT",
    "ClusterCrossSlotError": "CROSSSLOT",
}
"""redis-py raises these classes (by name, most specific first in an error's MRO) for the error codes it
knows, and strips the code from the message; older versions keep no `status_code` to find it again."""


def error_class(reply: str) -> type[TimersServerError]:
    """The class of error an error reply (`"CODE message"`, as the server sent it) calls for."""
    return ERROR_CLASSES.get(reply.split(" ", 1)[0], TimersServerError)


def server_reply(error: BaseException) -> str:
    """The error reply behind a client's exception for it, code first as the server sent it."""
    message = str(error)
    code = getattr(error, "status_code", None)
    if not isinstance(code, str) or not code:
        names = [kind.__name__ for kind in type(error).__mro__]
        code = next((CODES_OF_CLIENT_ERRORS[name] for name in names if name in CODES_OF_CLIENT_ERRORS), None)
    if code is None or message.startswith(code + " ") or message == code:
        return message
    return f"{code} {message}"


def server_error(error: BaseException) -> TimersServerError:
    """The typed error for a client's exception about an error reply."""
    reply = server_reply(error)
    return error_class(reply)(reply)


def drops_connection(error: BaseException) -> bool:
    """Whether a connection that got this error reply should be dropped: during an outage the server at its
    other end may no longer be the one to talk to (a demoted primary), and a new connection asks again."""
    return issubclass(error_class(server_reply(error)), TimersUnavailableError)


NON_LOCAL_KEY = "Script attempted to access a non local key"
"""What a cluster node answers a script that names a key of a slot it does not serve: to a caller whose slot map
is stale, as MOVED would be (the probe names keys of several slots, so no MOVED comes; see `probe.py`)."""


def names_a_moved_key(error: BaseException) -> bool:
    """Whether an error (a client's, or the typed one made of it) is a node's answer that a key is not its own."""
    return NON_LOCAL_KEY in str(error)


def is_outage(error: BaseException) -> bool:
    """Whether a failed call to Redis is worth making again later: unreachable, or a state that passes."""
    return isinstance(error, TimersConnectionError) or (isinstance(error, TimersServerError) and error.transient)
