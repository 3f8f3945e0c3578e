"""Cursors and the merge of per-shard pages (`paging.py`), without Redis: a simulated set of sources, each
answering as `inspect_range.lua` does (entries after the cursor's place, by rank, up to a budget)."""

from __future__ import annotations

import random

import pytest

from redis_timers import paging
from redis_timers.errors import InspectionArgumentError, InvalidCursorError
from redis_timers.paging import Position, SourcePage


def entry(score: int, topic: bytes, member: bytes) -> Position:
    return Position.of(str(score), topic, member)


def source_page(entries: list[Position], after: Position | None, budget: int, keep: object) -> SourcePage[Position]:
    """What one source (its entries sorted) answers: examines up to `budget` entries after `after` and returns those
    `keep` accepts (all, or only 'running' ones), as the script does."""
    following = [position for position in sorted(entries) if after is None or position > after]
    examined = following[:budget]
    items = [(position, position) for position in examined if keep is None or position.member.startswith(b"r")]
    return SourcePage(items, examined[-1] if examined else None, exhausted=len(examined) == len(following))


def read_all(sources: list[list[Position]], limit: int, budget: int, keep: object = None) -> list[Position]:
    listed: list[Position] = []
    after = None
    for _ in range(100_000):
        pages = [source_page(entries, after, budget, keep) for entries in sources]
        items, end = paging.merge(pages, limit)
        assert len(items) <= limit
        listed.extend(items)
        if end is None:
            return listed
        assert after is None or end > after  # always moves on
        after = end
    raise AssertionError("never ended")


@pytest.mark.parametrize("seed", range(20))
def test_merged_pages_return_each_entry_once_in_order(seed: int) -> None:
    rng = random.Random(seed)
    topics = [b"jobs", b"others", b"\xc3\xa9t"]
    sources = []
    for topic in topics:
        # A timer lives in one shard: each (topic, member) in one source only.
        members = {bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3))) for _ in range(rng.randrange(0, 80))}
        shards: list[list[Position]] = [[] for _ in range(rng.choice([1, 4]))]
        for member in members:
            rng.choice(shards).append(entry(rng.randrange(5), topic, member))
        sources.extend(shards)
    every = sorted(position for entries in sources for position in entries)
    limit = rng.randrange(1, 9)

    assert read_all(sources, limit, budget=limit) == every
    running = [position for position in every if position.member.startswith(b"r")]
    assert read_all(sources, limit, budget=rng.randrange(1, 5), keep="running") == running


def test_a_page_stops_at_the_nearest_frontier_of_an_unfinished_source() -> None:
    early = SourcePage([(entry(1, b"a", b"x"), "a1")], entry(5, b"a", b"z"), exhausted=False)
    late = SourcePage([(entry(3, b"b", b"x"), "b3"), (entry(9, b"b", b"x"), "b9")], None, exhausted=True)

    items, end = paging.merge([early, late], limit=10)

    assert items == ["a1", "b3"]  # b9 is past what `early` has looked at
    assert end == entry(5, b"a", b"z")


def test_a_full_page_ends_at_its_last_item() -> None:
    only = SourcePage([(entry(n, b"a", b"m"), n) for n in range(5)], None, exhausted=True)
    items, end = paging.merge([only], limit=3)
    assert items == [0, 1, 2]
    assert end == entry(2, b"a", b"m")
    assert paging.merge([only], limit=5) == ([0, 1, 2, 3, 4], None)


def test_bounds_for_each_topic_follow_the_order_score_topic_member() -> None:
    place = entry(7, b"jobs", b"m1")
    assert place.bound_for(b"alpha") == ("gt", "7", b"")  # its score-7 entries came before
    assert place.bound_for(b"zeta") == ("ge", "7", b"")  # its score-7 entries come after
    assert place.bound_for(b"jobs") == ("after", "7", b"m1")
    assert entry(7, b"jobs", b"\xff") > entry(7, b"jobs", b"m")  # members compare as bytes


def test_cursors_round_trip_as_printable_text_and_belong_to_their_call() -> None:
    owner = paging.fingerprint("list_timers", "timers", None)
    cursor = paging.encode_cursor(owner, ["1700000000000", b"t\x00\xff", b"", 3])

    assert cursor.isascii()
    assert cursor.isprintable()
    assert " " not in cursor
    assert paging.decode_cursor(cursor, owner) == ["1700000000000", b"t\x00\xff", b"", 3]
    with pytest.raises(InvalidCursorError):
        paging.decode_cursor(cursor, paging.fingerprint("list_timers", "timers", "jobs"))
    for garbage in ("", "x", cursor[:-2], "W10", 5, None):
        with pytest.raises(InvalidCursorError):
            paging.decode_cursor(garbage, owner)


@pytest.mark.parametrize("limit", [0, -3, 1001, 1.0, True, "5", None])
def test_limits_outside_1_to_1000_are_refused(limit: object) -> None:
    with pytest.raises(InspectionArgumentError):
        paging.check_limit(limit)
    assert paging.check_limit(1) == 1
    assert paging.check_limit(1000) == 1000
