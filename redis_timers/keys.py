"""Key and channel names. Every key shares the `{namespace}` hash tag, so each script is single-slot."""

from __future__ import annotations

import dataclasses
import functools

MAX_REMEMBERED_TOPICS = 1024
DEAD_LETTER_FIELD_SEPARATOR = "\0"
"""Dead letters live in one hash keyed by `topic NUL id`; topics never contain NUL, so the split is exact."""


@dataclasses.dataclass(frozen=True)
class Keyspace:
    namespace: str

    @functools.cached_property
    def tag(self) -> str:
        return "{" + self.namespace + "}"

    def timeline(self, topic: str) -> str:
        return f"{self.tag}:timeline:{topic}"

    def payloads(self, topic: str) -> str:
        return f"{self.tag}:payloads:{topic}"

    def state(self, topic: str) -> str:
        return f"{self.tag}:state:{topic}"

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


def dead_letter_field(topic: str, timer_id: str) -> str:
    return f"{topic}{DEAD_LETTER_FIELD_SEPARATOR}{timer_id}"


def split_dead_letter_field(field: str) -> tuple[str, str]:
    topic, _, timer_id = field.partition(DEAD_LETTER_FIELD_SEPARATOR)
    return topic, timer_id
