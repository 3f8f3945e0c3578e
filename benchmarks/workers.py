"""Parent side of benchmarks/worker_process.py: start worker processes, drive their rounds, read their reports."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from benchmarks.common import BenchmarkError

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 90.0
EXIT_TIMEOUT = 15.0
PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""Where `python -m benchmarks.worker_process` finds the package (found at run time, never written down)."""


class WorkerProcess:
    def __init__(
        self,
        url: str,
        library_options: Mapping[str, float] | None = None,
        cluster_shards: int | None = None,
        freeze_gc: bool = True,
    ) -> None:
        """`cluster_shards`: `url` names a node of a Redis Cluster, and library rounds use that many shards.
        `freeze_gc`: the process freezes its start-up heap (`heap.freeze_heap`) before its first round."""
        self.library_options = dict(library_options or {})
        """Settings every library round runs with (e.g. LEGACY_IMPORT_OFF), under a round's own options."""
        cluster = [] if cluster_shards is None else ["--cluster", "--shards", str(cluster_shards)]
        freeze = ["--freeze-gc"] if freeze_gc else []
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker_process", "--url", url, *cluster, *freeze],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=PROJECT_ROOT,
            text=True,
            bufsize=1,
        )
        self.kind = "idle"
        self._lines: queue.Queue[str | None] = queue.Queue()
        assert self._process.stdout is not None
        threading.Thread(target=self._read, args=(self._process.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _expect(self, word: str, timeout: float) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise BenchmarkError(f"{self} sent no {word!r} within {timeout:.0f}s") from None
        if line is None or not line.startswith(word):
            raise BenchmarkError(f"{self} answered {line!r} instead of {word!r} (exit code {self._process.poll()})")
        return line[len(word) :].strip()

    def _send(self, line: str) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(line + "\n")
        self._process.stdin.flush()

    def wait_ready(self) -> None:
        self._expect("ready", READY_TIMEOUT)

    def go(
        self, front: str, impl: str, topic: str, *, records: bool = False, options: Mapping[str, float] | None = None
    ) -> None:
        """Start a round; `options`: TimersSettings fields for the library, `poll_sleep` (s) for the raw poller."""
        chosen = {**self.library_options, **(options or {})} if impl == "library" else dict(options or {})
        assignments = "".join(f" {name}={value!r}" for name, value in chosen.items())
        self.kind = f"{front} {impl}{assignments}"
        self._send(f"go {front} {impl} {topic} {int(records)}{assignments}")

    def stop(self) -> dict[str, Any]:
        self._send("stop")
        report: dict[str, Any] = json.loads(self._expect("stopped", STOP_TIMEOUT))
        return report

    def close(self) -> None:
        if self._process.poll() is None:
            try:
                self._send("exit")
                self._process.wait(EXIT_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait(EXIT_TIMEOUT)

    def __str__(self) -> str:
        return f"worker process {self._process.pid} ({self.kind})"


class WorkerPool:
    """`size` worker processes, started together and reused by every scenario and every kind of worker."""

    def __init__(
        self,
        url: str,
        size: int,
        library_options: Mapping[str, float] | None = None,
        cluster_shards: int | None = None,
        freeze_gc: bool = True,
    ) -> None:
        self.workers: list[WorkerProcess] = []
        try:
            self.workers = [WorkerProcess(url, library_options, cluster_shards, freeze_gc) for _ in range(size)]
            for worker in self.workers:
                worker.wait_ready()
        except BaseException:
            self.close()
            raise

    def take(self, count: int) -> list[WorkerProcess]:
        if count > len(self.workers):
            raise BenchmarkError(f"asked for {count} worker processes; the pool holds {len(self.workers)}")
        return self.workers[:count]

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
