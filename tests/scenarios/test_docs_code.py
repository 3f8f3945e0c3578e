"""Every Python code block of the README and of docs/*.md runs, each in a process of its own, on a real server.

A block runs as its page shows it (tests/docs_runner.py): its placeholder URLs point at the test's server (or the
local cluster), the page's module files (blocks that start with `# <name>.py`) can be imported, and an async
`timers` is in scope for a block that continues a page's set-up. `CHECKS` drives a block further as its users would
(a Flask test client posting to its views) and `READY` says when a block that runs a worker until interrupted has
done its part; the test then stops it with SIGINT. A block that fails, hangs, or runs a worker with no `READY`
entry fails its test: a new block must run as written.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.docs_runner import DONE, INTERRUPTED, RUN_FOREVER_STARTED
from tests.harness import wait_until

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SERVER_PLACEHOLDER = "redis://localhost:6379"
CLUSTER_PLACEHOLDER = "redis://node-1:6379"
MODULE_LINE = re.compile(r"^# (\w+)\.py\b")
BLOCK_SECONDS = 60.0
"""Longest a block may take to finish, or to start its worker."""
FRAMEWORKS = ("flask", "fastapi", "django")
"""Imported by some blocks; installed with the `examples` dependency group (not in the floors pass)."""
STOP_SECONDS = 30.0
"""Longest a worker may take to stop after SIGINT (the default shutdown grace is 10 s)."""


@dataclasses.dataclass(frozen=True)
class Block:
    page: Path
    line: int
    source: str

    @property
    def module(self) -> str | None:
        match = MODULE_LINE.match(self.source)
        return match.group(1) if match else None

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    found = []
    text = page.read_text(encoding="utf-8")
    for match in re.finditer(r"^```python\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE):
        found.append(Block(page, text.count("\n", 0, match.start()) + 2, match.group(1)))
    return found


BLOCKS = [block for page in DOCUMENTS for block in blocks_of(page)]

CHECKS: dict[str, str] = {
    # The Flask views of the README's quick start, as a browser or a client would use them.
    "# views.py": """
client = app.test_client()
assert client.post("/orders/7").get_json() == {"ok": True}
assert timers.get_timer("cancel_unpaid_order", "7") is not None
assert client.post("/orders/7/paid").get_json() == {"ok": True}
assert timers.get_timer("cancel_unpaid_order", "7") is None
""",
}
"""A text of a block -> code run after it, in its namespace."""

READY: dict[str, Callable[[redis.Redis], bool]] = {
    # The asyncio quick start schedules its timer, then runs its worker until it is stopped.
    'timer_id="unique_timer_id"': lambda client: (
        client.zscore("{timers}:timeline:my_topic", "unique_timer_id") is not None
    ),
}
"""A text of a block that runs a worker until interrupted -> when it has done what the page says it does."""


def test_the_documentation_has_python_blocks_in_the_readme_and_the_docs() -> None:
    pages = {block.page for block in BLOCKS}
    assert ROOT / "README.md" in pages
    assert any(page.parent.name == "docs" for page in pages)


@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_the_block_runs_as_written(
    block: Block, redis_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    for framework in FRAMEWORKS:
        imports = re.search(rf"^(from|import) {framework}\b", block.source, flags=re.MULTILINE)
        if imports and importlib.util.find_spec(framework) is None:
            pytest.skip(f"{framework} is not installed (the `examples` dependency group)")
    urls = {SERVER_PLACEHOLDER: redis_url}
    if CLUSTER_PLACEHOLDER in block.source:
        urls[CLUSTER_PLACEHOLDER] = request.getfixturevalue("cluster_url")

    def placed(source: str) -> str:
        for placeholder, url in urls.items():
            source = source.replace(placeholder, url)
        return source

    for sibling in blocks_of(block.page):
        if sibling.module:
            (tmp_path / f"{sibling.module}.py").write_text(placed(sibling.source), encoding="utf-8")
    spec = {
        "source": placed(block.source),
        "origin": str(block),
        "url": redis_url,
        "modules": str(tmp_path),
        "checks": [code for text, code in CHECKS.items() if text in block.source],
    }
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    ready = [check for text, check in READY.items() if text in block.source]

    process = subprocess.Popen(
        [sys.executable, "-m", "tests.docs_runner", str(spec_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []
    errors: list[str] = []

    def read_output() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            lines.put(line.strip())
        lines.put(DONE)  # end of output

    def read_errors() -> None:
        assert process.stderr is not None
        errors.extend(process.stderr)

    readers = [threading.Thread(target=read, daemon=True) for read in (read_output, read_errors)]
    for reader in readers:
        reader.start()
    client = redis.Redis.from_url(redis_url)
    try:
        interrupted = _follow(process, lines, ready, client, str(block))
        process.wait(timeout=STOP_SECONDS)
        for reader in readers:
            reader.join(timeout=STOP_SECONDS)
        said = f"{block}:\n{''.join(output)}\n{''.join(errors)}"
        assert process.returncode == 0, said
        assert (INTERRUPTED if interrupted else DONE) in "".join(output), said
        for check in ready:
            assert check(client), f"{block}: what it did is gone after it stopped"
    finally:
        if process.poll() is None:
            process.kill()
        client.close()


def _follow(
    process: subprocess.Popen[str],
    lines: queue.Queue[str],
    ready: list[Callable[[redis.Redis], bool]],
    client: redis.Redis,
    block: str,
) -> bool:
    """Wait for the block to end, or stop its worker once it has done its part; whether it was interrupted."""
    while True:
        try:
            line = lines.get(timeout=BLOCK_SECONDS)
        except queue.Empty:
            raise AssertionError(f"{block} neither ended nor started a worker within {BLOCK_SECONDS} s") from None
        if line == DONE:
            return False
        if line == RUN_FOREVER_STARTED:
            break
    if not ready:
        # A worker the block stops itself (a thread it joins): it ends on its own.
        try:
            process.wait(timeout=BLOCK_SECONDS)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{block} runs a worker until interrupted: give it a READY entry") from None
        return False
    wait_until(lambda: all(check(client) for check in ready), timeout=BLOCK_SECONDS)
    process.send_signal(signal.SIGINT)
    return True
