"""The inspection flows driven by hand (no Redis): what each sends to which shard, and how it reads the replies."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from redis_timers import inspect, paging, scripts
from redis_timers.errors import InspectionArgumentError, InvalidCursorError, InvalidTopicError, NaiveDatetimeError
from redis_timers.keys import Namespace
from redis_timers.ops import Command, ScriptCall
from redis_timers.settings import TimersSettings
from redis_timers.slots import key_slot
from tests.unit.support import make_registry, run_flow

NAMESPACE = Namespace("timers", 4)
SETTINGS = TimersSettings(shards=4)
EMPTY = make_registry(empty=True)


def scan_reply(cursor: str, node: bytes, *keys: str) -> list[bytes]:
    return [cursor.encode(), node, *(key.encode() for key in keys)]


def test_topics_reads_each_node_once_and_only_the_namespaces_timelines() -> None:
    tags = [keyspace.tag for keyspace in NAMESPACE.keyspaces]
    replies = [
        scan_reply("17", b"node-a", f"{tags[0]}:timeline:jobs", f"{tags[2]}:timeline:a*b"),
        scan_reply("0", b"node-a", "{timers:other}:timeline:not-ours", f"{tags[1]}:payloads:jobs"),
        scan_reply("0", b"node-a"),  # shard 1: the same node, read already
        scan_reply("0", b"node-b", f"{tags[2]}:timeline:zeta"),
        scan_reply("5", b"node-a"),  # shard 3: node-a again
    ]

    ops, found = run_flow(inspect.topics(NAMESPACE, EMPTY), replies)

    assert found == ["a*b", "jobs", "zeta"]
    assert all(isinstance(op, ScriptCall) and op.script is scripts.INSPECT_SCAN for op in ops)
    assert [op.keys for op in ops if isinstance(op, ScriptCall)] == [
        (f"{tags[0]}:dead",),
        (f"{tags[0]}:dead",),
        (f"{tags[1]}:dead",),
        (f"{tags[2]}:dead",),
        (f"{tags[3]}:dead",),
    ]
    assert isinstance(ops[0], ScriptCall)
    assert ops[0].args == ("keys", "0", "{timers:*}:timeline:*", 1000)
    assert isinstance(ops[1], ScriptCall)
    assert ops[1].args[1] == "17"


def test_one_shard_scans_its_own_tag_with_glob_characters_escaped() -> None:
    ops, _ = run_flow(inspect.topics(Namespace("a*[b]", 1), EMPTY), [scan_reply("0", b"n")])
    assert isinstance(ops[0], ScriptCall)
    assert ops[0].args[2] == "{a\\*\\[b\\]}:timeline:*"


def test_count_timers_of_one_topic_is_one_call_per_shard_on_that_shards_keys() -> None:
    after = datetime.datetime(2100, 1, 1, tzinfo=datetime.timezone.utc)
    replies = [[b"1", [3, 0, 0, 0, 0, b"", b""]] for _ in range(4)]

    ops, total = run_flow(inspect.count_timers(NAMESPACE, EMPTY, SETTINGS, "jobs", after, None), replies)

    assert total == 12
    for op, keyspace in zip(ops, NAMESPACE.keyspaces):
        assert isinstance(op, ScriptCall)
        assert op.script is scripts.INSPECT_COUNTS
        assert op.keys == (keyspace.timeline("jobs"),)
        assert op.args[:2] == ("4102444800000", "+inf")


def test_a_list_page_calls_every_shard_once_and_merges_by_due_time() -> None:
    def row(*entries: tuple[bytes, bytes]) -> list[object]:
        flat: list[object] = [1, entries[-1][1] if entries else b"", entries[-1][0] if entries else b"", b""]
        for timer_id, score in entries:
            flat += [timer_id, score, b"0", b"", b'{"n":1}', None]
        return flat

    replies = [
        [b"100", row((b"b", b"300"))],
        [b"100", row((b"a", b"200"), (b"c", b"400"))],
        [b"100", row()],
        [b"100", row((b"d", b"100"))],
    ]
    ops, page = run_flow(inspect.list_timers(NAMESPACE, EMPTY, SETTINGS, "jobs", None, None, 3, None), replies)

    assert [timer.timer_id for timer in page.items] == ["d", "a", "b"]
    assert page.cursor is not None
    for op in ops:
        assert isinstance(op, ScriptCall)
        assert op.script is scripts.INSPECT_RANGE
        assert len({key_slot(key) for key in op.keys}) == 1
        assert op.args[:5] == ("all", 3, 3, "-inf", "+inf")

    ops, page = run_flow(
        inspect.list_timers(NAMESPACE, EMPTY, SETTINGS, "jobs", None, None, 3, page.cursor),
        [[b"100", row()], [b"100", row((b"c", b"400"))], [b"100", row()], [b"100", row()]],
    )
    assert [op.args[5:] for op in ops if isinstance(op, ScriptCall)] == [("after", "300", b"b")] * 4
    assert [timer.timer_id for timer in page.items] == ["c"]
    assert page.cursor is None


def test_a_running_entry_shows_its_runs_due_time_and_lease() -> None:
    timer = inspect.scheduled_timer("jobs", b"t", b"5000", b"2", b"17.3.1234", b"{}", b"boom", now_ms=4000)
    assert (timer.running, timer.attempts, timer.last_error) == (True, 2, "boom")
    assert timer.due_at == datetime.datetime(1970, 1, 1, 0, 0, 1, 234000, tzinfo=datetime.timezone.utc)
    assert timer.lease_expires_at == datetime.datetime(1970, 1, 1, 0, 0, 5, tzinfo=datetime.timezone.utc)
    ran_out = inspect.scheduled_timer("jobs", b"t", b"3000", b"2", b"17.3.1234", b"{}", None, now_ms=4000)
    assert (ran_out.running, ran_out.lease_expires_at) == (False, None)


def test_a_dead_letter_page_resumes_inside_an_hscan_page() -> None:
    def letters(*names: str) -> list[bytes]:
        reply: list[bytes] = []
        for name in names:
            reply += [f"jobs\0{name}".encode(), b'{"payload": "{}", "attempts": 1, "error": "E", "failed_at": 5}']
        return reply

    first_ops, first = run_flow(
        inspect.dead_letter_page(NAMESPACE, SETTINGS, None, 2, None), [[b"9", *letters("a", "b", "c")]]
    )
    assert [letter.timer_id for letter in first.items] == ["a", "b"]
    ops, second = run_flow(
        inspect.dead_letter_page(NAMESPACE, SETTINGS, None, 2, first.cursor),
        [[b"9", *letters("a", "b", "c")], [b"0", *letters("d")]],
    )
    assert [letter.timer_id for letter in second.items] == ["c", "d"]
    assert [op.args[1] for op in ops if isinstance(op, ScriptCall)] == ["0", "9"]
    assert isinstance(first_ops[0], ScriptCall)
    assert first_ops[0].args == ("hash", "0", "*", 2)


def test_counting_all_dead_letters_is_one_hlen_per_shard() -> None:
    ops, total = run_flow(inspect.count_dead_letters(NAMESPACE, SETTINGS, None), [1, 2, 3, 4])
    assert total == 10
    assert ops == [Command(("HLEN", keyspace.dead_letters)) for keyspace in NAMESPACE.keyspaces]


def test_bad_arguments_raise_before_anything_is_sent() -> None:
    naive = datetime.datetime(2100, 1, 1)
    cases = [
        (inspect.list_timers(NAMESPACE, EMPTY, SETTINGS, None, naive, None, 5, None), NaiveDatetimeError),
        (inspect.list_timers(NAMESPACE, EMPTY, SETTINGS, "a b", None, None, 5, None), InvalidTopicError),
        (inspect.running_timers(NAMESPACE, EMPTY, SETTINGS, None, 0, None), InspectionArgumentError),
        (
            inspect.due_histogram(NAMESPACE, EMPTY, SETTINGS, datetime.timedelta(hours=1), 2_000, None),
            InspectionArgumentError,
        ),
        (
            inspect.due_histogram(NAMESPACE, EMPTY, SETTINGS, datetime.timedelta(milliseconds=3), 4, None),
            InspectionArgumentError,
        ),
        (inspect.stats(NAMESPACE, EMPTY, SETTINGS, "1s"), InspectionArgumentError),  # type: ignore[arg-type]
    ]
    for flow, error in cases:
        with pytest.raises(error):
            next(flow)


@pytest.mark.parametrize("score", ["abc", "nan", "inf", "-inf", "1e999", "", "1 2", "0x10"])
def test_a_cursor_edited_to_hold_a_score_that_is_not_a_number_is_refused_before_anything_is_sent(score: str) -> None:
    # The fingerprint is no secret: anyone can decode a cursor, change its score and encode it again.
    owner = paging.fingerprint("list_timers", NAMESPACE, "jobs", "-inf", "+inf")
    forged = paging.encode_cursor(owner, [score, b"jobs", b"j1"])
    with pytest.raises(InvalidCursorError):
        run_flow(inspect.list_timers(NAMESPACE, EMPTY, SETTINGS, "jobs", None, None, 3, forged), [])


def test_with_thousands_of_topics_no_call_reads_more_than_its_bound() -> None:
    """5,000 topics in one shard: the shard's topics are split over calls, each bounded (as docs/operations.md says),
    instead of one script call doing O(topics x limit) work while the server waits."""
    namespace = Namespace("timers", 1)
    tag = namespace.keyspaces[0].tag
    names = [f"topic-{n}" for n in range(5_000)]
    keys_per_call: dict[str, list[int]] = {}

    def answer(op: object) -> object:
        assert isinstance(op, ScriptCall)
        if op.script is scripts.INSPECT_SCAN and op.args[0] == "hash":
            return [b"0"]  # no dead letters
        if op.script is scripts.INSPECT_SCAN:
            return scan_reply("0", b"node", *(f"{tag}:timeline:{name}" for name in names))
        if op.script is scripts.INSPECT_COUNTS:
            keys_per_call.setdefault(str(op.args[3]), []).append(len(op.keys))
            return [b"1", *([0, 0, 0, 0, 0, b"", b"", *[0] * int(op.args[3])] for _ in op.keys)]
        assert op.script is scripts.INSPECT_RANGE
        keys_per_call.setdefault("range " + str(op.args[1]), []).append(len(op.keys) // 3)  # by budget
        return [b"1", *([1, b"", b"", b""] for _ in range(len(op.keys) // 3))]

    def drive(flow: Any) -> Any:
        reply = None
        while True:
            try:
                op = flow.send(reply)
            except StopIteration as done:
                return done.value
            reply = answer(op)

    settings = TimersSettings()
    assert drive(inspect.count_timers(namespace, EMPTY, settings, None, None, None)) == 0
    assert drive(inspect.list_timers(namespace, EMPTY, settings, None, None, None, 100, None)).items == []
    assert drive(inspect.running_timers(namespace, EMPTY, settings, None, 10, None)).items == []
    assert drive(inspect.due_histogram(namespace, EMPTY, settings, datetime.timedelta(hours=1), 24, None)).overdue == 0
    assert len(drive(inspect.stats(namespace, EMPTY, settings, datetime.timedelta(seconds=1))).topics) == 5_000

    assert sum(keys_per_call["0"]) == 2 * 5_000  # count_timers and stats: every topic counted once each
    # docs/operations.md: at most 2,000 ZCOUNT-like commands, or 2,000 timeline entries, per script call.
    assert max(keys_per_call["0"]) * 9 <= 2_000
    assert max(keys_per_call["24"]) * (9 + 24) <= 2_000
    assert max(keys_per_call["range 100"]) * 100 <= 2_000
    assert max(keys_per_call["range 1000"]) * 1_000 <= 2_000
