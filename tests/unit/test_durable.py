"""The durable write's sequencing, driven by hand: the script call, then WAIT on the same connection."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from redis_timers import TimersDurabilityError, TimersError, flows, scripts
from redis_timers.errors import SettingsError
from redis_timers.keys import Namespace
from redis_timers.ops import Command, OneConnection, ScriptCall
from redis_timers.settings import TimersSettings
from tests.unit.support import Order, make_registry, run_flow

NAMESPACE = Namespace("timers")
KEYSPACE = NAMESPACE.keyspaces[0]
REGISTRY = make_registry()
REMOVE = ScriptCall(scripts.REMOVE_TIMER, KEYSPACE.write_keys("orders"), ("o-1",))
SETTINGS = TimersSettings(durable_replicas=2, durable_timeout_seconds=0.25)


def test_a_durable_write_is_its_script_call_then_wait_on_one_connection() -> None:
    flow = flows.remove_timer(NAMESPACE, REGISTRY, "orders", "o-1", durability=SETTINGS)

    ops, removed = run_flow(flow, [[1, 2]])

    assert ops == [OneConnection((REMOVE, Command(("WAIT", 2, 250))))]
    assert removed is True


def test_a_plain_write_is_its_script_call_alone() -> None:
    ops, removed = run_flow(flows.remove_timer(NAMESPACE, REGISTRY, "orders", "o-1"), [0])

    assert ops == [REMOVE]
    assert removed is False


@pytest.mark.parametrize("acknowledged", [0, 1, b"1"])
def test_fewer_replicas_than_asked_raise_with_how_many_confirmed(acknowledged: Any) -> None:
    flow = flows.remove_timer(NAMESPACE, REGISTRY, "orders", "o-1", durability=SETTINGS)

    with pytest.raises(TimersDurabilityError, match=f"{int(acknowledged)} of the 2 replica") as caught:
        run_flow(flow, [[1, acknowledged]])

    assert (caught.value.acknowledged, caught.value.required) == (int(acknowledged), 2)
    assert isinstance(caught.value, TimersError)
    assert "it stands, and calling again is safe" in str(caught.value)


def test_more_replicas_than_asked_are_enough() -> None:
    _, removed = run_flow(flows.remove_timer(NAMESPACE, REGISTRY, "orders", "o-1", durability=SETTINGS), [[1, 3]])

    assert removed is True


def test_a_durable_set_timer_returns_the_due_ms_of_its_script_call() -> None:
    call = flows.set_timer_call(NAMESPACE, REGISTRY, "orders", "o-1", Order(order_id=1), datetime.timedelta(0), None)

    ops, due_ms = run_flow(flows.set_timer_durably(call, TimersSettings()), [[b"5042", 1]])

    assert ops == [OneConnection((call, Command(("WAIT", 1, 2000))))]
    assert due_ms == 5042


def test_a_durable_requeue_waits_too() -> None:
    flow = flows.requeue_dead_letter(NAMESPACE, SETTINGS, "orders", "o-1", durable=True)

    ops, requeued = run_flow(flow, [[1, 2]])

    assert len(ops) == 1
    assert isinstance(ops[0], OneConnection)
    requeue, wait = ops[0].ops
    assert isinstance(requeue, ScriptCall)
    assert requeue.script is scripts.REQUEUE_DEAD_LETTER
    assert wait == Command(("WAIT", 2, 250))
    assert requeued is True


def test_the_wait_timeout_rounds_up_to_a_whole_millisecond() -> None:
    settings = TimersSettings(durable_timeout_seconds=0.0011)
    ops, _ = run_flow(flows.remove_timer(NAMESPACE, REGISTRY, "orders", "o-1", durability=settings), [[1, 1]])

    assert ops == [OneConnection((REMOVE, Command(("WAIT", 1, 2))))]


@pytest.mark.parametrize(
    "overrides",
    [
        {"durable_replicas": 0},
        {"durable_replicas": -1},
        {"durable_timeout_seconds": 0},
        {"durable_timeout_seconds": -1},
    ],
)
def test_durable_settings_are_validated(overrides: dict[str, Any]) -> None:
    # WAIT 0 as a timeout would block forever; zero replicas would confirm nothing.
    with pytest.raises(SettingsError):
        TimersSettings(**overrides)


def test_durable_settings_are_read_from_the_environment() -> None:
    settings = TimersSettings.from_env({"TIMERS_DURABLE_REPLICAS": "2", "TIMERS_DURABLE_TIMEOUT_SECONDS": "0.5"})

    assert (settings.durable_replicas, settings.durable_timeout_seconds) == (2, 0.5)


def test_a_wait_longer_than_half_the_socket_timeout_is_split_on_the_same_connection() -> None:
    # Each WAIT must reply within the client's socket timeout, or the client takes it for an outage.
    settings = TimersSettings(durable_replicas=1, durable_timeout_seconds=1.0)
    flow = flows.remove_timer(NAMESPACE, REGISTRY, "orders", "o-1", durability=settings, read_timeout_seconds=0.4)

    ops, removed = run_flow(flow, [[1, 0, 1, 1]])

    assert ops == [OneConnection((REMOVE, *(Command(("WAIT", 1, ms)) for ms in (200, 200, 200, 200, 200))))]
    assert removed is True  # the most replicas any WAIT counted


@pytest.mark.parametrize(
    ("timeout_seconds", "read_timeout", "steps"),
    [
        (1.0, None, [1000]),
        (1.0, 5.0, [1000]),
        (1.0, 2.0, [1000]),
        (1.0, 0.3, [150] * 6 + [100]),
        (0.0011, 0.001, [1, 1]),
        (3600.0, 0.001, [3600] * 1000),  # never more than MAX_WAITS
    ],
)
def test_wait_commands(timeout_seconds: float, read_timeout: float | None, steps: list[int]) -> None:
    waits = flows.wait_commands(2, timeout_seconds, read_timeout)

    assert waits == tuple(Command(("WAIT", 2, step)) for step in steps)
    assert sum(steps) == max(1, round(timeout_seconds * 1000 + 0.4999))


FSYNC_SETTINGS = TimersSettings(durable_replicas=2, durable_timeout_seconds=0.25, durable_fsync=True)


def test_with_fsync_a_durable_write_waits_for_the_append_only_files_in_place_of_wait() -> None:
    flow = flows.remove_timer(NAMESPACE, REGISTRY, "orders", "o-1", durability=FSYNC_SETTINGS)

    ops, removed = run_flow(flow, [[1, [1, 2]]])

    assert ops == [OneConnection((REMOVE, Command(("WAITAOF", 1, 2, 250))))]
    assert removed is True


@pytest.mark.parametrize(("local", "replicas"), [(0, 2), (1, 1), (0, 0), (b"1", b"1")])
def test_with_fsync_a_write_not_synced_by_the_primary_and_the_replicas_raises(local: Any, replicas: Any) -> None:
    flow = flows.remove_timer(NAMESPACE, REGISTRY, "orders", "o-1", durability=FSYNC_SETTINGS)

    with pytest.raises(TimersDurabilityError, match=r"wrote it to their AOF within 0\.25 s") as raised:
        run_flow(flow, [[1, [local, replicas]]])

    assert raised.value.fsync is True
    assert raised.value.acknowledged == int(replicas)
    assert raised.value.required == 2


def test_with_fsync_a_long_wait_is_split_like_wait() -> None:
    waits = flows.wait_commands(1, 3.0, 1.0, fsync=True)

    assert waits == tuple(Command(("WAITAOF", 1, 1, 500)) for _ in range(6))
