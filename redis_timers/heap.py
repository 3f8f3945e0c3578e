"""Keeping the garbage collector's full passes off a worker's timers (`TIMERS_FREEZE_GC`).

CPython's full (oldest-generation) collection walks every container object the process holds and
holds the GIL throughout: in a process that has imported redis-py and pydantic it takes tens of
milliseconds (the benchmark's drain rows count and time them), and a timer due meanwhile is that late,
in either front end. Almost all of those objects live as long as the process (modules, classes, functions), so they
can be moved out of the collector's reach once, when the worker starts: later full passes then walk
only what was made after, which in a worker is little.
"""

from __future__ import annotations

import gc


def freeze_heap() -> None:
    """Collect once, then exempt every object alive now from all later collections (`gc.freeze`).

    The collection comes first so that no garbage of start-up is frozen with the rest (frozen
    objects are still freed when their last reference goes, but no longer when they only refer to
    each other). The freeze is the process's, not this worker's: it outlives the worker, as
    `gc.freeze` does for any caller.
    """
    gc.collect()
    gc.freeze()
