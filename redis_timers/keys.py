"""Key and channel names. Every key shares the `{namespace}` hash tag, so each script is single-slot."""

from __future__ import annotations

import dataclasses

DEAD_LETTER_FIELD_SEPARATOR = "\0"
"""Dead letters live in one hash keyed by `topic NUL id`; topics never contain NUL, so the split is exact."""


@dataclasses.dataclass(frozen=True)
class Keyspace:
    namespace: str

    @property
    def tag(self) -> str:
        return "{" + self.namespace + "}"

    def timeline(self, topic: str) -> str:
        return f"{self.tag}:timeline:{topic}"

    def payloads(self, topic: str) -> str:
        return f"{self.tag}:payloads:{topic}"

    def state(self, topic: str) -> str:
        return f"{self.tag}:state:{topic}"

    def topic_keys(self, topic: str) -> tuple[str, str, str]:
        return self.timeline(topic), self.payloads(topic), self.state(topic)

    @property
    def dead_letters(self) -> str:
        return f"{self.tag}:dead"

    def claim_record(self, claim_id: str) -> str:
        """What one worker round trip claimed, kept until the next one so that a lost reply can be replayed."""
        return f"{self.tag}:claim:{claim_id}"

    @property
    def channel_prefix(self) -> str:
        return f"{self.tag}:wake:"

    def channel(self, topic: str) -> str:
        return self.channel_prefix + topic


def dead_letter_field(topic: str, timer_id: str) -> str:
    return f"{topic}{DEAD_LETTER_FIELD_SEPARATOR}{timer_id}"


def split_dead_letter_field(field: str) -> tuple[str, str]:
    topic, _, timer_id = field.partition(DEAD_LETTER_FIELD_SEPARATOR)
    return topic, timer_id
