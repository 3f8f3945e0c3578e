"""The original library's `consume_lock` and `timer_lock`, kept as names that say what replaces them.

In the original library `consume_lock(redis_client, key)` returned a redis-py `Lock` on
`consume-lock--<topic--id>` (30 s, non-blocking) that its worker took around each handler, so
that two workers would not run one timer at once. Here no such lock exists: a worker claims a
timer by moving its score to the end of a lease, inside the same Lua call that finds it due,
and renews the lease while the handler runs. A lock taken by hand under the old key would be
ignored by every worker, so instead of returning one that protects nothing, both names raise.
(`timer_lock` was listed in the first release's `__all__`, but that release never defined it.)
"""

from __future__ import annotations

from typing import Any, NoReturn

from redis_timers.errors import ReplacedFeatureError

REPLACEMENT = (
    "workers no longer take a lock per timer: a claim gives the worker a lease on the timer, in the same "
    "Lua call that finds it due, renewed while its handler runs, so no other worker runs it meanwhile "
    "(see 'Leases and tokens' in the README). To keep a timer from firing, remove_timer() it or set_timer() "
    "it later; get_timer() tells whether a handler runs it now (TimerInfo.running)"
)


def consume_lock(*args: Any, **kwargs: Any) -> NoReturn:
    raise ReplacedFeatureError(f"consume_lock() is gone: {REPLACEMENT}")


def timer_lock(*args: Any, **kwargs: Any) -> NoReturn:
    raise ReplacedFeatureError(f"timer_lock() is gone: {REPLACEMENT}")
