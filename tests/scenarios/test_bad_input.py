"""Scenario 3: bad input gets a typed error before anything is written to Redis."""

from __future__ import annotations

import datetime
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redis_timers import (
    ActivationError,
    HandlerNotFoundError,
    HandlerRegistrationError,
    InvalidTimerIdError,
    InvalidTopicError,
    PayloadTypeError,
    Router,
    TimersError,
)
from tests.harness import Front, Recorder, server_time_ms, spec
from tests.scenarios.models import Job, Other

NOW = datetime.timedelta(0)
LATER = datetime.timedelta(hours=1)
MAX_ID_BYTES = 1024
HUNDRED_YEARS = datetime.timedelta(days=100 * 365)
FUZZ = settings(max_examples=25, deadline=None, database=None)


def nothing(payload: Any, context: dict[str, Any]) -> None:
    return None


def assert_nothing_written(front: Front) -> None:
    assert front.raw.dbsize() == 0, front.all_keys()


# -- payloads ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [Other(text="wrong schema"), {"n": 1}, None, '{"n": 1}', 1],
    ids=["other-model", "dict", "none", "json-str", "int"],
)
@pytest.mark.cluster
def test_wrong_payload_type(front: Front, payload: Any) -> None:
    timers = front.timers(spec("jobs", Job, nothing))
    with pytest.raises(PayloadTypeError) as raised:
        timers.set_timer("jobs", "a", payload, NOW)
    assert isinstance(raised.value, TypeError)
    assert isinstance(raised.value, TimersError)
    assert_nothing_written(front)


# -- ids -------------------------------------------------------------------------------------


def test_id_length_limit_is_1024_utf8_bytes(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, nothing))
    for too_long in ["a" * (MAX_ID_BYTES + 1), "é" * (MAX_ID_BYTES // 2) + "a", "🎉" * (MAX_ID_BYTES // 4 + 1)]:
        with pytest.raises(InvalidTimerIdError):
            timers.set_timer("jobs", too_long, Job(n=1), NOW)
    with pytest.raises(InvalidTimerIdError):
        timers.set_timer("jobs", "", Job(n=1), NOW)
    assert_nothing_written(front)

    for longest in ["a" * MAX_ID_BYTES, "é" * (MAX_ID_BYTES // 2), "🎉" * (MAX_ID_BYTES // 4)]:
        timers.set_timer("jobs", longest, Job(n=1), NOW)
        info = timers.get_timer("jobs", longest)
        assert info is not None
        assert info.timer_id == longest
        assert timers.remove_timer("jobs", longest) is True


@pytest.mark.parametrize("timer_id", [123, b"bytes-id", None, 1.5, ("a",)], ids=repr)
def test_non_str_ids_are_refused_by_every_method(front: Front, timer_id: Any) -> None:
    timers = front.timers(spec("jobs", Job, nothing))
    with pytest.raises(InvalidTimerIdError):
        timers.set_timer("jobs", timer_id, Job(n=1), NOW)
    with pytest.raises(InvalidTimerIdError):
        timers.remove_timer("jobs", timer_id)
    with pytest.raises(InvalidTimerIdError):
        timers.get_timer("jobs", timer_id)
    with pytest.raises(InvalidTimerIdError):
        timers.requeue_dead_letter("jobs", timer_id)
    assert_nothing_written(front)


def _too_long(text: str) -> str:
    return text * (MAX_ID_BYTES // len(text.encode("utf-8")) + 1)


BAD_IDS = st.one_of(
    st.just(""),
    st.tuples(st.text(max_size=4), st.characters(categories=["Cs"]), st.text(max_size=4)).map("".join),
    st.text(min_size=1, max_size=8).map(_too_long),
    st.integers(),
    st.binary(),
    st.none(),
    st.floats(allow_nan=False),
    st.lists(st.text(max_size=3), max_size=2),
)


@pytest.mark.cluster
def test_fuzzed_bad_ids_write_nothing(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, nothing))

    @FUZZ
    @given(timer_id=BAD_IDS)
    def check(timer_id: Any) -> None:
        with pytest.raises(InvalidTimerIdError):
            timers.set_timer("jobs", timer_id, Job(n=1), NOW)
        with pytest.raises(InvalidTimerIdError):
            timers.remove_timer("jobs", timer_id)
        assert_nothing_written(front)

    check()


GOOD_IDS = st.text(min_size=1, max_size=64).filter(lambda text: len(text.encode("utf-8")) <= MAX_ID_BYTES)


def test_fuzzed_good_ids_round_trip(front: Front) -> None:
    seen: Recorder[str] = Recorder()
    timers = front.timers(spec("jobs", Job, lambda payload, context: seen.record(payload.note)))

    @FUZZ
    @given(timer_id=GOOD_IDS)
    def check(timer_id: str) -> None:
        timers.set_timer("jobs", timer_id, Job(n=0, note=timer_id), LATER)
        info = timers.get_timer("jobs", timer_id)
        assert info is not None
        assert info.timer_id == timer_id
        assert info.payload == Job(n=0, note=timer_id)
        timers.set_timer("jobs", timer_id, Job(n=1, note=timer_id), NOW)
        timers.handle_ready_timers()
        assert seen.items[-1] == timer_id
        assert timers.get_timer("jobs", timer_id) is None
        assert timers.remove_timer("jobs", timer_id) is False

    check()


# -- activation periods ------------------------------------------------------------------------


BAD_PERIODS = st.one_of(
    st.timedeltas(max_value=datetime.timedelta(microseconds=-1)),
    st.timedeltas(min_value=HUNDRED_YEARS + datetime.timedelta(milliseconds=1)),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.datetimes(timezones=st.just(datetime.timezone.utc)),
)


def test_fuzzed_bad_periods_write_nothing(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, nothing))

    @FUZZ
    @given(period=BAD_PERIODS)
    def check(period: Any) -> None:
        with pytest.raises(ActivationError):
            timers.set_timer("jobs", "a", Job(n=1), period)
        assert_nothing_written(front)

    check()


def test_fuzzed_good_periods_set_the_due_time_from_the_server_clock(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, nothing))

    @FUZZ
    @given(period=st.timedeltas(min_value=datetime.timedelta(0), max_value=HUNDRED_YEARS))
    def check(period: datetime.timedelta) -> None:
        period_ms = math.ceil(period / datetime.timedelta(milliseconds=1))
        before = server_time_ms(front.raw)
        timers.set_timer("jobs", "a", Job(n=1), period)
        after = server_time_ms(front.raw)
        info = timers.get_timer("jobs", "a")
        assert info is not None
        due_ms = round(info.due_at.timestamp() * 1000)
        # From the server's clock rounded up: after the clock read before, at most the one after rounded up.
        assert before + period_ms <= due_ms <= after + 1 + period_ms
        assert timers.remove_timer("jobs", "a") is True

    check()


# -- topics and registration -----------------------------------------------------------------


BAD_TOPICS = st.one_of(
    st.just(""),
    st.tuples(
        st.text(max_size=6),
        st.sampled_from(["--", " ", "\t", "\n", "\r", "\u00a0", "\u2003", "\u3000", "a--b"]),
        st.text(max_size=6),
    ).map("".join),
    st.text(max_size=10).map(lambda text: text + "-"),  # ends with the start of the separator
)


def test_fuzzed_bad_topics_are_refused_at_include_time(front: Front) -> None:
    @FUZZ
    @given(topic=BAD_TOPICS)
    def check(topic: str) -> None:
        router = front.router(spec(topic, Job, nothing))  # the router itself does not check
        timers = front.timers()
        with pytest.raises(HandlerRegistrationError):
            timers.include_router(router)
        with pytest.raises(HandlerRegistrationError):
            front.timers(routers=[router])
        assert_nothing_written(front)

    check()


GOOD_TOPICS = st.text(min_size=1, max_size=20).filter(
    lambda topic: (
        topic.isprintable()
        and not any(char.isspace() for char in topic)
        and "--" not in topic
        and not topic.endswith("-")
    )  # `orders-` + `--` + id would split in the wrong place in seed-era keys
)


def test_fuzzed_good_topics_work_end_to_end(front: Front) -> None:
    @FUZZ
    @given(topic=GOOD_TOPICS)
    def check(topic: str) -> None:
        seen: Recorder[str] = Recorder()
        timers = front.timers(spec(topic, Job, lambda payload, context: seen.record(payload.note)))
        timers.set_timer(topic, "a", Job(n=1, note=topic), NOW)
        timers.handle_ready_timers()
        assert seen.items == [topic]
        front.raw.flushall()

    check()


@pytest.mark.parametrize("topic", ["", "a--b", "with space", "ends-", 7], ids=repr)
def test_requeue_with_a_malformed_topic_is_refused(front: Front, topic: Any) -> None:
    timers = front.timers(spec("jobs", Job, nothing))
    with pytest.raises(InvalidTopicError):
        timers.requeue_dead_letter(topic, "a")
    assert_nothing_written(front)


def test_duplicate_topics_are_refused(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, nothing))
    with pytest.raises(HandlerRegistrationError):
        timers.include_router(front.router(spec("jobs", Other, nothing)))
    with pytest.raises(HandlerRegistrationError):
        front.timers(spec("dup", Job, nothing), spec("dup", Job, nothing))
    with pytest.raises(HandlerRegistrationError):
        timers.include_routers(front.router(spec("fresh", Job, nothing)), front.router(spec("fresh", Job, nothing)))
    assert_nothing_written(front)


def test_a_refused_router_registers_none_of_its_handlers(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, nothing))
    with pytest.raises(HandlerRegistrationError):
        timers.include_router(front.router(spec("good", Job, nothing), spec("bad topic", Job, nothing)))
    with pytest.raises(HandlerNotFoundError):
        timers.set_timer("good", "a", Job(n=1), NOW)
    timers.include_router(front.router(spec("good", Job, nothing)))  # still free
    assert_nothing_written(front)


def test_async_handlers_are_for_the_async_front_end_only(front: Front) -> None:
    router = Router()

    @router.handler(topic="coro", schema=Job)
    async def coroutine_handler(payload: Job, context: dict[str, Any]) -> None:
        return None

    timers = front.timers()
    if front.is_async:
        timers.include_router(router)  # and plain `def` handlers too:
        plain = Router()
        plain.handler(topic="plain", schema=Job)(nothing)
        timers.include_router(plain)
    else:
        with pytest.raises(HandlerRegistrationError, match="async"):
            timers.include_router(router)
        with pytest.raises(HandlerNotFoundError):
            timers.set_timer("coro", "a", Job(n=1), NOW)
    assert_nothing_written(front)


def test_bad_schema_and_max_attempts_are_refused_by_the_router() -> None:
    router = Router()
    with pytest.raises(HandlerRegistrationError):
        router.handler(topic="jobs", schema=dict)  # type: ignore[type-var]
    with pytest.raises(HandlerRegistrationError):
        router.handler(topic="jobs", schema=Job, max_attempts=0)
