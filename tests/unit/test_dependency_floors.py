"""What the README and docs/operations.md say about supported versions, protocols and the original's test
suite matches pyproject.toml and what CI runs (.ci/run, .ci/seed_suite.py)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def read(relative: str) -> str:
    return (ROOT / relative).read_text(encoding="utf-8")


def declared_floors() -> dict[str, str]:
    """The runtime dependencies' floors, as the installed project's metadata (built from pyproject.toml) has them."""
    floors: dict[str, str] = {}
    for requirement in importlib.metadata.requires("redis-timers") or []:
        match = re.fullmatch(r"([a-z]+)>=([0-9.]+)", requirement)
        if match is not None:  # the optional extras carry a marker
            floors[match.group(1)] = match.group(2)
    return floors


def load_ci_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"ci_{name}", ROOT / ".ci" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shorten(version: str) -> str:
    """5.3.0 -> 5.3: how the docs write a floor."""
    return ".".join(version.split(".")[:2])


def test_the_readme_and_operations_name_the_declared_floors() -> None:
    floors = declared_floors()
    assert set(floors) == {"redis", "pydantic", "anyio"}
    readme = " ".join(read("README.md").split())
    operations = " ".join(read("docs/operations.md").split())
    for name, label in (("redis", "redis-py"), ("pydantic", "pydantic"), ("anyio", "anyio")):
        assert f"{label} {shorten(floors[name])}+" in readme
        assert f"{label} {shorten(floors[name])}" in operations


def test_ci_tests_the_floors_and_the_scenarios_over_resp2() -> None:
    ci = read(".ci/run")
    assert "--resolution lowest-direct" in ci
    assert "check_floors.py" in ci
    # The cluster tests over RESP2: in the locked Python 3.10 pass (the floors' redis-py has no cluster clients).
    assert '"3.10:2:tests -k cluster"' in ci
    assert "TIMERS_TEST_PROTOCOL=$protocol" in ci
    assert "seed_suite.py" in ci


def test_check_floors_reads_every_declared_floor() -> None:
    check_floors = load_ci_module("check_floors")
    assert check_floors.declared_floors(ROOT / "pyproject.toml") == declared_floors()
    assert check_floors.same_version("5.3.0", "5.3")
    assert not check_floors.same_version("5.3.1", "5.3")


def test_the_docs_list_exactly_the_original_tests_left_out_in_ci() -> None:
    known = load_ci_module("seed_suite").KNOWN_DIFFERENCES
    names = {node_id.rsplit("::", 1)[1] for node_id in known}
    section = read("docs/upgrading.md")
    listed = set(re.findall(r"`(test_[a-z_]+)`", section))

    assert listed == names
    assert f"except these {['zero', 'one', 'two', 'three', 'four', 'five', 'six'][len(names)]}" in section


def test_a_client_of_redis_py_before_8_speaks_resp2_by_default() -> None:
    """The floors pass (redis-py 5.3) is what runs every non-cluster scenario over RESP2 (docs/operations.md)."""
    import redis

    if int(redis.__version__.split(".")[0]) >= 8:
        pytest.skip("redis-py 8 speaks RESP3 by default; this checks the floors pass's client")
    client = redis.Redis()
    assert client.connection_pool.connection_kwargs.get("protocol", 2) in (2, "2")
