"""legacy.import_legacy: moving the seed's `topic--id` timers (whole-second scores) to the hash-tagged keys."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

from redis_timers import legacy, scripts
from redis_timers.errors import HandlerRegistrationError
from redis_timers.keys import Namespace
from redis_timers.ops import Command, ScriptCall
from redis_timers.registry import HandlerRegistry
from redis_timers.router import Router
from redis_timers.settings import TimersSettings
from tests.unit.support import (
    Order,
    assert_single_slot,
    encode,
    handle_order,
    legacy_page,
    make_registry,
    nothing_to_import,
    run_flow,
)

NAMESPACE = Namespace("timers")
KEYSPACE = NAMESPACE.keyspaces[0]
REGISTRY = make_registry()
SETTINGS = TimersSettings()
ORDER_KEYS = ("{timers}:timeline:orders", "{timers}:payloads:orders", "{timers}:state:orders")
REMINDER_KEYS = ("{timers}:timeline:reminders", "{timers}:payloads:reminders", "{timers}:state:reminders")
BATCH = legacy.LEGACY_BATCH

ORDER_IMPORT_KEYS = (*ORDER_KEYS, "{timers}:legacy:orders", "{timers}:heads")
REMINDER_IMPORT_KEYS = (*REMINDER_KEYS, "{timers}:legacy:reminders", "{timers}:heads")
NO_RECEIPTS: list[Any] = [[b"0"], [b"0"]]
"""Replies to the receipts pages of the two topics (orders, reminders) when nothing was imported before."""

BYTES_OR_STR = pytest.mark.parametrize("as_bytes", [False, True], ids=["decoded", "raw-bytes"])


def read(offset: int) -> ScriptCall:
    return ScriptCall(scripts.READ_LEGACY, ("timers_timeline",), (offset, offset + BATCH - 1, "--", *REGISTRY.topics))


def receipts(topic: str, cursor: str = "0") -> ScriptCall:
    return ScriptCall(
        scripts.LEGACY_RECEIPTS, (f"{{timers}}:timeline:{topic}", f"{{timers}}:legacy:{topic}"), (cursor, "0")
    )


def flat(pairs: list[tuple[str, str]]) -> list[str]:
    return [item for pair in pairs for item in pair]


def test_nothing_to_import() -> None:
    ops, imported = run_flow(legacy.import_legacy(NAMESPACE, REGISTRY, SETTINGS), [legacy_page([]), *NO_RECEIPTS])

    assert ops == [read(0), receipts("orders"), receipts("reminders")]
    assert imported == 0


@BYTES_OR_STR
def test_imports_handled_topics_and_leaves_the_rest(as_bytes: bool) -> None:
    members = [
        ("orders--1", "1700000000"),
        ("reminders--r--with--separators", "1700000001"),
        ("invoices--9", "1700000002"),  # no handler here: left for an instance that has one
        ("orders--2", "1700000003.5"),
        ("no-separator", "1700000004"),
        ("orders--", "1700000005"),  # empty id
        ("orders--3", "1700000006"),  # payload gone
    ]
    bodies = ['{"order_id":1}', '{"text":"r"}', "{}", '{"order_id":2}', "{}", "{}", None]
    handled = [0, 1, 3, 6]  # the others are no handled topic's, or have no id: their payloads are never read
    replies: list[Any] = [
        encode(legacy_page(flat(members)), as_bytes),
        encode([bodies[i] for i in handled], as_bytes),
        encode([members[i][1] for i in handled], as_bytes),  # no score changed since the read
        2,  # orders imported
        1,  # reminders imported
        [encode(["orders--1", "reminders--r--with--separators", "orders--2"], as_bytes), 0],
        *NO_RECEIPTS,
    ]

    ops, imported = run_flow(legacy.import_legacy(NAMESPACE, REGISTRY, SETTINGS), replies)

    body = {text: encode(text, as_bytes) for text in bodies if text is not None}
    assert ops == [
        read(0),
        Command(("HMGET", "timers_payloads", *encode([members[i][0] for i in handled], as_bytes))),
        ScriptCall(
            scripts.LEGACY_SCORES, ("timers_timeline",), tuple(encode([members[i][0] for i in handled], as_bytes))
        ),
        ScriptCall(
            scripts.IMPORT_LEGACY,
            ORDER_IMPORT_KEYS,
            (
                "{timers}:wake:orders",
                "1",
                1_700_000_000_000,
                body['{"order_id":1}'],
                "",
                "2",
                1_700_000_003_500,
                body['{"order_id":2}'],
                "",
            ),
        ),
        ScriptCall(
            scripts.IMPORT_LEGACY,
            REMINDER_IMPORT_KEYS,
            ("{timers}:wake:reminders", "r--with--separators", 1_700_000_001_000, body['{"text":"r"}'], ""),
        ),
        ScriptCall(
            scripts.REMOVE_LEGACY,
            ("timers_timeline",),
            ("orders--1", "1700000000", "reminders--r--with--separators", "1700000001", "orders--2", "1700000003.5"),
        ),
        # The payloads stay in the original hash until their timers are done (see the receipts tests).
        receipts("orders"),
        receipts("reminders"),
    ]
    assert imported == 3
    for op in ops:
        if isinstance(op, ScriptCall) and op.script is scripts.IMPORT_LEGACY:
            assert_single_slot(op.keys, "timers")


@pytest.mark.parametrize(
    ("score", "expected_ms"),
    [
        ("0", 0),
        ("1700000000", 1_700_000_000_000),
        ("1700000000.5", 1_700_000_000_500),
        ("1700000000.123", 1_700_000_000_123),
        ("1700000000.0001", 1_700_000_000_001),  # a fraction of a ms rounds up, never down
        ("1700000000.9999", 1_700_000_001_000),
        ("1.7e9", 1_700_000_000_000),
    ],
)
def test_seconds_become_milliseconds_rounded_up(score: str, expected_ms: int) -> None:
    flow = legacy.import_legacy(NAMESPACE, REGISTRY, SETTINGS)
    next(flow)
    flow.send(legacy_page(["orders--1", score]))
    flow.send(['{"order_id":1}'])

    call = flow.send([score])

    assert isinstance(call, ScriptCall)
    assert call.script is scripts.IMPORT_LEGACY
    assert call.args[2] == expected_ms


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(
    seconds=st.integers(min_value=0, max_value=4_102_444_800),
    fraction=st.integers(min_value=0, max_value=999_999),
)
def test_imported_due_times_are_never_early(seconds: int, fraction: int) -> None:
    score = f"{seconds}.{fraction:06d}"
    flow = legacy.import_legacy(NAMESPACE, REGISTRY, SETTINGS)
    next(flow)
    flow.send(legacy_page(["orders--1", score]))
    flow.send(['{"order_id":1}'])

    call = flow.send([score])

    assert isinstance(call, ScriptCall)
    milliseconds = call.args[2]
    assert isinstance(milliseconds, int)
    exact_microseconds = seconds * 1_000_000 + fraction
    assert milliseconds * 1000 >= exact_microseconds


def test_nothing_handled_in_a_full_batch_moves_the_offset_past_it() -> None:
    members = [(f"invoices--{n}", str(n)) for n in range(BATCH)]
    flow = legacy.import_legacy(NAMESPACE, REGISTRY, SETTINGS)

    ops, imported = run_flow(flow, [legacy_page(flat(members)), legacy_page([]), *NO_RECEIPTS])

    # Their payloads are not read: a worker may share the original keys with many timers of other topics.
    assert ops[:2] == [read(0), read(BATCH)]
    assert imported == 0


def test_members_changed_since_the_read_stay_behind_and_are_stepped_over() -> None:
    # One unknown-topic member, then orders; a seed process rescheduled orders--7 after the read.
    members = [("invoices--0", "1")] + [(f"orders--{n}", str(n)) for n in range(1, BATCH)]
    moved = [m for m, _ in members[1:]]
    removed = [m for m in moved if m != "orders--7"]
    flow = legacy.import_legacy(NAMESPACE, REGISTRY, SETTINGS)

    ops, imported = run_flow(
        flow,
        [
            legacy_page(flat(members)),
            ['{"order_id":1}'] * len(moved),
            [s for _, s in members[1:]],
            len(moved),
            [removed, 1],  # orders--7 is still on the timeline
            legacy_page([]),
            *NO_RECEIPTS,
        ],
    )

    assert [type(op).__name__ for op in ops] == [
        "ScriptCall",  # read
        "Command",  # HMGET
        "ScriptCall",  # the scores again
        "ScriptCall",  # import orders
        "ScriptCall",  # remove unchanged
        "ScriptCall",  # read the next batch
        "ScriptCall",  # receipts of orders
        "ScriptCall",  # receipts of reminders
    ]
    remove = ops[4]
    assert isinstance(remove, ScriptCall)
    assert remove.script is scripts.REMOVE_LEGACY
    assert len(remove.args) == 2 * len(moved)
    # The unknown member and the changed one are still in front: the next read skips both.
    assert ops[5] == read(2)
    assert imported == len(moved)


def test_members_cancelled_since_the_read_are_not_stepped_over() -> None:
    """A member deleted by a process of the original library is no longer in front of the next page."""
    members = [(f"orders--{n}", "1") for n in range(BATCH)]
    flow = legacy.import_legacy(NAMESPACE, REGISTRY, SETTINGS)

    ops, _ = run_flow(
        flow,
        [
            legacy_page(flat(members)),
            [None] + ['{"order_id":1}'] * (BATCH - 1),
            [""] + ["1"] * (BATCH - 1),  # orders--0 was cancelled before the payloads were read
            BATCH - 1,
            [[m for m, _ in members[2:]], 0],  # orders--1 was cancelled before the removal
            legacy_page([]),
            *NO_RECEIPTS,
        ],
    )

    assert ops[5] == read(0)


def test_the_original_payloads_are_never_deleted_by_the_import_itself() -> None:
    ops, imported = run_flow(
        legacy.import_legacy(NAMESPACE, REGISTRY, SETTINGS),
        [legacy_page(["orders--1", "5"]), ['{"order_id":1}'], ["5"], 1, [["orders--1"], 0], *NO_RECEIPTS],
    )

    assert [op for op in ops if isinstance(op, Command) and op.args[0] == "HDEL"] == []
    assert imported == 1


def test_uses_the_configured_legacy_keys_and_separator() -> None:
    settings = TimersSettings(timeline_key="old:tl", payloads_key="old:pl", separator="::")
    registry = make_registry(separator="::")

    ops, imported = run_flow(
        legacy.import_legacy(Namespace("ns"), registry, settings),
        [
            legacy_page(["orders::1", "2", "orders--2", "3"], separator="::"),
            ['{"order_id":1}'],
            ["2"],
            1,
            [["orders::1"], 0],
            *NO_RECEIPTS,
        ],
    )

    assert ops[0] == ScriptCall(scripts.READ_LEGACY, ("old:tl",), (0, BATCH - 1, "::", *registry.topics))
    assert ops[1] == Command(("HMGET", "old:pl", "orders::1"))
    assert ops[2] == ScriptCall(scripts.LEGACY_SCORES, ("old:tl",), ("orders::1",))
    assert ops[3] == ScriptCall(
        scripts.IMPORT_LEGACY,
        ("{ns}:timeline:orders", "{ns}:payloads:orders", "{ns}:state:orders", "{ns}:legacy:orders", "{ns}:heads"),
        ("{ns}:wake:orders", "1", 2000, '{"order_id":1}', ""),
    )
    assert ops[4] == ScriptCall(scripts.REMOVE_LEGACY, ("old:tl",), ("orders::1", "2"))
    assert imported == 1


def test_a_topic_ending_with_part_of_the_separator_is_refused() -> None:
    """`orders-` + `--` + `1` reads as topic `orders`, id `-1`: such topics can't be told apart, so they're refused."""
    router = Router()
    router.handler(topic="orders-", schema=Order)(handle_order)
    registry = HandlerRegistry(separator="--", accepts_async=False, front_end="unit-test")

    with pytest.raises(HandlerRegistrationError, match="separator"):
        registry.include(router)
    assert len(registry) == 0


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def test_entries_that_cannot_be_imported_are_skipped_with_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    long_id = "x" * 1025
    members: list[Any] = [
        b"orders--\xff\xfe",  # an id that is not UTF-8
        b"orders--" + long_id.encode(),  # over the 1,024-byte limit
        b"orders--inf",
        b"orders---inf",
        b"orders--nan",
        b"orders--far",
        b"\xff--1",  # a topic that is not text: nobody's, left alone without a word
        b"orders--good",
    ]
    scores: list[Any] = [b"1", b"2", b"inf", b"-inf", b"1e300", b"nan", b"3", b"4"]
    replies: list[Any] = [
        legacy_page([item for pair in zip(members, scores) for item in pair]),
        [b'{"order_id":1}'],
        [b"4"],
        1,
        [[b"orders--good"], 0],
        *NO_RECEIPTS,
    ]

    with caplog.at_level(logging.WARNING, logger="redis_timers"):
        ops, imported = run_flow(legacy.import_legacy(NAMESPACE, REGISTRY, SETTINGS), replies)

    assert imported == 1
    assert ops[1] == Command(("HMGET", "timers_payloads", b"orders--good"))
    assert ops[3] == ScriptCall(
        scripts.IMPORT_LEGACY, ORDER_IMPORT_KEYS, ("{timers}:wake:orders", "good", 4000, b'{"order_id":1}', "")
    )
    assert ops[4] == ScriptCall(scripts.REMOVE_LEGACY, ("timers_timeline",), ("orders--good", "4"))
    [record] = caplog.records
    message = record.getMessage()
    assert record.levelno == logging.WARNING
    assert message.startswith("6 timer(s) in 'timers_timeline' of topics this worker handles cannot be imported")
    for reason in ("not UTF-8", "1024", "not a finite number", "beyond the year 9999"):
        assert reason in message
    assert message.endswith("; ...")  # five examples, then the rest is counted only


def test_a_timer_rescheduled_between_the_read_and_its_payload_is_left_for_the_next_pass() -> None:
    """A seed write between reading the timeline and the payloads pairs a new payload with another due time."""
    flow = legacy.import_legacy(NAMESPACE, REGISTRY, SETTINGS)

    ops, imported = run_flow(
        flow,
        [
            legacy_page(["orders--1", "5", "orders--2", "6"]),
            ['{"order_id":1}', '{"order_id":2}'],
            ["3605", "6"],  # orders--1 was rescheduled after the read
            1,
            [["orders--2"], 0],
            *NO_RECEIPTS,
        ],
    )

    assert ops[3] == ScriptCall(
        scripts.IMPORT_LEGACY, ORDER_IMPORT_KEYS, ("{timers}:wake:orders", "2", 6000, '{"order_id":2}', "")
    )
    assert ops[4] == ScriptCall(scripts.REMOVE_LEGACY, ("timers_timeline",), ("orders--2", "6"))
    assert imported == 1


@pytest.mark.parametrize("score", ["inf", "-inf", "nan", "+inf", "1e309", "", "abc"])
def test_a_score_that_is_no_time_is_refused(score: str) -> None:
    assert isinstance(legacy.legacy_entry("orders--1", score, REGISTRY, "--"), str)


def test_legacy_entries_of_handled_topics_parse_and_others_are_none() -> None:
    assert legacy.legacy_entry("orders--a--b", "1.0005", REGISTRY, "--") == ("orders", "a--b", 1001)
    assert legacy.legacy_entry(b"orders--\xc3\xa9", b"-1", REGISTRY, "--") == ("orders", "é", -1000)
    assert legacy.legacy_entry("invoices--1", "1", REGISTRY, "--") is None
    assert legacy.legacy_entry("orders", "1", REGISTRY, "--") is None
    assert legacy.legacy_entry(b"\xff--1", "1", REGISTRY, "--") is None


def test_receipts_say_what_the_original_library_did_since_the_import(caplog: pytest.LogCaptureFixture) -> None:
    bodies = {name: f'{{"order_id":{n}}}' for n, name in enumerate("abcde")}
    page: list[Any] = [b"0"]
    for n, (name, alive) in enumerate(zip("abcde", (1, 0, 1, 1, 1))):
        page += [name.encode(), f"{n}000:{sha1(bodies[name])}".encode(), alive]
    members = [f"orders--{name}" for name in "abcde"]
    copies = [
        1,  # a: back on the original timeline (rescheduled): the timeline's pass imports it
        1,  # b: unchanged and done under the new keys: receipt and copy go
        0,  # c: both entries gone: cancelled by a process of the original library
        b'{"order_id":99}',  # d: rewritten while it was imported: imported again, while its receipt holds
        1,  # e: unchanged, still scheduled: nothing
    ]
    replies: list[Any] = [
        legacy_page([]),
        page,
        copies,
        [b"1000", b"", b"", b"", b""],
        1,
        [b"b", b"c"],
        1,
        [b"0"],
    ]

    with caplog.at_level(logging.INFO, logger="redis_timers"):
        ops, imported = run_flow(legacy.import_legacy(NAMESPACE, REGISTRY, SETTINGS), replies)

    assert ops[1:] == [
        receipts("orders"),
        # The copies before the timeline, and only their SHA1s go and come back, unless a copy changed.
        ScriptCall(
            scripts.LEGACY_COPIES,
            ("timers_payloads",),
            tuple(item for n, name in enumerate("abcde") for item in (members[n], sha1(bodies[name]))),
        ),
        ScriptCall(scripts.LEGACY_SCORES, ("timers_timeline",), tuple(members)),
        ScriptCall(
            scripts.IMPORT_LEGACY,
            ORDER_IMPORT_KEYS,
            ("{timers}:wake:orders", "d", 3000, b'{"order_id":99}', f"3000:{sha1(bodies['d'])}"),
        ),
        ScriptCall(
            scripts.SETTLE_LEGACY,
            ORDER_IMPORT_KEYS,
            ("d", "b", f"1000:{sha1(bodies['b'])}", "c", "c", f"2000:{sha1(bodies['c'])}"),
        ),
        ScriptCall(scripts.REMOVE_LEGACY_PAYLOADS, ("timers_payloads",), ("orders--b", sha1(bodies["b"]))),
        receipts("reminders"),
    ]
    assert imported == 1
    assert any("removed 1 timer(s) of 'orders' cancelled" in record.getMessage() for record in caplog.records)


def test_receipts_are_read_page_by_page() -> None:
    replies: list[Any] = [legacy_page([]), [b"17"], [b"0"], [b"0"]]

    ops, _ = run_flow(legacy.import_legacy(NAMESPACE, REGISTRY, SETTINGS), replies)

    assert ops[1:] == [receipts("orders"), receipts("orders", "17"), receipts("reminders")]


@pytest.mark.parametrize("shards", [1, 4, 16])
def test_an_import_pass_with_nothing_to_do_costs_one_call_and_one_per_topic_and_shard(shards: int) -> None:
    namespace = Namespace("timers", shards)
    replies: list[Any] = [legacy_page([])] + [[b"0"]] * (shards * len(REGISTRY.topics))
    ops, imported = run_flow(legacy.import_legacy(namespace, REGISTRY, SETTINGS), replies)
    assert imported == 0
    assert len(ops) == 1 + shards * len(REGISTRY.topics)
    assert {op.keys[1] for op in ops[1:] if isinstance(op, ScriptCall)} == {
        keyspace.legacy_receipts(topic) for keyspace in namespace.keyspaces for topic in REGISTRY.topics
    }
    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8").split())
    assert (
        "A pass of the import is steps of one page each (of the original timeline, or of one topic's receipts in "
        "one shard), and the worker makes the round trips it needs between two steps, so firing never waits for "
        "a whole pass."
    ) in readme


def test_a_pass_is_steps_of_at_most_one_page_that_is_not_empty() -> None:
    """A worker's round trips go between the steps (see tests/unit/test_engine.py): none holds two pages."""
    namespace = Namespace("timers", 16)
    job = legacy.LegacyImport(namespace, REGISTRY, SETTINGS)
    steps = []
    while (step := job.next_step()) is not None:
        ops, _ = nothing_to_import(step)
        steps.append(len(ops))
    assert job.over
    assert sum(steps) == 1 + 16 * len(REGISTRY.topics)
    assert max(steps) <= legacy.STEP_CALLS


def test_a_page_is_read_with_the_handled_topics_and_the_separator() -> None:
    """The server filters the page (docs/protocol.md): the call names what a handled topic's member looks like."""
    protocol = " ".join((Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text("utf-8").split())
    ops, _ = run_flow(legacy.import_legacy(NAMESPACE, REGISTRY, SETTINGS), [legacy_page([]), *NO_RECEIPTS])

    assert ops[0] == ScriptCall(scripts.READ_LEGACY, ("timers_timeline",), (0, BATCH - 1, "--", "orders", "reminders"))
    assert "answers with the page's size and only the entries of those topics" in protocol
