"""Ending the process: the command owns it, so it may end it without waiting for threads the library let go.

The library never does this: after its grace period it hands the leases of unfinished handlers back and
returns, but a plain `def` handler on the async front end keeps running in one of anyio's worker threads,
which are not daemons, so the interpreter would wait for it at exit while another worker runs the same
timer. The `redis-timers` command, once the library has returned, ends the process instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from typing import NoReturn

logger = logging.getLogger("redis_timers.cli")

LINGER_SECONDS = 1.0
"""How long threads still alive at the end get to finish (idle pool threads stop at once) before exit."""


def flush_output() -> None:
    """Write out what logging and stdio hold; safe from a signal handler that interrupted a write."""
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def exit_now(code: int) -> NoReturn:
    """End the process at once with `code`: no waiting for threads, no exit hooks."""
    flush_output()
    os._exit(code)


def end_process(code: int) -> int:
    """Return `code` for a normal exit, or end the process now if other threads would keep it alive."""
    deadline = time.monotonic() + LINGER_SECONDS
    lingering = []
    for thread in threading.enumerate():
        if thread is threading.current_thread() or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            lingering.append(thread.name)
    if not lingering:
        return code
    logger.warning(
        "%d thread(s) still running (%s), most likely handlers whose timers were handed back at shutdown: "
        "exiting without waiting for them",
        len(lingering),
        ", ".join(lingering),
    )
    exit_now(code)
