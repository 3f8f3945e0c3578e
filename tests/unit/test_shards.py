"""Shard tags and the timer -> shard map: placed by slot, stable, and the one-shard layout unchanged."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot as redis_key_slot

from redis_timers import slots
from redis_timers.errors import SettingsError
from redis_timers.keys import MAX_SHARDS, Keyspace, Namespace, shard_of, shard_tags
from redis_timers.settings import TimersSettings


@given(st.binary(max_size=40))
def test_key_slot_is_the_servers(key: bytes) -> None:
    assert slots.key_slot(key) == redis_key_slot(key)


@pytest.mark.parametrize("key", ["foo", "{user1000}.following", "{}x", "{a}{b}", "a{", "ä{ö}", "{timers}:dead"])
def test_key_slot_of_hash_tags(key: str) -> None:
    assert slots.key_slot(key) == redis_key_slot(key.encode())


def test_one_shard_keeps_the_original_tag() -> None:
    assert shard_tags("timers", 1) == ("{timers}",)
    assert Keyspace("timers").tag == "{timers}"
    assert Namespace("timers").keyspaces == (Keyspace("timers"),)
    assert shard_of("topic", "id", 1) == 0


@pytest.mark.parametrize("shards", [2, 3, 4, 6, 8, 12, 16, 64])
def test_each_shard_tag_sits_in_the_middle_of_its_share_of_the_slots(shards: int) -> None:
    tags = shard_tags("timers", shards)
    assert len(set(tags)) == shards
    for shard, tag in enumerate(tags):
        width = slots.SLOTS / shards
        slot = redis_key_slot(tag.encode())
        assert shard * width + width / 4 - 1 <= slot < (shard + 1) * width - width / 4 + 1


@pytest.mark.parametrize("primaries", [3, 4, 6])
def test_shards_spread_evenly_over_primaries_of_an_even_slot_split(primaries: int) -> None:
    # `--cluster create` gives primary p the slots [p * 16384 / K, (p + 1) * 16384 / K), rounded.
    shards = primaries * 2
    owners = [redis_key_slot(tag.encode()) * primaries // slots.SLOTS for tag in shard_tags("timers", shards)]
    assert sorted(owners) == sorted(list(range(primaries)) * 2)


def test_the_timer_map_is_fixed_for_good() -> None:
    # Pinned values: a change here strands every timer of a sharded namespace in the wrong shard.
    assert shard_of("reminders", "order-1", 6) == zlib.crc32(b"reminders\0order-1") % 6
    assert [shard_of("t", str(i), 4) for i in range(8)] == [zlib.crc32(f"t\0{i}".encode()) % 4 for i in range(8)]
    assert shard_tags("timers", 3) == ("{timers:0.3}", "{timers:1.2}", "{timers:2.2}")


def test_the_timer_map_spreads_ids() -> None:
    counts = [0] * 6
    for i in range(6000):
        counts[shard_of("t", f"id-{i}", 6)] += 1
    assert min(counts) > 800


def test_every_key_of_a_shard_shares_its_slot() -> None:
    keyspace = Namespace("billing:eu", 6).keyspaces[4]
    keys = [
        *keyspace.topic_keys("t"),
        keyspace.dead_letters,
        keyspace.claim_record("w:1"),
        keyspace.legacy_receipts("t"),
    ]
    assert {redis_key_slot(key.encode()) for key in keys} == {redis_key_slot(keyspace.tag.encode())}


def test_the_layout_key_is_under_the_one_shard_tag() -> None:
    assert Namespace("timers", 6).layout_key == "{timers}:shards"


@pytest.mark.parametrize("value", [0, -1, MAX_SHARDS + 1, True, 2.0])
def test_a_bad_shard_count_is_refused(value: object) -> None:
    with pytest.raises(SettingsError, match="shards"):
        TimersSettings(shards=value)  # type: ignore[arg-type]


def test_shards_come_from_the_environment() -> None:
    assert TimersSettings.from_env({"TIMERS_SHARDS": "6"}).shards == 6
    with pytest.raises(SettingsError, match="TIMERS_SHARDS"):
        TimersSettings.from_env({"TIMERS_SHARDS": "many"})


NAMES = st.text(alphabet="ab:.01", min_size=1, max_size=6)
"""Names made of what shard tags are made of, so that any collision between two namespaces' tags can turn up."""
README = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8").split())


@given(NAMES, NAMES, st.integers(1, 8), st.integers(1, 8))
def test_two_namespaces_share_a_tag_only_when_one_is_named_as_a_shard_of_the_other(
    name: str, other: str, shards: int, other_shards: int
) -> None:
    if name == other:
        return  # one namespace: the recorded shard count keeps two counts apart (`layout.py`)
    shared = set(shard_tags(name, shards)) & set(shard_tags(other, other_shards))
    if other_shards == 1 and shards > 1 and re.fullmatch(re.escape(name) + r":\d+(\.\d+)?", other):
        return  # the documented case below: it may share a shard's keys
    if shards == 1 and other_shards > 1 and re.fullmatch(re.escape(other) + r":\d+(\.\d+)?", name):
        return
    assert not shared, (name, shards, other, other_shards)


def test_a_one_shard_namespace_named_as_a_shard_of_another_shares_that_shards_keys_as_documented() -> None:
    # `timers` of 2 shards has the tags `{timers:0.2}` and `{timers:1}`: a one-shard namespace `timers:1` is
    # that shard, key for key. Refusing such names would break one-shard namespaces that have them today.
    assert shard_tags("timers", 2) == ("{timers:0.2}", "{timers:1}")
    assert Keyspace("timers:1").timeline("jobs") == Namespace("timers", 2).keyspaces[1].timeline("jobs")
    assert (
        "A shard's tag is its namespace's name followed by `:` and a number (`timers:1`, `timers:0.2`), so a "
        "namespace of one shard named like that (`TIMERS_NAMESPACE=timers:1`) beside the namespace `timers` of "
        "several shards would share that shard's keys: don't name a namespace after another one's shard."
    ) in README


@given(
    NAMES,
    st.integers(1, 8),
    st.text(alphabet="{}:ab\0é", min_size=1, max_size=8),
    st.text(alphabet="{}:ab\0é", min_size=1, max_size=8),
)
def test_no_topic_nor_id_moves_a_key_out_of_its_shards_slot(name: str, shards: int, topic: str, timer_id: str) -> None:
    # Braces in a topic come after the tag's closing brace, and ids are never part of a key: every key of the
    # timer's shard hashes as its tag does, so each call stays single-slot whatever users name things.
    keyspace = Namespace(name, shards).keyspace_for(topic, timer_id)
    keys = [*keyspace.topic_keys(topic), keyspace.legacy_receipts(topic), keyspace.channel(topic)]
    assert {slots.key_slot(key) for key in keys} == {slots.key_slot(keyspace.tag)}
