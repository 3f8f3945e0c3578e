"""Shard tags and the timer -> shard map: placed by slot, stable, and the one-shard layout unchanged."""

from __future__ import annotations

import zlib

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
