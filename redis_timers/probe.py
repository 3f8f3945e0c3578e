"""An idle worker's safety check: one read-only call per node for every shard it holds, not one claim per shard.

A worker claims from each shard at least once per safety interval, so that a lost wake-up delays a timer by
one interval at most. With nothing due that is one script call per shard per interval: N/K per primary of a
cluster, N on a single server. The probe asks each node instead, in one call for all of its shards, which of
them hold a timer of the worker's topics that is due; the engine then claims from those only.

Which node holds which shard is the driver's answer to `NodeOf` (its slot map; no command is sent; a plain
client has one server, which holds them all). Each node's call goes on one connection of that node
(`OneConnection`), since a cluster client would refuse, or look up, the keys of several slots. A node that
refuses its call (a server without script flags, a slot moved since the slot map was read: MOVED) answers
nothing for its shards: they get their own claim calls, as they did before the probe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from redis_timers import scripts
from redis_timers.keys import Keyspace
from redis_timers.ops import Flow, NodeOf, OneConnection, ScriptCall


@dataclasses.dataclass(frozen=True)
class Head:
    """What a node's probe said of one shard."""

    now_ms: int
    """The node's clock (ms, rounded down) when it looked."""
    lowest: float | None
    """The lowest score of the worker's timelines there (a due time, or a lease's end); None if all are empty."""

    @property
    def due(self) -> bool:
        return self.lowest is not None and self.lowest <= self.now_ms


Outcome = Head | BaseException
"""Per shard: what its node's probe said, or the error its node's call met."""


def shard_call(keyspace: Keyspace, topics: Sequence[str]) -> ScriptCall:
    """The probe of one shard alone: what `NodeOf` locates, and what a node's call is made of."""
    return ScriptCall(scripts.PROBE, tuple(keyspace.timeline(topic) for topic in topics), (len(topics),))


def node_call(calls: Sequence[ScriptCall], topics: int) -> ScriptCall:
    """One call for the shards of `calls`, all on one node: their timelines in turn, as arguments (a cluster
    refuses declared keys of several slots); the first is declared too, and routes the call."""
    return ScriptCall(scripts.PROBE, calls[0].keys[:1], (topics, *(key for call in calls for key in call.keys)))


def probe(keyspaces: Sequence[Keyspace], topics: Sequence[str]) -> Flow[list[Outcome]]:
    """Each shard's outcome, in the order of `keyspaces`: one call per node, the nodes in turn."""
    calls = [shard_call(keyspace, topics) for keyspace in keyspaces]
    by_node: dict[str, list[int]] = {}
    for index, call in enumerate(calls):
        node = yield NodeOf(call)  # answered by the driver from its slot map, without a round trip
        by_node.setdefault(node, []).append(index)
    outcomes: list[Outcome] = [RuntimeError("not probed")] * len(calls)
    for indices in by_node.values():
        (reply,) = yield OneConnection((node_call([calls[index] for index in indices], len(topics)),))
        if isinstance(reply, BaseException):
            for index in indices:
                outcomes[index] = reply
            continue
        now_ms = int(reply[0])
        for index, lowest in zip(indices, reply[1:]):
            text = lowest.decode() if isinstance(lowest, bytes) else str(lowest)
            outcomes[index] = Head(now_ms, float(text) if text else None)
    return outcomes
