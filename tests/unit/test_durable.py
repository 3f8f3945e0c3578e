"""The durable write's sequencing, driven by hand: the script call, then WAIT on the same connection."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from redis_timers import TimersDurabilityError, TimersError, durability, flows, scripts
from redis_timers.durability import AofSync, Learned
from redis_timers.errors import SettingsError, TimersPermissionError, TimersServerError, TimersUnavailableError
from redis_timers.keys import Namespace
from redis_timers.ops import Command, NodeOf, OneConnection, ScriptCall
from redis_timers.settings import TimersSettings
from tests.unit.support import Order, make_registry, run_flow

NAMESPACE = Namespace("timers")
KEYSPACE = NAMESPACE.keyspaces[0]
REGISTRY = make_registry()
REMOVE = ScriptCall(scripts.REMOVE_TIMER, KEYSPACE.write_keys("orders"), ("o-1",))
SETTINGS = TimersSettings(durable_replicas=2, durable_timeout_seconds=0.25, durable_fsync=False)
"""WAIT alone (`TIMERS_DURABLE_FSYNC=0`): the shape every durable write had before WAITAOF."""


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

    ops, due_ms = run_flow(flows.set_timer_durably(call, TimersSettings(durable_fsync=False)), [[b"5042", 1]])

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
    settings = TimersSettings(durable_timeout_seconds=0.0011, durable_fsync=False)
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
    settings = TimersSettings(durable_replicas=1, durable_timeout_seconds=1.0, durable_fsync=False)
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
    waits = tuple(durability.waits(AofSync.NONE, 2, timeout_seconds, read_timeout))

    assert waits == tuple(Command(("WAIT", 2, step)) for step in steps)
    assert sum(steps) == max(1, round(timeout_seconds * 1000 + 0.4999))


FSYNC = TimersSettings(durable_replicas=2, durable_timeout_seconds=0.25)
"""The default: WAITAOF where the node has AOF on."""
NODE = "10.0.0.1:6379"
AOF_OFF = TimersServerError("ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled.")
NO_WAITAOF = TimersServerError("ERR unknown command 'WAITAOF', with args beginning with: '1' '2' '250' ")
WAIT_2 = Command(("WAIT", 2, 250))


def waitaof(local: int, replicas: int) -> Command:
    return Command(("WAITAOF", local, replicas, 250))


def durable_remove(learned: Learned, replies: list[Any]) -> tuple[list[Any], bool]:
    """The ops of a durable remove_timer to NODE, answered with the node's name then `replies`."""
    flow = flows.remove_timer(NAMESPACE, REGISTRY, "orders", "o-1", durability=FSYNC, learned=learned)
    return run_flow(flow, [NODE, replies])


def test_by_default_the_write_asks_which_node_it_goes_to_and_sends_wait_then_waitaof() -> None:
    # WAIT first: a replica reports its AOF sync to a WAITAOF sent right after the write only a second later.
    learned = Learned()

    ops, removed = durable_remove(learned, [1, 2, [1, 2]])

    assert ops == [NodeOf(REMOVE), OneConnection((REMOVE, WAIT_2, waitaof(1, 2)))]
    assert removed is True
    assert learned.states == {NODE: AofSync.EVERYWHERE}


@pytest.mark.parametrize("refusal", [AOF_OFF, NO_WAITAOF, TimersPermissionError("NOPERM no WAITAOF for you")])
@pytest.mark.parametrize("before", [AofSync.UNKNOWN, AofSync.EVERYWHERE, AofSync.PRIMARY])
def test_a_node_that_refuses_waitaof_has_its_wait_decide_and_is_asked_again_next_time(
    refusal: TimersServerError, before: AofSync
) -> None:
    # Not kept as WAIT-only: its AOF may be switched on at run time, or a failover may put a node with AOF on
    # under the same name. Asking again costs a pipelined command refused at once.
    learned = Learned({NODE: before})

    _, removed = durable_remove(learned, [1, 2, refusal])

    assert removed is True
    assert learned.states == {NODE: AofSync.UNKNOWN}
    ops, _ = durable_remove(learned, [1, 2, [1, 2]])
    assert ops[1] == OneConnection((REMOVE, WAIT_2, waitaof(1, 2)))
    assert learned.states == {NODE: AofSync.EVERYWHERE}


def test_a_refused_waitaof_with_too_few_replicas_raises_the_wait_error() -> None:
    learned = Learned()

    with pytest.raises(TimersDurabilityError, match="1 of the 2 replica") as raised:
        durable_remove(learned, [1, 1, AOF_OFF])

    assert raised.value.fsync is False
    assert learned.states == {NODE: AofSync.UNKNOWN}


def test_replicas_that_received_the_write_but_did_not_sync_it_are_learned_as_without_aof() -> None:
    # Measured: replicas with AOF off never count in WAITAOF, which returns [1, 0] at its timeout.
    learned = Learned()

    _, removed = durable_remove(learned, [1, 2, [1, 0]])

    assert removed is True  # received by both, synced by the primary: what such a node can give
    assert learned.states == {NODE: AofSync.PRIMARY}
    ops, _ = durable_remove(learned, [1, 2, [1, 0]])
    assert ops[1] == OneConnection((REMOVE, WAIT_2, waitaof(1, 0)))


def test_a_node_learned_as_without_replica_aof_is_asked_again_every_recheck_writes() -> None:
    # A replica with AOF on whose sync was slower than the timeout (everysec against a short timeout, a busy
    # disk) looks like one with AOF off: that is not kept for good.
    assert durability.RECHECK_EVERY == 100  # as docs/operations.md says
    learned = Learned()
    durable_remove(learned, [1, 2, [1, 0]])

    for _ in range(durability.RECHECK_EVERY):
        ops, _ = durable_remove(learned, [1, 2, [1, 0]])
        assert ops[1] == OneConnection((REMOVE, WAIT_2, waitaof(1, 0)))
    ops, removed = durable_remove(learned, [1, 2, [1, 2]])

    assert ops[1] == OneConnection((REMOVE, WAIT_2, waitaof(1, 2)))  # asked again, and syncing now
    assert removed is True
    assert learned.states == {NODE: AofSync.EVERYWHERE}
    with pytest.raises(TimersDurabilityError) as raised:
        durable_remove(learned, [1, 2, [1, 0]])  # from then on a short sync raises
    assert raised.value.fsync is True


def test_a_recheck_that_finds_the_replicas_still_without_aof_counts_afresh() -> None:
    learned = Learned()
    for _ in range(durability.RECHECK_EVERY + 2):  # the first write, RECHECK_EVERY more, then the recheck
        durable_remove(learned, [1, 2, [1, 0]])

    for _ in range(durability.RECHECK_EVERY):
        ops, _ = durable_remove(learned, [1, 2, [1, 0]])
        assert ops[1] == OneConnection((REMOVE, WAIT_2, waitaof(1, 0)))
    ops, _ = durable_remove(learned, [1, 2, [1, 0]])
    assert ops[1] == OneConnection((REMOVE, WAIT_2, waitaof(1, 2)))
    assert learned.states == {NODE: AofSync.PRIMARY}


def test_on_a_node_whose_replicas_sync_a_short_sync_raises_with_fsync() -> None:
    learned = Learned({NODE: AofSync.EVERYWHERE})

    with pytest.raises(TimersDurabilityError, match=r"wrote it to their AOF within 0\.25 s") as raised:
        durable_remove(learned, [1, 2, [1, 1]])

    assert (raised.value.fsync, raised.value.acknowledged, raised.value.required) == (True, 1, 2)
    assert learned.states == {NODE: AofSync.EVERYWHERE}


@pytest.mark.parametrize("sync", [AofSync.UNKNOWN, AofSync.EVERYWHERE, AofSync.PRIMARY])
def test_a_write_the_replicas_did_not_receive_raises_without_fsync_and_learns_nothing(sync: AofSync) -> None:
    learned = Learned({NODE: sync})

    with pytest.raises(TimersDurabilityError, match="0 of the 2 replica") as raised:
        durable_remove(learned, [1, 0, [1, 0]])

    assert raised.value.fsync is False
    assert learned.states == {NODE: sync}


def test_a_primary_that_did_not_sync_in_time_raises_with_fsync() -> None:
    with pytest.raises(TimersDurabilityError) as raised:
        durable_remove(Learned({NODE: AofSync.PRIMARY}), [1, 2, [0, 0]])

    assert raised.value.fsync is True


def test_the_write_s_own_error_reply_is_raised_whatever_the_waits_say() -> None:
    refused = TimersServerError("WRONGTYPE Operation against a key holding the wrong kind of value")
    learned = Learned()

    with pytest.raises(TimersServerError, match="WRONGTYPE"):
        durable_remove(learned, [refused, 2, AOF_OFF])

    assert learned.states == {}


def test_a_transient_error_of_waitaof_is_raised_not_learned() -> None:
    learned = Learned()

    with pytest.raises(TimersUnavailableError):
        durable_remove(learned, [1, 2, TimersUnavailableError("LOADING loading")])

    assert learned.states == {}


def test_each_node_is_learned_on_its_own() -> None:
    learned = Learned({"10.0.0.2:6379": AofSync.NONE})

    ops, _ = durable_remove(learned, [1, 2, [1, 2]])

    assert ops[1] == OneConnection((REMOVE, WAIT_2, waitaof(1, 2)))
    assert learned.states == {"10.0.0.2:6379": AofSync.NONE, NODE: AofSync.EVERYWHERE}


def test_with_fsync_off_no_node_is_asked_for_and_wait_goes_alone() -> None:
    learned = Learned()
    flow = flows.remove_timer(NAMESPACE, REGISTRY, "orders", "o-1", durability=SETTINGS, learned=learned)

    ops, _ = run_flow(flow, [[1, 2]])

    assert ops == [OneConnection((REMOVE, WAIT_2))]
    assert learned.states == {}


def test_a_long_waitaof_is_split_like_wait() -> None:
    waits = durability.waits(AofSync.UNKNOWN, 1, 3.0, 1.0)

    assert waits == [Command(("WAIT", 1, 500))] * 6 + [Command(("WAITAOF", 1, 1, 500))] * 6


def test_durable_fsync_is_on_by_default_and_read_from_the_environment() -> None:
    assert TimersSettings().durable_fsync is True
    assert TimersSettings.from_env({"TIMERS_DURABLE_FSYNC": "0"}).durable_fsync is False
