"""docs/cluster.md: the shard tags, slots and primaries it shows, and the settings it names, computed here."""

from __future__ import annotations

import re
from pathlib import Path

from redis_timers.cli.embedded import CLUSTER_ARGS, slot_ranges
from redis_timers.keys import MAX_SHARDS, shard_tags
from redis_timers.slots import key_slot

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_DOC = (ROOT / "docs" / "cluster.md").read_text(encoding="utf-8")
CLUSTER = " ".join(CLUSTER_DOC.split())
"""The page with line breaks as spaces, so that a sentence is found whatever its wrapping."""


def primary_of(slot: int, primaries: int) -> int:
    """1-based, of `primaries` primaries whose slots are split evenly (as `--cluster create` splits them)."""
    return next(index + 1 for index, (low, high) in enumerate(slot_ranges(primaries)) if low <= slot <= high)


def slot_of(tag: str) -> int:
    return key_slot(tag[1:-1])


def test_the_table_of_six_shards_on_three_primaries_is_the_computed_one() -> None:
    rows = re.findall(r"^\| (\d+) \| `(\{[^`]+\})` \| (\d+) \| (\d+) \|$", CLUSTER_DOC, re.MULTILINE)
    expected = [
        (str(shard), tag, str(slot_of(tag)), str(primary_of(slot_of(tag), 3)))
        for shard, tag in enumerate(shard_tags("timers", 6))
    ]
    assert rows == expected
    assert "With N = 6 on 3 primaries:" in CLUSTER


def test_each_primary_holds_n_over_k_shards_when_n_is_a_multiple_of_k() -> None:
    assert "holds the same number of shards on each primary when N is a multiple of their count" in CLUSTER
    for primaries in (1, 2, 3, 4, 6):
        for multiple in (1, 2, 3):
            shards = primaries * multiple
            held = [primary_of(slot_of(tag), primaries) for tag in shard_tags("timers", shards)]
            assert sorted(held) == sorted(list(range(1, primaries + 1)) * multiple)


def test_the_same_six_tags_put_one_shard_on_each_of_six_primaries() -> None:
    assert "the same 6 tags that put 2 shards on each of 3 primaries put 1 on each of 6 primaries" in CLUSTER
    assert sorted(primary_of(slot_of(tag), 6) for tag in shard_tags("timers", 6)) == [1, 2, 3, 4, 5, 6]


def test_plain_tags_leave_two_of_six_primaries_empty() -> None:
    slots = [key_slot(f"timers:{shard}") for shard in range(8)]
    shown = ", ".join(str(slot) for slot in slots[:-1]) + f" and {slots[-1]}"
    assert f"`{{timers:0}}` to `{{timers:7}}` fall in slots {shown}, which leave 2 of 6 primaries empty" in CLUSTER
    assert 6 - len({primary_of(slot, 6) for slot in slots}) == 2


def test_the_shard_tags_are_the_ones_the_page_describes() -> None:
    assert (
        "the first of `{timers:i}`, `{timers:i.1}`, `{timers:i.2}`, ... whose slot falls in the middle half" in CLUSTER
    )
    for shards in (2, 3, 6, 16):
        for shard, tag in enumerate(shard_tags("timers", shards)):
            low, high = shard * 16384 // shards, (shard + 1) * 16384 // shards
            quarter = (high - low) // 4
            assert low + quarter <= slot_of(tag) < high - quarter
            assert tag == f"{{timers:{shard}}}" or tag.startswith(f"{{timers:{shard}.")
    assert shard_tags("timers", 1) == ("{timers}",)
    assert "With N = 1, the default, every key starts with `{timers}`" in CLUSTER


def test_the_limits_and_server_settings_named_are_the_librarys_and_the_tests() -> None:
    assert f"N is at most {MAX_SHARDS}." in CLUSTER
    arguments = dict(zip(CLUSTER_ARGS[::2], CLUSTER_ARGS[1::2]))
    assert arguments["--cluster-node-timeout"] == "1000"
    assert "the project's tests use 1000 ms" in CLUSTER
    assert arguments["--repl-diskless-sync-delay"] == "0"
    assert "with `repl-diskless-sync-delay 0` so that replicas are in sync at once" in CLUSTER


def test_the_page_is_linked_from_the_readme_and_the_operations_guide() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    operations = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    assert "docs/cluster.md" in readme
    assert "docs/cluster.md" in operations
