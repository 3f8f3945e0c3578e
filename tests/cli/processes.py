"""`redis-timers` subprocesses whose output the tests wait on, line by line, with deadlines."""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
"""The repository root: the worker finds `tests.cli.app` from there, as an app's worker finds its modules."""


def cli_environment(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name != "REDIS_URL"}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class CliProcess:
    def __init__(self, args: list[str], *, env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "redis_timers.cli", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._ended = False

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, needle: str, timeout: float = 20.0) -> str:
        """The next output line containing `needle`; fails if the process ends or the deadline passes first."""
        deadline = time.monotonic() + timeout
        while not self._ended:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                self._ended = True
                break
            self.lines.append(line)
            if needle in line:
                return line
        state = "ended" if self._ended else f"still running after {timeout}s"
        raise AssertionError(f"no line containing {needle!r} (process {state}); output:\n{self.output}")

    def wait_exit(self, timeout: float = 30.0) -> int:
        """Wait for the process to end and collect the rest of its output; returns its exit code."""
        code = self.process.wait(timeout)
        self._reader.join(timeout)
        while not self._ended:
            line = self._queue.get(timeout=timeout)
            if line is None:
                self._ended = True
            else:
                self.lines.append(line)
        return code

    def index(self, needle: str) -> int:
        return next(i for i, line in enumerate(self.lines) if needle in line)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@dataclasses.dataclass(frozen=True)
class Finished:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.code == 0, self
        return json.loads(self.stdout)


def run_cli(*args: str, stdin: int | None = subprocess.DEVNULL, timeout: float = 60.0, **env: str) -> Finished:
    """Run `python -m redis_timers.cli ARGS...` to its end, stdin not a terminal unless given; stdout and stderr
    apart (stdout is what `--json` parses)."""
    done = subprocess.run(  # noqa: PLW1510 (the exit code is the result)
        [sys.executable, "-m", "redis_timers.cli", *args],
        cwd=ROOT,
        env=cli_environment(**env),
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Finished(done.returncode, done.stdout, done.stderr)
