"""Runs one Python code block of the documentation in a process of its own (tests/scenarios/test_docs_code.py).

`python -m tests.docs_runner <spec.json>`, where the spec gives the block's source, where it comes from, the
server URL the block's placeholder URLs stand for (already substituted), the folder of the page's module files
(the blocks that start with `# <name>.py`) and any checks to run after the block in the same namespace.

The block runs as a page's reader would run it, with top-level `await` allowed (on one event loop, which the
checks share) and an async `timers` on the test server already in scope for the blocks that continue a page's
earlier set-up. `run_forever` prints a line first, so the test knows a worker is running; a block that runs a
worker until it is interrupted ends with the test's SIGINT, which is reported, not raised.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import sys
from typing import Any

import redis.asyncio

from redis_timers.aio.timers import Timers as AsyncTimers
from redis_timers.sync.timers import Timers as SyncTimers

RUN_FOREVER_STARTED = "docs-runner: run_forever started"
INTERRUPTED = "docs-runner: interrupted"
DONE = "docs-runner: done"


def announce_run_forever() -> None:
    for timers_class in (AsyncTimers, SyncTimers):
        original = timers_class.run_forever

        def announced(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            print(RUN_FOREVER_STARTED, flush=True)
            return __original(self, *args, **kwargs)

        timers_class.run_forever = announced  # type: ignore[method-assign]


def run(source: str, origin: str, namespace: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
    code = compile(source, origin, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if code.co_flags & inspect.CO_COROUTINE:
        loop.run_until_complete(eval(code, namespace))  # noqa: S307 - the documentation's own code
    else:
        exec(code, namespace)  # noqa: S102 - the documentation's own code


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as file:
        spec = json.load(file)
    sys.path.insert(0, spec["modules"])
    announce_run_forever()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    namespace: dict[str, Any] = {
        "__name__": "__main__",
        "timers": AsyncTimers(redis_client=redis.asyncio.Redis.from_url(spec["url"])),
    }
    try:
        run(spec["source"], spec["origin"], namespace, loop)
    except KeyboardInterrupt:
        print(INTERRUPTED, flush=True)
        return
    for check in spec["checks"]:
        run(check, f"check of {spec['origin']}", namespace, loop)
    print(DONE, flush=True)


if __name__ == "__main__":
    main()
