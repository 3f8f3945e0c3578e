"""import_legacy: moving the seed's `topic--id` timers (whole-second scores) to the hash-tagged keys."""

from __future__ import annotations

from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

from redis_timers import flows, scripts
from redis_timers.errors import HandlerRegistrationError
from redis_timers.keys import Keyspace
from redis_timers.ops import Command, ScriptCall
from redis_timers.registry import HandlerRegistry
from redis_timers.router import Router
from redis_timers.settings import TimersSettings
from tests.unit.support import Order, assert_single_slot, encode, handle_order, make_registry, run_flow

KEYSPACE = Keyspace("timers")
REGISTRY = make_registry()
SETTINGS = TimersSettings()
ORDER_KEYS = ("{timers}:timeline:orders", "{timers}:payloads:orders", "{timers}:state:orders")
REMINDER_KEYS = ("{timers}:timeline:reminders", "{timers}:payloads:reminders", "{timers}:state:reminders")
BATCH = flows.LEGACY_BATCH

BYTES_OR_STR = pytest.mark.parametrize("as_bytes", [False, True], ids=["decoded", "raw-bytes"])


def read(offset: int) -> ScriptCall:
    return ScriptCall(scripts.READ_LEGACY, ("timers_timeline",), (offset, offset + BATCH - 1))


def flat(pairs: list[tuple[str, str]]) -> list[str]:
    return [item for pair in pairs for item in pair]


def test_nothing_to_import() -> None:
    ops, imported = run_flow(flows.import_legacy(KEYSPACE, REGISTRY, SETTINGS), [[]])

    assert ops == [read(0)]
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
    replies: list[Any] = [
        encode(flat(members), as_bytes),
        encode(bodies, as_bytes),
        2,  # orders imported
        1,  # reminders imported
        encode(["orders--1", "reminders--r--with--separators", "orders--2"], as_bytes),
        3,  # HDEL
    ]

    ops, imported = run_flow(flows.import_legacy(KEYSPACE, REGISTRY, SETTINGS), replies)

    body = {text: encode(text, as_bytes) for text in bodies if text is not None}
    assert ops == [
        read(0),
        Command(("HMGET", "timers_payloads", *[member for member, _ in members])),
        ScriptCall(
            scripts.IMPORT_LEGACY,
            ORDER_KEYS,
            (
                "{timers}:wake:orders",
                "1",
                1_700_000_000_000,
                body['{"order_id":1}'],
                "2",
                1_700_000_003_500,
                body['{"order_id":2}'],
            ),
        ),
        ScriptCall(
            scripts.IMPORT_LEGACY,
            REMINDER_KEYS,
            ("{timers}:wake:reminders", "r--with--separators", 1_700_000_001_000, body['{"text":"r"}']),
        ),
        ScriptCall(
            scripts.REMOVE_LEGACY,
            ("timers_timeline",),
            ("orders--1", "1700000000", "reminders--r--with--separators", "1700000001", "orders--2", "1700000003.5"),
        ),
        Command(
            ("HDEL", "timers_payloads", *encode(["orders--1", "reminders--r--with--separators", "orders--2"], as_bytes))
        ),
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
    flow = flows.import_legacy(KEYSPACE, REGISTRY, SETTINGS)
    next(flow)
    flow.send(["orders--1", score])

    call = flow.send(['{"order_id":1}'])

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
    flow = flows.import_legacy(KEYSPACE, REGISTRY, SETTINGS)
    next(flow)
    flow.send(["orders--1", score])

    call = flow.send(['{"order_id":1}'])

    assert isinstance(call, ScriptCall)
    milliseconds = call.args[2]
    assert isinstance(milliseconds, int)
    exact_microseconds = seconds * 1_000_000 + fraction
    assert milliseconds * 1000 >= exact_microseconds


def test_nothing_handled_in_a_full_batch_moves_the_offset_past_it() -> None:
    members = [(f"invoices--{n}", str(n)) for n in range(BATCH)]
    flow = flows.import_legacy(KEYSPACE, REGISTRY, SETTINGS)

    ops, imported = run_flow(flow, [flat(members), ["{}"] * BATCH, []])

    assert ops == [read(0), Command(("HMGET", "timers_payloads", *[m for m, _ in members])), read(BATCH)]
    assert imported == 0


def test_members_changed_since_the_read_stay_behind_and_are_stepped_over() -> None:
    # One unknown-topic member, then orders; a seed process rescheduled orders--7 after the read.
    members = [("invoices--0", "1")] + [(f"orders--{n}", str(n)) for n in range(1, BATCH)]
    moved = [m for m, _ in members[1:]]
    removed = [m for m in moved if m != "orders--7"]
    flow = flows.import_legacy(KEYSPACE, REGISTRY, SETTINGS)

    ops, imported = run_flow(
        flow,
        [flat(members), ['{"order_id":1}'] * BATCH, len(moved), removed, len(removed), []],
    )

    assert [type(op).__name__ for op in ops] == [
        "ScriptCall",  # read
        "Command",  # HMGET
        "ScriptCall",  # import orders
        "ScriptCall",  # remove unchanged
        "Command",  # HDEL removed
        "ScriptCall",  # read the next batch
    ]
    remove = ops[3]
    assert isinstance(remove, ScriptCall)
    assert remove.script is scripts.REMOVE_LEGACY
    assert len(remove.args) == 2 * len(moved)
    assert ops[4] == Command(("HDEL", "timers_payloads", *removed))
    # The unknown member and the changed one are still in front: the next read skips both.
    assert ops[5] == read(2)
    assert imported == len(moved)


def test_when_nothing_was_removed_no_hdel_is_sent() -> None:
    ops, imported = run_flow(
        flows.import_legacy(KEYSPACE, REGISTRY, SETTINGS),
        [["orders--1", "5"], ['{"order_id":1}'], 0, []],
    )

    assert [op for op in ops if isinstance(op, Command) and op.args[0] == "HDEL"] == []
    assert imported == 0


def test_uses_the_configured_legacy_keys_and_separator() -> None:
    settings = TimersSettings(timeline_key="old:tl", payloads_key="old:pl", separator="::")
    registry = make_registry(separator="::")

    ops, imported = run_flow(
        flows.import_legacy(Keyspace("ns"), registry, settings),
        [["orders::1", "2", "orders--2", "3"], ['{"order_id":1}', '{"order_id":2}'], 1, ["orders::1"], 1],
    )

    assert ops[0] == ScriptCall(scripts.READ_LEGACY, ("old:tl",), (0, BATCH - 1))
    assert ops[1] == Command(("HMGET", "old:pl", "orders::1", "orders--2"))
    assert ops[2] == ScriptCall(
        scripts.IMPORT_LEGACY,
        ("{ns}:timeline:orders", "{ns}:payloads:orders", "{ns}:state:orders"),
        ("{ns}:wake:orders", "1", 2000, '{"order_id":1}'),
    )
    assert ops[3] == ScriptCall(scripts.REMOVE_LEGACY, ("old:tl",), ("orders::1", "2"))
    assert ops[4] == Command(("HDEL", "old:pl", "orders::1"))
    assert imported == 1


def test_a_topic_ending_with_part_of_the_separator_is_refused() -> None:
    """`orders-` + `--` + `1` reads as topic `orders`, id `-1`: such topics can't be told apart, so they're refused."""
    router = Router()
    router.handler(topic="orders-", schema=Order)(handle_order)
    registry = HandlerRegistry(separator="--", accepts_async=False, front_end="unit-test")

    with pytest.raises(HandlerRegistrationError, match="separator"):
        registry.include(router)
    assert len(registry) == 0
