"""The original library's remaining interface, without Redis: listing flows, handlers_by_topics, the lock
names, and assignments to the module constants."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import redis_timers
import redis_timers.sync
from redis_timers import ReplacedFeatureError, TimersError, scripts, seed
from redis_timers import settings as settings_module
from redis_timers.errors import NaiveDatetimeError, SettingsError
from redis_timers.keys import Namespace
from redis_timers.lock import consume_lock, timer_lock
from redis_timers.ops import ScriptCall
from redis_timers.router import Handler
from redis_timers.settings import CONSTANT_OVERRIDES, TimersSettings
from tests.unit.support import Order, Reminder, encode, handle_order, make_registry, make_router, run_flow

UTC = datetime.timezone.utc
NAMESPACE = Namespace("timers")
KEYSPACE = NAMESPACE.keyspaces[0]
SETTINGS = TimersSettings()
ORDER_JSON = '{"order_id":7,"note":"pay"}'
REMINDER_JSON = '{"text":"x"}'


def listing_call(topic: str, up_to: str | int, with_payloads: bool) -> ScriptCall:
    keys = (f"{{timers}}:timeline:{topic}", f"{{timers}}:payloads:{topic}")
    return ScriptCall(scripts.LIST_TIMERS, keys, (up_to, "1" if with_payloads else "0"))


# -- fetch_all_timers / fetch_ready_timers ------------------------------------------------------------


@pytest.mark.parametrize("as_bytes", [False, True], ids=["decoded", "raw-bytes"])
def test_fetch_all_timers_lists_every_handled_topic_in_the_seeds_shape(as_bytes: bool) -> None:
    orders = encode(["o-2", "2000", ORDER_JSON, "o--1", "3000", ORDER_JSON], as_bytes)
    reminders = encode(["r-1", "1000", REMINDER_JSON, "r-\u00e9", "2500.5", REMINDER_JSON], as_bytes)

    ops, (members, payloads) = run_flow(
        seed.fetch_all_timers(NAMESPACE, make_registry(), SETTINGS), [orders, reminders]
    )

    assert ops == [listing_call("orders", "+inf", True), listing_call("reminders", "+inf", True)]
    assert members == ["reminders--r-1", "orders--o-2", "reminders--r-\u00e9", "orders--o--1"]  # earliest first
    assert payloads == {
        "reminders--r-1": REMINDER_JSON,
        "orders--o-2": ORDER_JSON,
        "reminders--r-\u00e9": REMINDER_JSON,
        "orders--o--1": ORDER_JSON,
    }


def test_fetch_all_timers_when_there_are_none() -> None:
    assert run_flow(seed.fetch_all_timers(NAMESPACE, make_registry(), SETTINGS), [[], []])[1] == ([], {})
    assert run_flow(seed.fetch_all_timers(NAMESPACE, make_registry(empty=True), SETTINGS), []) == ([], ([], {}))


def test_fetch_all_timers_uses_the_configured_separator() -> None:
    settings = TimersSettings(separator="::")
    replies = [["o-1", "1", ORDER_JSON], []]

    _, (members, payloads) = run_flow(
        seed.fetch_all_timers(NAMESPACE, make_registry(separator="::"), settings), replies
    )

    assert members == ["orders::o-1"]
    assert payloads == {"orders::o-1": ORDER_JSON}


@pytest.mark.parametrize(
    ("timestamp", "up_to_ms"),
    [
        (datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), 1_700_000_000_000),
        (datetime.datetime(2023, 11, 14, 22, 13, 20, 999, tzinfo=UTC), 1_700_000_000_000),  # rounded down
        (datetime.datetime(2023, 11, 14, 22, 13, 20, 1000, tzinfo=UTC), 1_700_000_000_001),
        (
            datetime.datetime(2023, 11, 15, 1, 13, 20, tzinfo=datetime.timezone(datetime.timedelta(hours=3))),
            1_700_000_000_000,
        ),
    ],
)
def test_fetch_ready_timers_lists_the_timers_due_by_the_timestamp(timestamp: datetime.datetime, up_to_ms: int) -> None:
    replies = [encode(["o-1", "1700000000000"], True), ["r-1", "1699999999999"]]

    ops, members = run_flow(seed.fetch_ready_timers(NAMESPACE, make_registry(), SETTINGS, timestamp), replies)

    assert ops == [listing_call("orders", up_to_ms, False), listing_call("reminders", up_to_ms, False)]
    assert members == ["reminders--r-1", "orders--o-1"]


@pytest.mark.parametrize("timestamp", [datetime.datetime(2024, 1, 1), "2024-01-01", 1_700_000_000, None])
def test_fetch_ready_timers_refuses_anything_but_an_aware_datetime_before_any_call(timestamp: Any) -> None:
    flow = seed.fetch_ready_timers(NAMESPACE, make_registry(), SETTINGS, timestamp)

    with pytest.raises(TimersError, match="timestamp") as raised:
        next(flow)
    if isinstance(timestamp, datetime.datetime):
        assert isinstance(raised.value, NaiveDatetimeError)


def test_the_listing_script_is_single_slot_and_carries_the_prelude_it_uses() -> None:
    assert "local function unpack_stored(" in scripts.LIST_TIMERS.source
    assert "local function bury(" not in scripts.LIST_TIMERS.source


# -- handlers_by_topics -----------------------------------------------------------------------------


def test_handlers_by_topics_maps_each_topic_to_its_handler_read_only() -> None:
    registry = make_registry()
    handlers = seed.HandlersByTopic(registry)

    assert sorted(handlers) == ["orders", "reminders"]
    assert len(handlers) == 2
    order_handler = handlers["orders"]
    assert isinstance(order_handler, Handler)
    assert (order_handler.topic, order_handler.schema, order_handler.handler) == ("orders", Order, handle_order)
    assert handlers["reminders"].schema is Reminder
    assert "invoices" not in handlers
    with pytest.raises(KeyError):
        handlers["invoices"]
    with pytest.raises(ReplacedFeatureError, match="include_router"):
        del handlers["orders"]
    with pytest.raises(ReplacedFeatureError, match="include_router"):
        handlers["orders"] = order_handler
    assert sorted(handlers) == ["orders", "reminders"]


def test_a_timers_handlers_by_topics_follows_include_router() -> None:
    timers = redis_timers.sync.Timers(redis_client=redis.Redis(), settings=TimersSettings())
    handlers = timers.handlers_by_topics
    assert dict(handlers) == {}

    timers.include_router(make_router())

    assert set(handlers) == {"orders", "reminders"}
    assert timers.handlers_by_topics["orders"].handler is handle_order


# -- consume_lock / timer_lock -------------------------------------------------------------------


@pytest.mark.parametrize("lock", [consume_lock, timer_lock, redis_timers.consume_lock, redis_timers.timer_lock])
def test_the_seeds_lock_functions_raise_naming_the_lease_that_replaces_them(lock: Any) -> None:
    with pytest.raises(ReplacedFeatureError, match="lease") as raised:
        lock(redis_client=None, key="some_topic--some_id")
    message = str(raised.value)
    assert "remove_timer()" in message
    assert "get_timer()" in message
    assert isinstance(raised.value, RuntimeError)
    assert isinstance(raised.value, TimersError)


def test_the_lock_names_are_exported_as_in_the_seed() -> None:
    assert {"consume_lock", "timer_lock"} <= set(redis_timers.__all__)


# -- module constants -----------------------------------------------------------------------------


@pytest.fixture
def no_assigned_constants(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("TIMERS_CONCURRENT_PROCESSING_LIMIT", raising=False)
    monkeypatch.delenv("TIMERS_TIMELINE_KEY", raising=False)
    saved = dict(CONSTANT_OVERRIDES)
    CONSTANT_OVERRIDES.clear()
    try:
        yield
    finally:
        CONSTANT_OVERRIDES.clear()
        CONSTANT_OVERRIDES.update(saved)


@pytest.mark.usefixtures("no_assigned_constants")
def test_assigning_a_module_constant_takes_effect_for_timers_built_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    before = redis_timers.sync.Timers(redis_client=redis.Redis())
    monkeypatch.setenv("TIMERS_CONCURRENT_PROCESSING_LIMIT", "9")

    settings_module.TIMERS_CONCURRENT_PROCESSING_LIMIT = 3
    settings_module.TIMERS_TIMELINE_KEY = "my_timeline"

    assert settings_module.TIMERS_CONCURRENT_PROCESSING_LIMIT == 3  # wins over the environment variable
    assert settings_module.TIMERS_TIMELINE_KEY == "my_timeline"
    after = redis_timers.sync.Timers(redis_client=redis.Redis())
    assert (after.settings.concurrent_processing_limit, after.settings.timeline_key) == (3, "my_timeline")
    assert before.settings.concurrent_processing_limit == 100  # built before: keeps its settings
    # An explicit environment mapping, or explicit settings, are taken as they are.
    assert TimersSettings.from_env({}).concurrent_processing_limit == 100
    assert TimersSettings.from_env(concurrent_processing_limit=4).concurrent_processing_limit == 4

    del settings_module.TIMERS_CONCURRENT_PROCESSING_LIMIT
    assert settings_module.TIMERS_CONCURRENT_PROCESSING_LIMIT == 9  # the environment again


@pytest.mark.usefixtures("no_assigned_constants")
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TIMERS_CONCURRENT_PROCESSING_LIMIT", 0),  # as the seed's own test suite assigns it
        ("TIMERS_CONCURRENT_PROCESSING_LIMIT", "many"),
        ("TIMERS_HANDLING_SLEEP", -1.0),
        ("TIMERS_SEPARATOR", ""),
        ("TIMERS_NAMESPACE", 5),
    ],
)
def test_assigning_an_invalid_value_raises_and_changes_nothing(name: str, value: Any) -> None:
    with pytest.raises(SettingsError, match=f"settings.{name} = "):
        setattr(settings_module, name, value)

    assert CONSTANT_OVERRIDES == {}
    assert getattr(settings_module, name) == getattr(settings_module, name)  # still readable
    assert TimersSettings.from_env() == TimersSettings.from_env({})


def test_other_module_attributes_are_set_as_usual(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "SOMETHING_ELSE", 1, raising=False)

    assert settings_module.SOMETHING_ELSE == 1
    assert "SOMETHING_ELSE" not in CONSTANT_OVERRIDES
