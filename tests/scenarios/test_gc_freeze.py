"""`TIMERS_FREEZE_GC`: `run_forever` collects once, then freezes the heap, so that full collections stay short."""

from __future__ import annotations

import datetime
import gc
import weakref
from collections.abc import Iterator

import pytest

from redis_timers import TimersSettings
from tests.harness import Front, Recorder, running, spec
from tests.scenarios.models import Job

NOW = datetime.timedelta(0)


class Node:
    """A container object the collector tracks, to make a reference cycle of."""

    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """No frozen object before the test, and none left after it: other tests' collections walk the whole heap.

    The garbage the test leaves (automatic collection is off in most) is collected before the next test, which may
    run with warnings as errors (tests/testing): an unclosed socket found later would fail that test instead."""
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.enable()
    gc.collect()


def cyclic_garbage() -> weakref.ref[Node]:
    """A cycle no reference reaches: only a collection frees it. Returns a weak reference to one of its nodes."""
    first, second = Node(), Node()
    first.other, second.other = second, first
    return weakref.ref(first)


def test_run_forever_collects_the_garbage_of_start_up_then_freezes_the_rest(front: Front, unfrozen: None) -> None:
    calls: Recorder[int] = Recorder()
    timers = front.timers(
        spec("jobs", Job, lambda payload, context: calls.record(payload.n)),
        settings=TimersSettings(freeze_gc=True),
    )
    gc.disable()  # no automatic collection frees the cycle: only the worker's own can
    garbage = cyclic_garbage()
    mine = Node()  # the caller's own objects are frozen too
    plain = Node()
    plain_ref = weakref.ref(plain)
    first, second = Node(), Node()
    first.other, second.other = second, first
    cycle_ref = weakref.ref(first)
    timers.set_timer("jobs", "t", Job(n=1), NOW)
    with running(timers):
        calls.wait_for(1)
        assert garbage() is None, "the cycle made before the worker started was not collected"
        assert gc.get_freeze_count() > 0
        assert not any(node is mine for node in gc.get_objects())  # in no generation: frozen
        # A frozen object is still freed when its last reference goes; a frozen cycle is not, once unreachable.
        del plain, first, second
        assert plain_ref() is None
        gc.collect()
        assert cycle_ref() is not None
    assert calls.items == [1]
    assert gc.get_freeze_count() > 0  # the process's, not the worker's: it outlives run_forever


def test_without_the_setting_run_forever_leaves_the_collector_alone(front: Front, unfrozen: None) -> None:
    calls: Recorder[int] = Recorder()
    timers = front.timers(spec("jobs", Job, lambda payload, context: calls.record(payload.n)))
    gc.disable()
    garbage = cyclic_garbage()
    timers.set_timer("jobs", "t", Job(n=1), NOW)
    with running(timers):
        calls.wait_for(1)
        assert gc.get_freeze_count() == 0
    assert garbage() is not None  # nothing collected for the worker (automatic collection is off)
    gc.collect()
    assert garbage() is None


def test_handle_ready_timers_never_freezes(front: Front, unfrozen: None) -> None:
    """A single pass is what a cron job or a test calls again and again: a collection per call would cost each."""
    calls: Recorder[int] = Recorder()
    timers = front.timers(
        spec("jobs", Job, lambda payload, context: calls.record(payload.n)),
        settings=TimersSettings(freeze_gc=True),
    )
    timers.set_timer("jobs", "t", Job(n=1), NOW)
    timers.handle_ready_timers()
    assert calls.items == [1]
    assert gc.get_freeze_count() == 0
