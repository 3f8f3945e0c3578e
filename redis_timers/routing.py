"""Where a front end's driver sends the keyless commands that must reach the node of a script call's keys.

A plain client has one server, so every command goes there. A cluster client routes a command by its keys and
sends a keyless one to a node of its own choosing (`SCRIPT LOAD` to every primary, which fails while any is
down). Two keyless commands must go to the node of the script call they serve:
- `SCRIPT LOAD` after NOSCRIPT: the node that answered it (a promoted replica has no scripts: the script cache
  is not replicated);
- `WAIT` after a durable write: it counts only the writes made before it on its own connection. A cluster
  pipeline would send the write and the WAIT on one connection of the node, but when the write meets a
  redirection or a connection error it sends the write again alone, elsewhere, and the WAIT proves nothing.
  So the write and its WAITs go on one connection of the node's own pool, without the cluster's retries: a
  redirection or a lost node is then an error the caller sees (a retry is safe).
So they go to the node of the first script call's first key. Clients without `get_node_from_key` (every plain
client) are left as they are.

And a worker's notification connection: a cluster forwards every PUBLISH to every node, so one subscription on
any node hears the wake-ups of every shard (see `listener_node`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis_timers.errors import UnsupportedClientError
from redis_timers.ops import Command, ScriptCall

CLUSTER_CLIENTS_SINCE = (8, 1)
"""The oldest redis-py whose cluster clients this library drives: the one it is tested with on a cluster. Older
ones differ in how their cluster pipelines and pub/sub ride out a failover (5.x's async client has no pub/sub)."""


def is_cluster_client(client: Any) -> bool:
    return getattr(client, "get_node_from_key", None) is not None


def version_tuple(version: str) -> tuple[int, ...]:
    """`8.1.0` as (8, 1, 0); stops at the first part that is not a number (`8.1.0b1` is (8, 1))."""
    parts = []
    for part in version.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def check_client(client: Any, redis_py_version: str) -> None:
    """Refuse a cluster client of a redis-py older than `CLUSTER_CLIENTS_SINCE`, saying what to upgrade."""
    if is_cluster_client(client) and version_tuple(redis_py_version) < CLUSTER_CLIENTS_SINCE:
        since = ".".join(map(str, CLUSTER_CLIENTS_SINCE))
        raise UnsupportedClientError(
            f"Redis Cluster clients need redis-py {since} or newer; this is redis-py {redis_py_version}. Upgrade"
            f" redis (pip install 'redis>={since}'), or give Timers a client of a single server"
        )


def keys_node(client: Any, ops: tuple[ScriptCall | Command, ...]) -> Any:
    """The node of `client` (a cluster client's `ClusterNode`) that serves the first script call's keys, or None for
    a plain client (or calls without keys)."""
    locate = getattr(client, "get_node_from_key", None)
    key = next((op.keys[0] for op in ops if isinstance(op, ScriptCall) and op.keys), None)
    if locate is None or key is None:
        return None
    return locate(key.encode("utf-8"))


def node_name(client: Any, ops: tuple[ScriptCall | Command, ...]) -> str:
    """The name (`host:port`) of the node `keys_node` picks, or "" for a plain client: what a durable write learns
    about its node's append-only file is kept under it (see `durability`)."""
    node = keys_node(client, ops)
    return "" if node is None else str(getattr(node, "name", node))


def call_nodes(client: Any, calls: Sequence[ScriptCall], unlocatable: tuple[type[BaseException], ...]) -> list[Any]:
    """The node of each call's keys (see `keys_node`), or, for a call whose slot is in no slot map the client could
    read, the error (one of `unlocatable`) that said so."""
    nodes: list[Any] = []
    for call in calls:
        try:
            nodes.append(keys_node(client, (call,)))
        except unlocatable as unlocated:
            nodes.append(unlocated)
    return nodes


def on_node(node: Any) -> dict[str, Any]:
    """The keywords that send a cluster client's keyless command to `node` (none for None: a plain client)."""
    return {} if node is None else {"target_nodes": node}


def pipeline_target(client: Any, op: ScriptCall | Command) -> dict[str, Any]:
    """The keywords that send a script call queued on a blocking cluster client's pipeline to the node of its keys,
    which we know; none for a plain client (or a slot the client cannot place, left to the pipeline to report).

    Without them, redis-py 8's blocking cluster pipeline finds no routing policy for EVALSHA and asks a node for
    the call's keys (`COMMAND GETKEYS`), a command more per call. The node is used for the first try only: a
    redirection's retry routes the call by its keys again.
    """
    if not isinstance(op, ScriptCall) or getattr(client, "get_node_from_key", None) is None:
        return {}
    try:
        return on_node(keys_node(client, (op,)))
    except Exception:
        return {}


def listener_node(nodes: Sequence[Any], failures: int) -> Any:
    """The cluster node (of a client's known `nodes`) a worker's notification connection subscribes on, after
    `failures` failed attempts in a row: primaries first, each in turn by name.

    After each failure the next node is tried, so a listener whose node died re-homes on a live one at once,
    without waiting for its client to learn the new slot map (an idle worker sends no other command for a
    safety interval).
    """
    ordered = sorted(nodes, key=lambda node: (getattr(node, "server_type", None) != "primary", node.name))
    return ordered[failures % len(ordered)]


def node_groups(nodes: Sequence[Any]) -> list[list[int]]:
    """The indices of `nodes` (the node of each call's keys, as `keys_node` says, None for a plain client) grouped
    by node name, in order of first appearance.

    When a cluster pipeline fails as a whole (one of its nodes refuses connections: a primary down before its
    failover, or with no replica), a driver sends each group on its own, so that each call gets its own node's
    outcome and a dead node's shards back off alone while the others keep firing.
    """
    groups: dict[Any, list[int]] = {}
    for index, node in enumerate(nodes):
        groups.setdefault(getattr(node, "name", node), []).append(index)
    return list(groups.values())
