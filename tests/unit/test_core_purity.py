"""The core never talks to Redis, never uses anyio, never sleeps and never reads the clock."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

FRONT_END_AND_ENTRY_POINTS = {"__init__.py"}
"""The package __init__ imports the asyncio front end; aio/, sync/ and cli/ are subpackages, not core modules."""

FORBIDDEN_MODULES = {"redis", "anyio", "asyncio", "threading", "time", "socket", "concurrent", "selectors"}
CLOCK_READS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter", "sleep", "time_ns", "monotonic_ns"}


def package_dir() -> Path:
    spec = importlib.util.find_spec("redis_timers")
    assert spec is not None
    assert spec.submodule_search_locations is not None
    return Path(next(iter(spec.submodule_search_locations)))


def core_modules() -> list[Path]:
    return sorted(path for path in package_dir().glob("*.py") if path.name not in FRONT_END_AND_ENTRY_POINTS)


def test_the_core_is_what_the_design_says() -> None:
    names = {path.stem for path in core_modules()}

    assert {"engine", "flows", "ops", "keys", "timing", "validation", "settings", "retry", "registry"} <= names
    assert {"router", "codec", "records", "errors", "scripts"} <= names


def imported_modules(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def clock_calls(tree: ast.AST) -> list[str]:
    """Calls like `datetime.now()`, `datetime.datetime.utcnow()`, `date.today()`, `time.monotonic()`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CLOCK_READS:
            owner = ast.unparse(node.func.value)
            if owner.split(".")[-1] in {"datetime", "date", "time", "loop"}:
                found.append(ast.unparse(node.func))
    return found


@pytest.mark.parametrize("path", core_modules(), ids=lambda path: path.name)
def test_core_module_imports_no_io_and_reads_no_clock(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    imports = {name.split(".")[0] for name in imported_modules(tree)}
    assert imports.isdisjoint(FORBIDDEN_MODULES), imports & FORBIDDEN_MODULES
    assert not any(name.startswith(("redis_timers.aio", "redis_timers.sync")) for name in imported_modules(tree))
    assert clock_calls(tree) == []


def test_the_checks_catch_what_they_should() -> None:
    tree = ast.parse(
        "import time\nfrom redis.asyncio import Redis\nimport datetime\n"
        "datetime.datetime.now()\ntime.monotonic()\ndate.today()\n"
    )

    assert {name.split(".")[0] for name in imported_modules(tree)} == {"time", "redis", "datetime"}
    assert clock_calls(tree) == ["datetime.datetime.now", "time.monotonic", "date.today"]


IMPORT_CORE_ONLY = """
import importlib, importlib.util, json, sys
spec = importlib.util.find_spec("redis_timers")
# Register the package without running its __init__ (which imports the asyncio front end).
sys.modules["redis_timers"] = importlib.util.module_from_spec(spec)
for name in sys.argv[1:]:
    importlib.import_module("redis_timers." + name)
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & {"redis", "anyio", "asyncio"})))
"""


def test_importing_every_core_module_loads_neither_redis_nor_anyio() -> None:
    names = [path.stem for path in core_modules()]

    result = subprocess.run(
        [sys.executable, "-c", IMPORT_CORE_ONLY, *names], capture_output=True, text=True, check=True, timeout=60
    )

    assert json.loads(result.stdout) == []


def test_the_import_check_sees_a_front_end() -> None:
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_CORE_ONLY, "sync.driver"], capture_output=True, text=True, check=True, timeout=60
    )

    assert "redis" in json.loads(result.stdout)
