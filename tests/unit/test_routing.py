"""routing: which node a driver sends keyless commands and its notification connection to (no Redis)."""

from __future__ import annotations

import dataclasses

from redis_timers.ops import Command, ScriptCall
from redis_timers.routing import keys_node, listener_node, on_node
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
