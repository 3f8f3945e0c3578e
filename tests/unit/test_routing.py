"""routing: which node a driver sends keyless commands and its notification connection to (no Redis)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from redis_timers.errors import UnsupportedClientError
from redis_timers.ops import Command, ScriptCall
from redis_timers.routing import check_client, keys_node, listener_node, node_groups, on_node, version_tuple
from redis_timers.scripts import SET_TIMER


@dataclasses.dataclass(frozen=True)
class Node:
    name: str
    server_type: str


class ClusterLike:
    """Answers `get_node_from_key` as a cluster client does, by the key it is given."""

    def __init__(self) -> None:
        self.asked: list[bytes] = []

    def get_node_from_key(self, key: bytes) -> str:
        self.asked.append(key)
        return f"node of {key.decode()}"


CALL = ScriptCall(SET_TIMER, ("{timers}:timeline:jobs", "{timers}:payloads:jobs"), ("a",))
WAIT = Command(("WAIT", 1, 100))


def test_a_cluster_clients_calls_go_to_the_node_of_the_first_script_calls_first_key() -> None:
    client = ClusterLike()
    node = keys_node(client, (CALL, WAIT))
    assert node == "node of {timers}:timeline:jobs"
    assert on_node(node) == {"target_nodes": node}
    assert client.asked == [b"{timers}:timeline:jobs"]


def test_a_plain_client_or_a_call_without_keys_is_left_as_it_is() -> None:
    assert keys_node(object(), (CALL, WAIT)) is None
    assert keys_node(ClusterLike(), (WAIT,)) is None
    assert on_node(None) == {}


def test_the_listener_starts_on_the_first_primary_by_name_and_moves_on_after_each_failure() -> None:
    nodes = [Node("b:2", "replica"), Node("c:3", "primary"), Node("a:1", "replica"), Node("b:1", "primary")]
    picked = [listener_node(nodes, failures).name for failures in range(5)]
    assert picked == ["b:1", "c:3", "a:1", "b:2", "b:1"]


class FakeClusterClient:
    """Only what `check_client` looks at: a cluster client locates the node of a key."""

    def get_node_from_key(self, key: bytes) -> None:
        return None


@pytest.mark.parametrize("version", ["5.3.0", "7.4.2", "8.0.1", "8.0"])
def test_a_cluster_client_of_an_older_redis_py_is_refused_saying_what_to_upgrade(version: str) -> None:
    with pytest.raises(UnsupportedClientError, match=r"redis-py 8\.1 or newer; this is redis-py " + re.escape(version)):
        check_client(FakeClusterClient(), version)


@pytest.mark.parametrize("version", ["8.1.0", "8.1", "9.0.0", "10.2.3rc1"])
def test_a_cluster_client_of_a_recent_redis_py_is_taken(version: str) -> None:
    check_client(FakeClusterClient(), version)


def test_a_plain_client_is_taken_on_every_redis_py() -> None:
    check_client(object(), "5.3.0")


def test_versions_compare_by_their_numbers() -> None:
    assert version_tuple("8.1.0") == (8, 1, 0)
    assert version_tuple("10.0") > version_tuple("8.1.0")
    assert version_tuple("8.1.0b1") == (8, 1)


def test_calls_are_grouped_by_the_name_of_their_node_in_order_of_first_appearance() -> None:
    a, b = Node("a:1", "primary"), Node("b:1", "primary")
    unlocated = ConnectionError("slot not covered")
    assert node_groups([b, a, b, unlocated, a]) == [[0, 2], [1, 4], [3]]


def test_the_calls_of_a_plain_client_are_one_group() -> None:
    assert node_groups([None, None, None]) == [[0, 1, 2]]
