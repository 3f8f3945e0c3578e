"""Hostile input to `set_timers` / `remove_timers`: a bad timer in the last batch of a call over several batches and
shards writes nothing, whatever its fault, through both front ends."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from redis_timers import (
    ActivationError,
    HandlerNotFoundError,
    InvalidTimerError,
    InvalidTimerIdError,
    NaiveDatetimeError,
    PayloadTypeError,
    TimerRef,
    TimerSpec,
    TimersSettings,
    UnstorablePayloadError,
)
from tests.harness import Front, spec
from tests.scenarios.models import Job, Other

LATER = datetime.timedelta(hours=1)
UTC = datetime.timezone.utc
CALL = 3000
"""Timers per call: six batches on one shard, two per shard on four."""


def no_op(payload: Any, context: dict[str, Any]) -> None:
    pass


def state(front: Front) -> dict[str, int]:
    """Every key and its size: what a call that writes nothing leaves as it was."""
    sizes = {}
    for key in front.all_keys():
        reply = front.raw.type(key)
        kind = reply.decode() if isinstance(reply, bytes) else reply
        sizes[key] = {"zset": front.raw.zcard, "hash": front.raw.hlen, "set": front.raw.scard}.get(
            kind, front.raw.strlen
        )(key)
    return sizes


class Odd(str):
    """A str subclass: accepted as an id, framed as its UTF-8."""


BAD_TIMERS = [
    (TimerSpec("nope", "x", Job(n=0), LATER), HandlerNotFoundError, "nope"),
    (TimerSpec("jobs", "x", Other(text="wrong schema"), LATER), PayloadTypeError, None),
    (TimerSpec("jobs", "x", {"n": 1}, LATER), PayloadTypeError, None),  # type: ignore[arg-type]
    (TimerSpec("jobs", "x", Job.model_construct(n="not an int"), LATER), UnstorablePayloadError, None),
    (TimerSpec("jobs", "", Job(n=0), LATER), InvalidTimerIdError, None),
    (TimerSpec("jobs", "\ud800", Job(n=0), LATER), InvalidTimerIdError, None),
    (TimerSpec("jobs", "x" * 1025, Job(n=0), LATER), InvalidTimerIdError, None),
    (TimerSpec("jobs", "\u00e9" * 513, Job(n=0), LATER), InvalidTimerIdError, None),
    (TimerSpec("jobs", 7, Job(n=0), LATER), InvalidTimerIdError, None),  # type: ignore[arg-type]
    (TimerSpec("jobs", b"x", Job(n=0), LATER), InvalidTimerIdError, None),  # type: ignore[arg-type]
    (TimerSpec("jobs", "x", Job(n=0), -datetime.timedelta(milliseconds=1)), ActivationError, None),
    (TimerSpec("jobs", "x", Job(n=0), datetime.timedelta(days=365 * 101)), ActivationError, None),
    (TimerSpec("jobs", "x", Job(n=0), 5), ActivationError, None),  # type: ignore[arg-type]
    (TimerSpec("jobs", "x", Job(n=0), True), ActivationError, None),  # type: ignore[arg-type]
    (TimerSpec("jobs", "x", Job(n=0)), ActivationError, None),
    (TimerSpec("jobs", "x", Job(n=0), LATER, datetime.datetime.now(UTC)), ActivationError, None),
    (TimerSpec("jobs", "x", Job(n=0), None, datetime.datetime(2030, 1, 1)), NaiveDatetimeError, None),
    (TimerSpec("jobs", "x", Job(n=0), None, datetime.datetime(1969, 1, 1, tzinfo=UTC)), ActivationError, None),
    (TimerSpec("jobs", "x", Job(n=0), None, datetime.date(2030, 1, 1)), ActivationError, None),  # type: ignore[arg-type]
    (("jobs", "x"), InvalidTimerError, None),
    (5, InvalidTimerError, None),
    ("jobs", InvalidTimerError, None),
]


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")  # the model_construct payload, on its way to refusal
@pytest.mark.parametrize("shards", [1, 4], ids=lambda shards: f"shards={shards}")
@pytest.mark.parametrize(("bad", "error", "names"), BAD_TIMERS, ids=[repr(bad)[:60] for bad, _, _ in BAD_TIMERS])
def test_a_bad_timer_last_in_a_call_of_several_batches_writes_nothing(
    front: Front, shards: int, bad: Any, error: type[Exception], names: str | None
) -> None:
    timers = front.timers(
        spec("jobs", Job, no_op), spec("others", Other, no_op), settings=TimersSettings(shards=shards)
    )
    timers.call("set_timers", [("jobs", "warm-up", Job(n=0), LATER)])  # scripts loaded, layout checked
    before = state(front)
    items: list[Any] = [
        TimerSpec("jobs" if n % 3 else "others", f"t{n}\r\n$3\x00\u00e9", Job(n=n) if n % 3 else Other(text="o"), LATER)
        for n in range(CALL - 1)
    ]
    items.append(bad)

    with pytest.raises(error, match=names or f"timer {CALL - 1} of the call"):
        timers.call("set_timers", items)
    with pytest.raises(error, match=names or f"timer {CALL - 1} of the call"):
        timers.call("set_timers", iter(items))

    assert state(front) == before
    assert timers.call("get_timer", "jobs", "warm-up") is not None  # the connection still answers its own calls


def test_odd_ids_and_a_str_subclass_go_through_every_batch_as_given(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, no_op), settings=TimersSettings(shards=4))
    ids = [f"{n}\r\n*1\r\n$4\r\nPING\x00\u00e9\U0001f600" for n in range(1200)] + [Odd("odd"), "\U0001f600" * 256]
    results = timers.call("set_timers", ((("jobs", timer_id, Job(n=n), LATER)) for n, timer_id in enumerate(ids)))
    assert [result.timer_id for result in results] == ids
    assert all(result.written for result in results)
    for n in (0, 1199, 1200, 1201):
        info = timers.call("get_timer", "jobs", ids[n])
        assert info is not None
        assert info.payload == Job(n=n)
    assert timers.call("remove_timers", [TimerRef("jobs", timer_id) for timer_id in ids]) == [True] * len(ids)


def test_an_input_that_raises_mid_iteration_writes_nothing(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, no_op), settings=TimersSettings(shards=4))
    timers.call("set_timers", [("jobs", "warm-up", Job(n=0), LATER)])
    before = state(front)

    def items() -> Any:
        for n in range(2000):
            yield TimerSpec("jobs", f"j{n}", Job(n=n), LATER)
        raise LookupError("the source failed")

    with pytest.raises(LookupError, match="the source failed"):
        timers.call("set_timers", items())
    with pytest.raises(LookupError, match="the source failed"):
        timers.call("remove_timers", (TimerRef("jobs", item.timer_id) for item in items()))
    assert state(front) == before
