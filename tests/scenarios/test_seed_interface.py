"""Scenario 1: the seed README's interface, through both front ends."""

from __future__ import annotations

import datetime
from typing import Any

import pydantic
import pytest

import redis_timers
from redis_timers import HandlerNotFoundError
from tests.harness import Front, Recorder, spec
from tests.scenarios.models import Job

NOW = datetime.timedelta(0)
LATER = datetime.timedelta(minutes=5)


class MyPayload(pydantic.BaseModel):
    message: str
    count: int


@pytest.mark.parametrize("decode_responses", [True, False])
@pytest.mark.cluster
def test_quick_start_shape(front: Front, decode_responses: bool) -> None:
    calls: Recorder[tuple[MyPayload, dict[str, Any]]] = Recorder()

    def my_timer_handler(data: MyPayload, context: dict[str, Any]) -> None:
        calls.record((data, context))

    router = front.router(spec("my_topic", MyPayload, my_timer_handler))
    timers = front.timers(context={"app_name": "my_app"}, decode_responses=decode_responses)
    timers.include_router(router)

    timers.set_timer(
        topic="my_topic",
        timer_id="unique_timer_id",
        payload=MyPayload(message="Hello, World!", count=42),
        activation_period=LATER,
    )
    timers.handle_ready_timers()
    assert calls.items == []  # due in five minutes

    timers.set_timer("my_topic", "unique_timer_id", MyPayload(message="Hello, World!", count=42), NOW)
    timers.handle_ready_timers()
    assert calls.items == [(MyPayload(message="Hello, World!", count=42), {"app_name": "my_app"})]
    assert timers.get_timer("my_topic", "unique_timer_id") is None


def test_include_routers_and_constructor_routers(front: Front) -> None:
    calls: Recorder[str] = Recorder()

    def handler(payload: Job, context: dict[str, Any]) -> None:
        calls.record(payload.note)

    first = front.router(spec("first", Job, handler))
    second = front.router(spec("second", Job, handler))
    third = front.router(spec("third", Job, handler))
    timers = front.timers(routers=[third])
    timers.include_routers(first, second)
    for topic in ("first", "second", "third"):
        timers.set_timer(topic, "x", Job(n=0, note=topic), NOW)
    timers.handle_ready_timers()
    assert sorted(calls.items) == ["first", "second", "third"]


@pytest.mark.cluster
def test_timer_set_due_now_is_handled_on_the_very_next_call(front: Front) -> None:
    calls: Recorder[int] = Recorder()
    timers = front.timers(spec("jobs", Job, lambda payload, context: calls.record(payload.n)))
    for round_number in range(5):
        timers.set_timer("jobs", f"t{round_number}", Job(n=round_number), NOW)
        timers.handle_ready_timers()
        assert calls.items == list(range(round_number + 1))


@pytest.mark.cluster
def test_future_timers_are_not_handled(front: Front) -> None:
    calls: Recorder[int] = Recorder()
    timers = front.timers(spec("jobs", Job, lambda payload, context: calls.record(payload.n)))
    timers.set_timer("jobs", "soon", Job(n=1), datetime.timedelta(seconds=30))
    timers.set_timer("jobs", "later", Job(n=2), LATER)
    timers.handle_ready_timers()
    assert calls.items == []
    assert timers.get_timer("jobs", "soon") is not None
    assert timers.get_timer("jobs", "later") is not None


@pytest.mark.cluster
def test_set_timer_on_an_existing_id_replaces_due_time_and_payload(front: Front) -> None:
    calls: Recorder[Job] = Recorder()
    timers = front.timers(spec("jobs", Job, lambda payload, context: calls.record(payload)))

    # Due now, then moved into the future: not handled.
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    timers.set_timer("jobs", "a", Job(n=2), LATER)
    timers.handle_ready_timers()
    assert calls.items == []
    info = timers.get_timer("jobs", "a")
    assert info is not None
    assert info.payload == Job(n=2)

    # Future, then moved to now with a new payload: handled once, with the last payload.
    timers.set_timer("jobs", "a", Job(n=3, note="last"), NOW)
    timers.handle_ready_timers()
    assert calls.items == [Job(n=3, note="last")]
    timers.handle_ready_timers()
    assert calls.items == [Job(n=3, note="last")]

    # Many writes in a row: the last one wins.
    for n in range(10, 20):
        timers.set_timer("jobs", "b", Job(n=n), NOW)
    timers.handle_ready_timers()
    assert calls.items[1:] == [Job(n=19)]


def test_remove_timer_returns_whether_a_timer_was_removed(front: Front) -> None:
    calls: Recorder[int] = Recorder()
    timers = front.timers(spec("jobs", Job, lambda payload, context: calls.record(payload.n)))
    assert timers.remove_timer("jobs", "missing") is False
    timers.set_timer("jobs", "a", Job(n=1), NOW)
    assert timers.remove_timer("jobs", "a") is True
    assert timers.remove_timer("jobs", "a") is False
    timers.handle_ready_timers()
    assert calls.items == []
    assert front.timer_data() == []  # the worker's registered topic set aside, nothing is left


@pytest.mark.cluster
def test_unknown_topic_raises_handler_not_found(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, lambda payload, context: None))
    with pytest.raises(RuntimeError, match="Handler is not found"):
        timers.set_timer("nope", "a", Job(n=1), NOW)
    with pytest.raises(HandlerNotFoundError, match="Handler is not found") as raised:
        timers.set_timer("nope", "a", Job(n=1), NOW)
    assert raised.value.topic == "nope"
    assert isinstance(raised.value, redis_timers.TimersError)
    assert front.all_keys() == []


def test_handlers_receive_payload_and_the_instances_context(front: Front) -> None:
    calls: Recorder[tuple[Job, dict[str, Any]]] = Recorder()

    def handler(payload: Job, context: dict[str, Any]) -> None:
        calls.record((payload, context))

    context_a: dict[str, Any] = {"name": "a", "shared": object()}
    context_b: dict[str, Any] = {"name": "b"}
    a = front.timers(spec("jobs", Job, handler), context=context_a)
    b = front.timers(spec("jobs", Job, handler), context=context_b)
    a.set_timer("jobs", "x", Job(n=1), NOW)
    a.handle_ready_timers()
    b.set_timer("jobs", "y", Job(n=2), NOW)
    b.handle_ready_timers()
    (payload_a, seen_a), (payload_b, seen_b) = calls.items
    assert payload_a == Job(n=1)
    assert seen_a is context_a  # the very object given, not a copy
    assert payload_b == Job(n=2)
    assert seen_b is context_b


def test_default_context_is_an_empty_dict(front: Front) -> None:
    calls: Recorder[dict[str, Any]] = Recorder()
    timers = front.timers(spec("jobs", Job, lambda payload, context: calls.record(context)))
    timers.set_timer("jobs", "x", Job(n=1), NOW)
    timers.handle_ready_timers()
    assert calls.items == [{}]


@pytest.mark.parametrize("decode_responses", [True, False])
def test_non_ascii_payloads_and_ids(front: Front, decode_responses: bool) -> None:
    calls: Recorder[tuple[Job, str]] = Recorder()
    texts = ["héllo wörld", "日本語のテキスト", "emoji 🎉🚀", "\x00 nul and \n newline", "🧪" * 200]
    timers = front.timers(
        spec("jobs", Job, lambda payload, context: calls.record((payload, payload.note))),
        decode_responses=decode_responses,
    )
    for n, text in enumerate(texts):
        timer_id = f"id-{text[:10]}-{n}"
        timers.set_timer("jobs", timer_id, Job(n=n, note=text), NOW)
        info = timers.get_timer("jobs", timer_id)
        assert info is not None
        assert info.payload == Job(n=n, note=text)
        assert info.timer_id == timer_id
    timers.handle_ready_timers()
    assert sorted(calls.items, key=lambda item: item[0].n) == [(Job(n=n, note=t), t) for n, t in enumerate(texts)]
