"""The `redis-timers` command: `demo`, `worker` and `bench`."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from redis_timers.cli.main import run

    return run(sys.argv[1:] if argv is None else argv)
