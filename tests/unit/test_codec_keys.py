"""keys.py and codec.py: key names, hash tags, dead-letter fields and reply decoding."""

from __future__ import annotations

import json

import hypothesis
import pytest
from hypothesis import strategies as st

from redis_timers import codec
from redis_timers.keys import DEAD_LETTER_FIELD_SEPARATOR, Keyspace, dead_letter_field, split_dead_letter_field
from redis_timers.records import DeadLetter
from redis_timers.timing import ms_to_datetime
from redis_timers.validation import check_topic
from tests.unit.support import Order, crc16, key_slot


def test_the_slot_helper_agrees_with_redis() -> None:
    # Reference values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
    assert crc16(b"123456789") == 0x31C3
    assert key_slot("foo") == 12182
    assert key_slot("{user1000}.following") == key_slot("{user1000}.followers")
    assert key_slot("foo{bar}{zap}") == key_slot("bar")
    assert key_slot("foo{}{bar}") == crc16(b"foo{}{bar}") % 16384  # an empty tag does not count
    assert key_slot("foo{{bar}}zap") == crc16(b"{bar") % 16384


def test_keyspace_names() -> None:
    keyspace = Keyspace("timers")

    assert keyspace.tag == "{timers}"
    assert keyspace.topic_keys("orders") == (
        "{timers}:timeline:orders",
        "{timers}:payloads:orders",
        "{timers}:state:orders",
    )
    assert keyspace.dead_letters == "{timers}:dead"
    assert keyspace.channel_prefix == "{timers}:wake:"
    assert keyspace.channel("orders") == "{timers}:wake:orders"


valid_topics = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40).filter(
    lambda topic: (
        topic.isprintable()
        and not any(char.isspace() for char in topic)
        and "--" not in topic
        and not topic.endswith("-")
    )
)


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(
    namespace=st.text(min_size=1, max_size=20).filter(lambda ns: "{" not in ns and "}" not in ns),
    topics=st.lists(valid_topics, min_size=1, max_size=4),
)
def test_every_key_of_a_namespace_is_in_one_slot(namespace: str, topics: list[str]) -> None:
    keyspace = Keyspace(namespace)
    keys = [keyspace.dead_letters, *(key for topic in topics for key in keyspace.topic_keys(topic))]

    assert {key_slot(key) for key in keys} == {key_slot(keyspace.tag)}


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(
    topic=valid_topics,
    timer_id=st.one_of(
        st.text(min_size=1),
        st.lists(st.sampled_from(["\0", "--", "a", ":", "é"]), min_size=1, max_size=8).map("".join),
    ),
)
def test_dead_letter_fields_round_trip(topic: str, timer_id: str) -> None:
    assert check_topic(topic, "--") == topic  # topics never contain NUL, so the split is exact

    field = dead_letter_field(topic, timer_id)

    assert split_dead_letter_field(field) == (topic, timer_id)
    letter = codec.dead_letter(field.encode("utf-8"), json.dumps({"payload": "{}", "failed_at": 0}).encode())
    assert (letter.topic, letter.timer_id) == (topic, timer_id)


def test_dead_letter_field_layout() -> None:
    assert DEAD_LETTER_FIELD_SEPARATOR == "\0"
    assert dead_letter_field("orders", "a\0b--c") == "orders\0a\0b--c"
    assert split_dead_letter_field("orders\0a\0b--c") == ("orders", "a\0b--c")


@pytest.mark.parametrize("as_bytes", [False, True])
def test_dead_letter_record(as_bytes: bool) -> None:
    record = json.dumps(
        {"payload": '{"order_id":3}', "attempts": 5, "error": "ValueError: x", "failed_at": 1_700_000_000_123}
    )
    field = "orders\0o-3"

    letter = codec.dead_letter(field.encode() if as_bytes else field, record.encode() if as_bytes else record)

    assert letter == DeadLetter(
        topic="orders",
        timer_id="o-3",
        payload='{"order_id":3}',
        attempts=5,
        error="ValueError: x",
        failed_at=ms_to_datetime(1_700_000_000_123),
    )
    assert letter.payload_as(Order) == Order(order_id=3)


def test_dead_letter_record_with_missing_fields() -> None:
    letter = codec.dead_letter("orders\0o-3", "{}")

    assert (letter.payload, letter.attempts, letter.error, letter.failed_at) == ("", 0, "", ms_to_datetime(0))


def test_text_decodes_whatever_the_client_returns() -> None:
    assert codec.text("déjà") == "déjà"
    assert codec.text("déjà".encode()) == "déjà"
    assert codec.text(b"\xff\xfe") == "\udcff\udcfe"  # not UTF-8: kept, never a crash
    assert codec.text(b"\xff\xfe").encode("utf-8", errors="surrogateescape") == b"\xff\xfe"
    assert codec.optional_text(None) is None
    assert codec.optional_text(b"x") == "x"


def test_describe_error() -> None:
    assert codec.describe_error(ValueError("bad")) == "ValueError: bad"
    exact = codec.describe_error(ValueError("e" * (codec.MAX_ERROR_CHARS - len("ValueError: "))))
    assert len(exact) == codec.MAX_ERROR_CHARS
    assert not exact.endswith("...")
    long = codec.describe_error(ValueError("e" * codec.MAX_ERROR_CHARS))
    assert long == ("ValueError: " + "e" * codec.MAX_ERROR_CHARS)[: codec.MAX_ERROR_CHARS] + "..."


def test_pairs() -> None:
    assert codec.pairs(["a", "1", "b", "2"]) == [("a", "1"), ("b", "2")]
    assert codec.pairs([]) == []
