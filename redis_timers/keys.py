"""Key and channel names, per shard of a namespace.

Every key of one shard shares that shard's hash tag, so each script call is single-slot. A namespace of
one shard (the default) uses the tag `{namespace}`, as every earlier version did; a namespace of N > 1
shards gives shard i a tag of its own, placed in the i-th N-th of the cluster's slots (`shard_tags`),
so that N shards spread evenly over the primaries of a cluster whose slots are split evenly.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import zlib
from collections.abc import Sequence

from redis_timers.slots import SLOTS, key_slot

MAX_REMEMBERED_TOPICS = 1024
DEAD_LETTER_FIELD_SEPARATOR = "\0"
"""Dead letters live in one hash keyed by `topic NUL id`; topics never contain NUL, so the split is exact."""


MAX_SHARDS = 256
"""The most shards a namespace may have: each costs a worker a script call per safety interval when idle."""


@functools.cache
def shard_tags(namespace: str, shards: int) -> tuple[str, ...]:
    """Each shard's hash tag, braces included: `{namespace}` for one shard; else one per N-th of the slots.

    Shard i's tag is the first of `{namespace:i}`, `{namespace:i.1}`, `{namespace:i.2}`... whose slot falls in
    the middle half of the i-th N-th of the 16,384 slots: a cluster that splits its slots evenly over K
    primaries (as `--cluster create` does) then holds N/K shards on each, even when a shard's share of the
    slots straddles the boundary between two primaries' ranges. Pure arithmetic on the names, so every
    process and version computes the same tags.
    """
    if shards == 1:
        return ("{" + namespace + "}",)
    tags = []
    for shard in range(shards):
        low, high = shard * SLOTS // shards, (shard + 1) * SLOTS // shards
        quarter = (high - low) // 4
        attempt = 0
        while True:
            content = f"{namespace}:{shard}" if attempt == 0 else f"{namespace}:{shard}.{attempt}"
            if low + quarter <= key_slot(content) < high - quarter:
                break
            attempt += 1
        tags.append("{" + content + "}")
    return tuple(tags)


def shard_of(topic: str, timer_id: str, shards: int) -> int:
    """The shard that holds timer (`topic`, `timer_id`): CRC-32 of `topic NUL id` in UTF-8, modulo `shards`.

    Fixed for good: a timer must be found in the same shard by every process and every later version.
    """
    if shards == 1:
        return 0
    return zlib.crc32(dead_letter_field(topic, timer_id).encode("utf-8")) % shards


@dataclasses.dataclass(frozen=True)
class Keyspace:
    """The keys and channels of one shard of a namespace (the only one, by default)."""

    namespace: str
    shard: int = 0
    shards: int = 1

    @functools.cached_property
    def tag(self) -> str:
        return shard_tags(self.namespace, self.shards)[self.shard]

    def timeline(self, topic: str) -> str:
        return f"{self.tag}:timeline:{topic}"

    def payloads(self, topic: str) -> str:
        return f"{self.tag}:payloads:{topic}"

    def state(self, topic: str) -> str:
        return f"{self.tag}:state:{topic}"

    @functools.cached_property
    def heads(self) -> str:
        """The shard's index of topic heads: topic -> the lowest score of its timeline (see docs/protocol.md)."""
        return f"{self.tag}:heads"

    def topic_set(self, topics: Sequence[str]) -> str:
        """Where a worker's `topics` (in its order) are registered, so that its round trips need not name them."""
        digest = hashlib.sha1("\n".join(topics).encode("utf-8"), usedforsecurity=False).hexdigest()
        return f"{self.tag}:topics:{digest}"

    def write_keys(self, topic: str) -> tuple[str, str, str, str]:
        """What a script that writes one topic's timeline names: its keys, then the shard's heads index."""
        return (*self.topic_keys(topic), self.heads)

    def topic_keys(self, topic: str) -> tuple[str, str, str]:
        keys = self._keys_by_topic.get(topic)
        if keys is None:
            keys = (self.timeline(topic), self.payloads(topic), self.state(topic))
            if len(self._keys_by_topic) < MAX_REMEMBERED_TOPICS:
                self._keys_by_topic[topic] = keys
        return keys

    @functools.cached_property
    def _keys_by_topic(self) -> dict[str, tuple[str, str, str]]:
        """Each `set_timer` names its topic's keys: built once per topic."""
        return {}

    def legacy_receipts(self, topic: str) -> str:
        """The import's receipts: timers of `topic` imported from the original library's keys, not yet done."""
        return f"{self.tag}:legacy:{topic}"

    @property
    def dead_letters(self) -> str:
        return f"{self.tag}:dead"

    def claim_record(self, claim_id: str) -> str:
        """What one worker round trip claimed, kept until the next one so that a lost reply can be replayed."""
        return f"{self.tag}:claim:{claim_id}"

    @functools.cached_property
    def channel_prefix(self) -> str:
        return f"{self.tag}:wake:"

    def channel(self, topic: str) -> str:
        return self.channel_prefix + topic


@dataclasses.dataclass(frozen=True)
class Namespace:
    """A namespace split into `shards` shards (`TIMERS_SHARDS`); each timer lives in one (`shard_of`)."""

    name: str
    shards: int = 1

    @functools.cached_property
    def keyspaces(self) -> tuple[Keyspace, ...]:
        return tuple(Keyspace(self.name, shard, self.shards) for shard in range(self.shards))

    def keyspace_for(self, topic: str, timer_id: str) -> Keyspace:
        return self.keyspaces[shard_of(topic, timer_id, self.shards)]

    @functools.cached_property
    def layout_key(self) -> str:
        """Where a namespace of several shards records how many it has, under the one-shard tag `{name}`."""
        return "{" + self.name + "}:shards"


def dead_letter_field(topic: str, timer_id: str) -> str:
    return f"{topic}{DEAD_LETTER_FIELD_SEPARATOR}{timer_id}"


def split_dead_letter_field(field: str) -> tuple[str, str]:
    topic, _, timer_id = field.partition(DEAD_LETTER_FIELD_SEPARATOR)
    return topic, timer_id
