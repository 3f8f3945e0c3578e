from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import FRONT_KINDS, Front, FrontKind


@pytest.fixture(params=FRONT_KINDS)
def front(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Front]:
    """The front end under test, over a clean keyspace; everything it built is closed afterwards."""
    kind: FrontKind = request.param
    harness_front = Front(kind, redis_url)
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
