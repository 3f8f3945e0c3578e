"""The `front` fixture: each scenario runs through both front ends over one server, and a test marked
`@pytest.mark.cluster` also through both over cluster clients of the session's local cluster (3 primaries,
3 replicas), its namespace split into `CLUSTER_SHARDS` shards (ids `sync-cluster`, `async-cluster`).

The marked tests are the contract subset: together they show every point of the contract on a cluster
(which test shows which point: `CONTRACT_ON_A_CLUSTER` in `tests/scenarios/test_contract_coverage.py`).
Tests that need "the" server (restart it, DEBUG, CLIENT PAUSE, a replica of one server) stay unmarked.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import CLUSTER_SHARDS, CLUSTER_VARIANTS, FRONT_KINDS, Front, FrontKind


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize `front` (through `front_variant`): both front ends, and their cluster variants for a marked test.

    A test that names its front ends itself (`parametrize("front", [...], indirect=True)`) keeps its choice,
    and a module with a `front` fixture of its own is left alone (its fixture does not use `front_variant`).
    """
    if "front_variant" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0]
        if "front" in (names.replace(" ", "").split(",") if isinstance(names, str) else names):
            return
    variants: list[str] = list(FRONT_KINDS)
    if metafunc.definition.get_closest_marker("cluster") is not None:
        variants.extend(CLUSTER_VARIANTS)
    metafunc.parametrize("front_variant", variants)


@pytest.fixture
def front_variant(request: pytest.FixtureRequest) -> str:
    """`sync`, `async`, `sync-cluster` or `async-cluster` (empty when the test parametrizes `front` itself)."""
    return str(getattr(request, "param", ""))


@pytest.fixture
def front(request: pytest.FixtureRequest, front_variant: str) -> Iterator[Front]:
    """The front end under test, over a clean keyspace (of one server, or of every primary of the cluster);
    everything it built is closed afterwards."""
    variant: str = getattr(request, "param", front_variant)
    kind_name, _, where = variant.partition("-")
    kind: FrontKind = "sync" if kind_name == "sync" else "async"
    if where == "cluster":
        harness_front = Front(kind, request.getfixturevalue("cluster_url"), cluster=True, shards=CLUSTER_SHARDS)
    else:
        harness_front = Front(kind, request.getfixturevalue("redis_url"))
    try:
        yield harness_front
    finally:
        harness_front.close()


@pytest.fixture(params=FRONT_KINDS)
def cluster_front(request: pytest.FixtureRequest, cluster_url: str) -> Iterator[Front]:
    """The front end under test over cluster clients of the local cluster (emptied for each test)."""
    kind: FrontKind = request.param
    harness_front = Front(kind, cluster_url, cluster=True)
    try:
        yield harness_front
    finally:
        harness_front.close()
