"""The public flows over a namespace of several shards, driven by hand: which shard each call goes to, what the
cross-shard flows send and merge, the legacy import per shard, and the shard-count check (`layout.py`)."""

from __future__ import annotations

import datetime
import json
import random
import zlib
from pathlib import Path
from typing import Any

import pytest

from redis_timers import flows, layout, legacy, scripts, seed
from redis_timers.engine import Cycle, Maintain, Wait, WorkerEngine
from redis_timers.errors import InvalidTimerIdError, ShardLayoutError, TimersConnectionError
from redis_timers.keys import Keyspace, Namespace
from redis_timers.ops import Command, Flow, NodeOf, OneConnection, ScriptCall
from redis_timers.settings import TimersSettings
from redis_timers.slots import key_slot
from tests.unit.support import Order, legacy_page, make_registry, run_flow

SHARDS = 4
NAMESPACE = Namespace("timers", SHARDS)
REGISTRY = make_registry()
SETTINGS = TimersSettings(shards=SHARDS)
IDS = [f"o-{n}" for n in range(16)]
LATER = datetime.timedelta(hours=1)
PROTOCOL = " ".join((Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8").split())


def shard_keys(keys: tuple[str, ...]) -> Keyspace:
    """The one shard whose tag every key carries (so the call is single-slot)."""
    owners = [keyspace for keyspace in NAMESPACE.keyspaces if all(key.startswith(keyspace.tag + ":") for key in keys)]
    assert len(owners) == 1, keys
    assert len({key_slot(key) for key in keys}) == 1, keys
    return owners[0]


def test_the_ids_reach_every_shard() -> None:
    assert {NAMESPACE.keyspace_for("orders", timer_id).shard for timer_id in IDS} == set(range(SHARDS))


@pytest.mark.parametrize("timer_id", IDS)
def test_a_timers_shard_is_the_documented_crc(timer_id: str) -> None:
    assert "a timer's keys are those of shard CRC-32(`topic NUL id` in UTF-8) mod N" in PROTOCOL
    expected = zlib.crc32(f"orders\0{timer_id}".encode()) % SHARDS
    assert NAMESPACE.keyspace_for("orders", timer_id).tag == NAMESPACE.keyspaces[expected].tag


@pytest.mark.parametrize("timer_id", IDS)
def test_each_single_timer_flow_is_one_call_on_the_timers_shard(timer_id: str) -> None:
    own = NAMESPACE.keyspace_for("orders", timer_id)
    call = flows.set_timer_call(NAMESPACE, REGISTRY, "orders", timer_id, Order(order_id=1), LATER, None)
    assert shard_keys(call.keys) == own
    assert call.args[-1] == own.channel("orders")

    flows_to_check: list[Flow[Any]] = [
        flows.remove_timer(NAMESPACE, REGISTRY, "orders", timer_id),
        flows.get_timer(NAMESPACE, REGISTRY, "orders", timer_id),
        flows.requeue_dead_letter(NAMESPACE, SETTINGS, "orders", timer_id),
    ]
    for flow in flows_to_check:
        op = next(flow)
        assert isinstance(op, ScriptCall)
        assert shard_keys(op.keys) == own
        with pytest.raises(StopIteration):
            flow.send(1 if op.script is not scripts.GET_TIMER else None)


def test_a_durable_remove_waits_on_the_connection_of_its_shards_write() -> None:
    flow = flows.remove_timer(NAMESPACE, REGISTRY, "orders", IDS[3], durability=SETTINGS)
    asked = next(flow)
    assert asked == NodeOf(
        ScriptCall(scripts.REMOVE_TIMER, NAMESPACE.keyspace_for("orders", IDS[3]).write_keys("orders"), (IDS[3],))
    )
    op = flow.send("node-of-shard")
    assert isinstance(op, OneConnection)
    write, *waits = op.ops
    assert isinstance(write, ScriptCall)
    assert shard_keys(write.keys) == NAMESPACE.keyspace_for("orders", IDS[3])
    assert all(isinstance(wait, Command) and wait.args[0] in ("WAIT", "WAITAOF") for wait in waits)


def test_one_shard_keeps_every_call_as_it_was() -> None:
    one, keyspace = Namespace("timers"), Keyspace("timers")
    call = flows.set_timer_call(one, REGISTRY, "orders", "o-1", Order(order_id=1), LATER, None)
    assert call.keys == keyspace.write_keys("orders") == (*ORDER_KEYS_OF_ONE_SHARD, "{timers}:heads")
    assert call.args[-1] == "{timers}:wake:orders"
    ops, _ = run_flow(flows.dead_letters(one), [[]])
    assert ops == [Command(("HGETALL", "{timers}:dead"))]
    ops, _ = run_flow(flows.purge_dead_letters(one), [0])
    assert ops == [ScriptCall(scripts.PURGE_DEAD_LETTERS, ("{timers}:dead",), ())]


ORDER_KEYS_OF_ONE_SHARD = ("{timers}:timeline:orders", "{timers}:payloads:orders", "{timers}:state:orders")


def dead_record(n: int) -> str:
    return json.dumps({"payload": "{}", "attempts": 1, "error": "x", "failed_at": 1_700_000_000_000 - n})


def test_dead_letters_read_every_shard_one_call_each_and_merge_them_oldest_first() -> None:
    replies = [[f"orders\0s{shard}", dead_record(shard)] for shard in range(SHARDS)]

    ops, letters = run_flow(flows.dead_letters(NAMESPACE), replies)

    assert ops == [Command(("HGETALL", keyspace.dead_letters)) for keyspace in NAMESPACE.keyspaces]
    assert [letter.timer_id for letter in letters] == [f"s{shard}" for shard in reversed(range(SHARDS))]


def test_purge_deletes_every_shards_dead_letters_and_returns_the_sum() -> None:
    ops, purged = run_flow(flows.purge_dead_letters(NAMESPACE), [1, b"2", "0", 4])

    assert ops == [ScriptCall(scripts.PURGE_DEAD_LETTERS, (ks.dead_letters,), ()) for ks in NAMESPACE.keyspaces]
    assert purged == 7


def test_the_seed_listing_reads_each_topic_in_each_shard_and_merges_earliest_first() -> None:
    registry = make_registry()
    replies = [[f"{topic[0]}{shard}", str(100 - shard), "{}"] for topic in registry.topics for shard in range(SHARDS)]

    ops, (members, _) = run_flow(seed.fetch_all_timers(NAMESPACE, registry, SETTINGS), replies)

    assert [op.keys for op in ops if isinstance(op, ScriptCall)] == [
        keyspace.topic_keys(topic)[:2] for topic in registry.topics for keyspace in NAMESPACE.keyspaces
    ]
    assert members[:2] == ["orders--o3", "reminders--r3"]  # scored 97: the shards interleave
    assert len(members) == 2 * SHARDS


def test_the_legacy_import_writes_each_timer_into_its_shard_and_follows_receipts_per_shard() -> None:
    members = [f"orders--{timer_id}" for timer_id in IDS]
    page = [item for member in members for item in (member, "1700000000")]
    replies: list[Any] = [legacy_page(page), ["{}"] * len(IDS), ["1700000000"] * len(IDS)]
    flow = legacy.import_legacy(NAMESPACE, REGISTRY, SETTINGS)
    ops: list[Any] = []
    op = next(flow)
    try:
        while True:
            ops.append(op)
            if replies:
                reply = replies.pop(0)
            elif isinstance(op, ScriptCall) and op.script is scripts.IMPORT_LEGACY:
                reply = (len(op.args) - 1) // 4
            elif isinstance(op, ScriptCall) and op.script is scripts.REMOVE_LEGACY:
                reply = [[], 0]
            else:
                reply = [b"0"]  # a receipts page: empty
            op = flow.send(reply)
    except StopIteration as done:
        imported = done.value

    assert imported == len(IDS)
    imports = [op for op in ops if isinstance(op, ScriptCall) and op.script is scripts.IMPORT_LEGACY]
    assert len(imports) == SHARDS  # one per shard holding timers of the topic
    for call in imports:
        keyspace = shard_keys(call.keys)
        assert call.keys[3] == keyspace.legacy_receipts("orders")
        assert call.args[0] == keyspace.channel("orders")
        ids = call.args[1::4]
        assert ids
        assert all(NAMESPACE.keyspace_for("orders", str(timer_id)) == keyspace for timer_id in ids)
    # The original keys are read and written in calls of their own, never beside ours.
    for op in ops:
        keys = op.keys if isinstance(op, ScriptCall) else op.args[1:2]
        assert all(key.startswith("timers_") for key in keys) or shard_keys(tuple(keys))
    pages = [op for op in ops if isinstance(op, ScriptCall) and op.script is scripts.LEGACY_RECEIPTS]
    assert [shard_keys(op.keys) for op in pages] == [ks for _ in REGISTRY.topics for ks in NAMESPACE.keyspaces]


# -- the shard-count check ------------------------------------------------------------


def test_the_check_is_one_single_slot_call_with_the_count() -> None:
    ops, result = run_flow(layout.check_layout(NAMESPACE, REGISTRY.topics), [[0]])

    assert result == 0
    (call,) = ops
    assert isinstance(call, ScriptCall)
    assert call.script is scripts.CHECK_LAYOUT
    assert call.keys == (
        "{timers}:shards",
        "{timers}:dead",
        "{timers}:timeline:orders",
        "{timers}:timeline:reminders",
    )
    assert len({key_slot(key) for key in call.keys}) == 1
    assert call.args == (SHARDS,)
    documented = "| `check_layout` | `{timers}:shards`, then the one-shard `{timers}:dead` and `{timers}:timeline:"
    assert documented in PROTOCOL


@pytest.mark.parametrize("as_bytes", [False, True])
def test_the_check_refuses_another_recorded_count_saying_how_to_move(as_bytes: bool) -> None:
    recorded: Any = b"8" if as_bytes else "8"
    with pytest.raises(ShardLayoutError) as refused:
        run_flow(layout.check_layout(NAMESPACE, REGISTRY.topics), [[1, recorded]])

    message = str(refused.value)
    assert "namespace 'timers' records 8 shard(s) at '{timers}:shards'" in message
    assert f"this process has TIMERS_SHARDS={SHARDS}" in message
    assert "under a new namespace (TIMERS_NAMESPACE), point writers there" in message
    assert "keep workers of 'timers' running with its old count until it is drained" in message


def test_the_check_refuses_one_shard_data_naming_its_key() -> None:
    with pytest.raises(ShardLayoutError, match=r"holds data written with one shard \('\{timers\}:timeline:orders'\)"):
        run_flow(layout.check_layout(NAMESPACE, REGISTRY.topics), [[2, b"{timers}:timeline:orders"]])


def test_checked_first_runs_the_input_checks_before_the_check() -> None:
    check = layout.check_layout(NAMESPACE, REGISTRY.topics)
    with pytest.raises(InvalidTimerIdError):
        next(layout.checked_first(check, flows.get_timer(NAMESPACE, REGISTRY, "orders", "")))


def test_checked_first_sends_the_check_then_the_flows_ops() -> None:
    check = layout.check_layout(NAMESPACE, REGISTRY.topics)
    ops, purged = run_flow(layout.checked_first(check, flows.purge_dead_letters(NAMESPACE)), [[0], 1, 1, 1, 1])

    assert [getattr(op, "script", None) for op in ops] == [scripts.CHECK_LAYOUT] + [scripts.PURGE_DEAD_LETTERS] * 4
    assert purged == 4
    ops, _ = run_flow(layout.checked_first(None, flows.purge_dead_letters(NAMESPACE)), [0, 0, 0, 0])
    assert len(ops) == SHARDS


def test_a_worker_checks_the_count_first_and_again_after_an_outage_until_it_passes() -> None:
    checks: list[int] = []

    def check() -> Flow[int]:
        checks.append(1)
        return layout.check_layout(NAMESPACE, REGISTRY.topics)

    engine = WorkerEngine(
        namespace=NAMESPACE,
        registry=REGISTRY,
        settings=TimersSettings(shards=SHARDS, legacy_import=False),
        rng=random.Random(0),
        single_pass=False,
        layout_check=check,
    )

    step = engine.next_step(0.0)
    assert isinstance(step, Maintain)
    assert next(step.flow).script is scripts.CHECK_LAYOUT  # type: ignore[union-attr]
    assert engine.step_failed(0.0, TimersConnectionError("down"))
    assert isinstance(engine.next_step(0.0), Wait)  # paused
    step = engine.next_step(100.0)
    assert isinstance(step, Maintain)
    _, result = run_flow(step.flow, [[0]])
    engine.maintenance_done(result)
    assert isinstance(engine.next_step(100.0), Cycle)  # checked: never again
    assert len(checks) == 2
