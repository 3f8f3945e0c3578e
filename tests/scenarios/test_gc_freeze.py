"""`TIMERS_FREEZE_GC`: `run_forever` collects once, then freezes the heap, so that full collections stay short."""

from __future__ import annotations

import datetime
import gc
import weakref

from redis_timers import TimersSettings
from tests.gc_objects import Node, cycle, cyclic_garbage
from tests.harness import Front, Recorder, running, spec
from tests.scenarios.models import Job

NOW = datetime.timedelta(0)


def test_run_forever_collects_the_garbage_of_start_up_then_freezes_the_rest(front: Front, unfrozen_heap: None) -> None:
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
    first, second = cycle()
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


def test_without_the_setting_run_forever_leaves_the_collector_alone(front: Front, unfrozen_heap: None) -> None:
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


def test_handle_ready_timers_never_freezes(front: Front, unfrozen_heap: None) -> None:
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
