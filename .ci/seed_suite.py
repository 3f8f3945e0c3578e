"""Run the original redis-timers' own test suite against this library.

Usage: python .ci/seed_suite.py DIR, where DIR holds the original's `tests/` (an extracted sdist, or a
checkout). The tests are copied to a scratch directory (so that this repository's own `tests` package
cannot shadow them), a server is started on a free loopback port, and pytest runs them with REDIS_URL
pointing at it. Needs pytest-asyncio (`uv run --with pytest-asyncio`), which the original's tests use.

The original's fixture empties only its own two keys before each test, and this library keeps timers
under keys of its own, so a `conftest.py` beside the copy empties the server's database before each
test instead: no test sees timers another left behind.

The tests in `KNOWN_DIFFERENCES` are deselected: they check what this library deliberately does
differently. docs/upgrading.md ("Upgrading from the original redis-timers") lists the same tests, and a unit
test keeps the two lists equal.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

KNOWN_DIFFERENCES: dict[str, str] = {
    "tests/test_timers.py::test_handle_ready_timers_with_zero_limit": (
        "assigns settings.TIMERS_CONCURRENT_PROCESSING_LIMIT = 0, which is refused with SettingsError: "
        "a worker that may run no handler could never make progress"
    ),
    "tests/test_timers.py::test_handle_ready_timer_no_handler": (
        "deletes from handlers_by_topics, which is read-only, and expects a timer with no handler to be "
        "claimed and logged; here it is left for a worker that has its handler"
    ),
    "tests/test_timers.py::test_handle_ready_timer_no_payload": (
        "deletes the payload from the original's payloads hash by hand; this library keeps its timers in per-topic keys"
    ),
    "tests/test_timers.py::test_handle_ready_timer_invalid_payload": (
        "writes a payload into the original's payloads hash by hand; this library keeps its timers in "
        "per-topic keys (an invalid stored payload goes to dead letters)"
    ),
    "tests/test_timers.py::test_handle_ready_timer_locked": (
        "takes consume_lock() by hand, which raises ReplacedFeatureError: a claim takes a lease instead"
    ),
}
"""The original's tests that do not pass here, by pytest node id, with the reason."""


ISOLATION = """
import os

import pytest
import redis


@pytest.fixture(autouse=True)
def _empty_database() -> None:
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        client.flushdb()
    finally:
        client.close()
"""


def main(source: Path) -> int:
    tests = source / "tests"
    if not (tests / "test_timers.py").is_file():
        print(f"no test_timers.py in {tests}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from redis_timers.cli.embedded import EmbeddedServer

    with tempfile.TemporaryDirectory(prefix="seed-suite-") as scratch, EmbeddedServer() as server:
        shutil.copytree(tests, Path(scratch) / "tests")
        (Path(scratch) / "conftest.py").write_text(ISOLATION, encoding="utf-8")
        command = [sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"]
        command += ["-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function"]
        for node_id in KNOWN_DIFFERENCES:
            command += ["--deselect", node_id]
        environment = {**os.environ, "REDIS_URL": server.url}
        return subprocess.call(command, cwd=scratch, env=environment)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1])))
