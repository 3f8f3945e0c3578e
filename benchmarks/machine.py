"""The machine and server a run measured, for the report."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import redis


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_count() -> int:
    """What `nproc` prints: the CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 0


MEASURED_PATHS = ("redis_timers", "benchmarks")
"""The code a run measures: the library and the benchmark itself."""
ROOT = Path(__file__).resolve().parent.parent


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()


def library_revision(root: Path = ROOT) -> str:
    """The commit measured, marked DIRTY when the measured paths differ from it (edited, staged or new files)."""
    try:
        commit = _git(root, "rev-parse", "--short", "HEAD")
        changed = _git(root, "status", "--porcelain", "--untracked-files=all", "--", *MEASURED_PATHS)
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    if changed:
        paths = "/ or ".join(MEASURED_PATHS)
        return f"{commit} DIRTY (uncommitted changes to {paths}/: these figures are not that commit's)"
    return commit


def describe(client: redis.Redis) -> dict[str, Any]:
    server = client.info("server")
    name = str(server.get("server_name", "redis"))
    version = str(server.get(f"{name}_version", server.get("redis_version", "?")))
    return {
        "nproc": cpu_count(),
        "cpu": cpu_model(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "redis_py": redis.__version__,
        "server": f"{name} {version}",
        "os": platform.platform(),
        "library": library_revision(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
