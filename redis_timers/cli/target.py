"""Finding the `Timers` instance that `redis-timers worker module:attribute` runs, and pointing it at a Redis URL."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import Any

from redis_timers.aio.timers import Timers as AsyncTimers
from redis_timers.cli import clients
from redis_timers.sync.timers import Timers as SyncTimers

AnyTimers = AsyncTimers | SyncTimers


class TargetError(Exception):
    """The `module:attribute` given on the command line does not lead to a `Timers` instance."""


def load_timers(target: str) -> AnyTimers:
    """Import `module:attribute` (attribute may be dotted) and return the `Timers` it is or makes."""
    module_name, colon, attribute = target.partition(":")
    if not colon or not module_name or not attribute:
        raise TargetError(f"{target!r} is not of the form module:attribute (for example myapp.tasks:timers)")
    # As `python -m` does: the app's own modules are found from the directory the worker starts in.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise TargetError(f"cannot import {module_name!r}: {error}") from None
        raise  # The app itself failed to import something: its traceback is the useful message.
    found: object = module
    for name in attribute.split("."):
        try:
            found = getattr(found, name)
        except AttributeError:
            raise TargetError(f"{module_name!r} has no attribute {attribute!r}") from None
    if isinstance(found, (AsyncTimers, SyncTimers)):
        return found
    if callable(found) and not isinstance(found, type):
        made = found()
        if inspect.isawaitable(made):
            if inspect.iscoroutine(made):
                made.close()
            raise TargetError(f"{target} is async; give a Timers instance or a plain function returning one")
        if isinstance(made, (AsyncTimers, SyncTimers)):
            return made
        raise TargetError(f"{target}() returned a {type(made).__name__}, not a redis_timers Timers")
    raise TargetError(
        f"{target} is a {type(found).__name__}; expected a redis_timers.Timers (async), a redis_timers.sync.Timers, "
        "or a function that returns one"
    )


def use_redis_url(timers: AnyTimers, url: str, *, cluster: bool = False) -> Any:
    """Point `timers` at a new client for `url` (with `cluster`, a cluster client of the cluster `url` is a node
    of), of the kind its front end drives; returns that client.

    The new client belongs to the caller, who closes it: the library never closes a client it was given.
    Must be called before `run_forever`.
    """
    if isinstance(timers, AsyncTimers):
        made_async = clients.async_client(url, cluster=cluster)
        timers.use_client(made_async)
        return made_async
    made_sync = clients.sync_client(url, cluster=cluster)
    timers.use_client(made_sync)
    return made_sync
