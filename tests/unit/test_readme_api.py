"""The README's API table and configuration table say what the code does (signatures, topic rules)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import redis_timers
import redis_timers.sync
from redis_timers.core import TimersCore
from redis_timers.errors import HandlerRegistrationError
from redis_timers.validation import check_topic

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
FRONT_ENDS = (redis_timers.Timers, redis_timers.sync.Timers)


def documented(name: str, func: Callable[..., Any]) -> str:
    """How the API table writes a call: `name(a, b=None, *, c=None)`, without annotations or `self`."""
    parts: list[str] = []
    keyword_only_marked = False
    for parameter in inspect.signature(func).parameters.values():
        if parameter.name == "self":
            continue
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            parts.append(f"**{parameter.name}")
            continue
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            parts.append(f"*{parameter.name}")
            keyword_only_marked = True
            continue
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and not keyword_only_marked:
            parts.append("*")
            keyword_only_marked = True
        default = "" if parameter.default is inspect.Parameter.empty else f"={parameter.default!r}"
        parts.append(f"{parameter.name}{default}")
    return f"{name}({', '.join(parts)})"


@pytest.mark.parametrize("timers_class", FRONT_ENDS, ids=["async", "sync"])
@pytest.mark.parametrize(
    "method",
    [
        "run_forever",
        "include_router",
        "include_routers",
        "remove_timer",
        "set_timers",
        "remove_timers",
        "get_timer",
        "handle_ready_timers",
        "stop",
        "dead_letters",
        "requeue_dead_letter",
        "purge_dead_letters",
        "dead_letter_page",
        "count_dead_letters",
        "topics",
        "count_timers",
        "list_timers",
        "running_timers",
        "stats",
        "due_histogram",
    ],
)
def test_the_api_table_writes_each_call_as_its_signature(timers_class: Any, method: str) -> None:
    assert f"`{documented(method, getattr(timers_class, method))}" in README


def test_the_api_table_writes_the_constructor_as_its_signature() -> None:
    # Both front ends take `redis_client` and pass the other keywords on to the shared constructor.
    for timers_class in FRONT_ENDS:
        assert issubclass(timers_class, TimersCore)
        assert documented("Timers", timers_class.__init__) == "Timers(*, redis_client, **kwargs)"
    assert f"| `{documented('Timers', TimersCore.__init__)}` |" in README


@pytest.mark.parametrize("timers_class", FRONT_ENDS, ids=["async", "sync"])
def test_run_forevers_concurrency_is_keyword_only(timers_class: Any) -> None:
    parameter = inspect.signature(timers_class.run_forever).parameters["concurrency"]

    assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
    assert "`run_forever(*, concurrency=None)`" in README


@pytest.mark.parametrize("timers_class", FRONT_ENDS, ids=["async", "sync"])
def test_activate_at_is_keyword_only_and_set_timer_returns_a_datetime(timers_class: Any) -> None:
    signature = inspect.signature(timers_class.set_timer)

    assert signature.parameters["activate_at"].kind is inspect.Parameter.KEYWORD_ONLY
    assert signature.parameters["activation_period"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert "`set_timer(topic, timer_id, payload, *, activate_at=datetime) -> datetime`" in README
    assert "`set_timer(topic, timer_id, payload, activation_period) -> datetime`" in README


@pytest.mark.parametrize("topic", ["orders-", "orders--eu", "--orders"])
def test_topics_may_neither_contain_the_separator_nor_end_with_part_of_it(topic: str) -> None:
    with pytest.raises(HandlerRegistrationError, match="must not contain the separator '--' nor end with part of it"):
        check_topic(topic, "--")
    row = next(line for line in README.splitlines() if line.startswith("| `TIMERS_SEPARATOR`"))
    assert "topics may neither contain it nor end with part of it (`orders-` with `--`)" in row


@pytest.mark.parametrize("timers_class", FRONT_ENDS, ids=["async", "sync"])
def test_durable_is_a_keyword_only_false_by_default_on_every_write(timers_class: Any) -> None:
    for method in ("set_timer", "remove_timer", "requeue_dead_letter"):
        parameter = inspect.signature(getattr(timers_class, method)).parameters["durable"]
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
        assert parameter.default is False
    assert "| `set_timer(..., *, durable=False)` |" in README
    assert "TimersDurabilityError" in README
