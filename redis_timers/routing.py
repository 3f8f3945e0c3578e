"""Where a front end's driver sends the keyless commands that must reach the node of a script call's keys.

A plain client has one server, so every command goes there. A cluster client routes a command by its keys and
sends a keyless one to a node of its own choosing (`SCRIPT LOAD` to every primary, which fails while any is
down). Two keyless commands must go to the node of the script call they serve:
- `SCRIPT LOAD` after NOSCRIPT: the node that answered it (a promoted replica has no scripts: the script cache
  is not replicated);
- `WAIT` after a durable write: it counts only the writes made before it on its own connection, and a cluster
  pipeline sends each node's commands in order on one connection of that node.
So they name the node of the first script call's first key. Clients without `get_node_from_key` (every plain
client) are left as they are.

And a worker's notification connection: a cluster forwards every PUBLISH to every node, so one subscription on
any node hears the wake-ups of every shard (see `listener_node`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis_timers.ops import Command, ScriptCall


def keys_node(client: Any, ops: tuple[ScriptCall | Command, ...]) -> dict[str, Any]:
    """The keywords that send a keyless command of `client` to the node of the first script call's keys."""
    locate = getattr(client, "get_node_from_key", None)
    key = next((op.keys[0] for op in ops if isinstance(op, ScriptCall) and op.keys), None)
    if locate is None or key is None:
        return {}
    return {"target_nodes": locate(key.encode("utf-8"))}


def listener_node(nodes: Sequence[Any], failures: int) -> Any:
    """The cluster node (of a client's known `nodes`) a worker's notification connection subscribes on, after
    `failures` failed attempts in a row: primaries first, each in turn by name.

    After each failure the next node is tried, so a listener whose node died re-homes on a live one at once,
    without waiting for its client to learn the new slot map (an idle worker sends no other command for a
    safety interval).
    """
    ordered = sorted(nodes, key=lambda node: (getattr(node, "server_type", None) != "primary", node.name))
    return ordered[failures % len(ordered)]
