"""`redis-timers bench ...`: the project's benchmark, which lives in the source repository, not in the wheel."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

HOW_TO_RUN = """\
redis-timers bench: the benchmark is not installed with the package; it lives in the `benchmarks/`
directory of the redis-timers source repository. From the root of a checkout, run:

    uv sync
    uv run redis-timers bench --help      (or: uv run python -m benchmarks --help)
"""


def benchmarks_available() -> bool:
    # `python -m benchmarks` finds the package from the current directory, so look there too.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.util.find_spec("benchmarks") is not None
    except (ImportError, ValueError):
        return False


def run_bench(args: list[str]) -> int:
    if not benchmarks_available():
        print(HOW_TO_RUN, file=sys.stderr, end="")
        return 2
    process = subprocess.Popen([sys.executable, "-m", "benchmarks", *args])
    try:
        return process.wait()
    except KeyboardInterrupt:
        # The benchmark got the same Ctrl-C (same process group): let it finish its own clean-up.
        return process.wait()
