"""The `redis-timers` command: `demo`, `worker` and `bench`."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the command; the exit code is returned, or the process ends if threads would outlive it."""
    from redis_timers.cli.main import run
    from redis_timers.cli.process import end_process

    try:
        code = run(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        code = 130  # Ctrl-C before a command set up its own handling (say, while the app was imported)
    return end_process(code)
