"""An idle worker's safety check: one read-only call per node for every shard it holds, not one claim per shard.

A worker claims from each shard at least once per safety interval, so that a lost wake-up delays a timer by
one interval at most. With nothing due that is one script call per shard per interval: N/K per primary of a
cluster, N on a single server. The probe asks each node instead, in one call for all of its shards, which of
them hold a timer of the worker's topics that is due; the engine then claims from those only.

Per shard the probe reads the heads index (the lowest head of the worker's topics, at a cost that does not grow
with their number), and the timelines of a batch of at most `SCAN_TOPICS` of the topics, the next batch at each
probe: a process of an earlier version keeps no index, and a timer it wrote is thus found within
ceil(topics / SCAN_TOPICS) probes (within the next one, with that many topics or fewer). One found that way asks
the shard's next claim to rebuild the index first (`Head.rebuild`), since that claim finds due topics in the index.

Which node holds which shard is the driver's answer to `NodeOf` (its slot map; no command is sent; a plain
client has one server, which holds them all). Each node's call goes on one connection of that node
(`OneConnection`), since a cluster client would refuse, or look up, the keys of several slots. A node that
refuses its call (a server without script flags, a slot moved since the slot map was read: MOVED, or the
node's answer that a key is not its own, on which the driver reads the slot map again) answers nothing for its
shards: they get their own claim calls, as they did before the probe.
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
    rebuild: bool = False
    """A timeline is due that the heads index does not say is: written without it (see the module's doc)."""

    @property
    def due(self) -> bool:
        return self.lowest is not None and self.lowest <= self.now_ms


Outcome = Head | BaseException
"""Per shard: what its node's probe said, or the error its node's call met."""


SCAN_TOPICS = 256
"""How many of the worker's timelines a probe reads per shard, besides the index: what bounds its cost."""


def scanned(topics: Sequence[str], cursor: int) -> list[str]:
    """The batch of `topics` a probe reads the timelines of, from `cursor` on (wrapping round)."""
    if len(topics) <= SCAN_TOPICS:
        return list(topics)
    return [topics[(cursor + offset) % len(topics)] for offset in range(SCAN_TOPICS)]


def shard_call(keyspace: Keyspace, topic_set: str, batch: Sequence[str]) -> ScriptCall:
    """The probe of one shard alone: what `NodeOf` locates, and what a node's call is made of."""
    return ScriptCall(
        scripts.PROBE, (keyspace.heads,), (len(batch), keyspace.heads, topic_set, *map(keyspace.timeline, batch))
    )


def node_call(calls: Sequence[ScriptCall]) -> ScriptCall:
    """One call for the shards of `calls`, all on one node: their keys in turn, as arguments (a cluster refuses
    declared keys of several slots); the first shard's heads index is declared too, and routes the call."""
    args = (calls[0].args[0], *(key for call in calls for key in call.args[1:]))
    return ScriptCall(scripts.PROBE, calls[0].keys, args)


def probe(shards: Sequence[tuple[Keyspace, str]], batch: Sequence[str]) -> Flow[list[Outcome]]:
    """Each shard's outcome, in the order of `shards` (each a keyspace and the worker's topic set there), reading
    the timelines of `batch`: one call per node, the nodes in turn."""
    calls = [shard_call(keyspace, topic_set, batch) for keyspace, topic_set in shards]
    by_node: dict[str, list[int]] = {}
    for index, call in enumerate(calls):
        node = yield NodeOf(call)  # answered by the driver from its slot map, without a round trip
        by_node.setdefault(node, []).append(index)
    outcomes: list[Outcome] = [RuntimeError("not probed")] * len(calls)
    for indices in by_node.values():
        (reply,) = yield OneConnection((node_call([calls[index] for index in indices]),))
        if isinstance(reply, BaseException):
            for index in indices:
                outcomes[index] = reply
            continue
        now_ms = int(reply[0])
        for position, index in enumerate(indices):
            lowest, rebuild = reply[1 + 2 * position], reply[2 + 2 * position]
            text = lowest.decode() if isinstance(lowest, bytes) else str(lowest)
            outcomes[index] = Head(now_ms, float(text) if text else None, int(rebuild) == 1)
    return outcomes
