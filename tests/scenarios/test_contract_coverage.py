"""The list of contract points in `tests/scenarios/conftest.py` names exactly the tests that run on the cluster,
and docs/operations.md says what that subset is.

No server: the marks are read from the test functions.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tests.scenarios
from tests.harness import CLUSTER_SHARDS, CLUSTER_VARIANTS
from tests.scenarios import conftest

LISTED = re.compile(r"^ {4}(test_\w+)::(test_\w+)$", re.MULTILINE)


def runs_on_the_cluster(test: Callable[..., Any]) -> bool:
    for mark in getattr(test, "pytestmark", []):
        if mark.name == "cluster":
            return True
        if mark.name == "parametrize" and mark.args[0] == "front" and tuple(mark.args[1]) == CLUSTER_VARIANTS:
            return True
    return False


def cluster_tests() -> set[str]:
    found = set()
    for module_info in pkgutil.iter_modules(tests.scenarios.__path__):
        if not module_info.name.startswith("test_"):
            continue
        module = importlib.import_module(f"tests.scenarios.{module_info.name}")
        for name, value in vars(module).items():
            if name.startswith("test_") and callable(value) and runs_on_the_cluster(value):
                found.add(f"{module_info.name}::{name}")
    return found


def test_every_listed_test_runs_on_the_cluster_and_every_one_that_does_is_listed() -> None:
    assert conftest.__doc__ is not None
    listed = {f"{module}::{name}" for module, name in LISTED.findall(conftest.__doc__)}
    assert listed, "no test listed"
    assert sorted(listed) == sorted(cluster_tests())


def test_the_operations_guide_says_what_runs_on_the_cluster() -> None:
    operations = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
    text = " ".join(operations.read_text(encoding="utf-8").split())
    assert "the test suite runs a subset of its scenarios that covers every point of the project's contract" in text
    assert f"on a local cluster of 3 primaries and 3 replicas, with the namespace in {CLUSTER_SHARDS} shards" in text
