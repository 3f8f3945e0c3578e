"""`heap.freeze_heap` and its setting, without Redis."""

from __future__ import annotations

import gc
import weakref

import pytest

from redis_timers import TimersSettings, heap
from redis_timers.errors import SettingsError
from tests.gc_objects import Node, cycle


def test_freeze_heap_frees_cyclic_garbage_first_and_freezes_what_lives(unfrozen_heap: None) -> None:
    gc.disable()  # only freeze_heap's own collection may free the cycle below
    garbage = weakref.ref(cycle()[0])
    alive = Node()
    heap.freeze_heap()
    assert garbage() is None
    assert gc.get_freeze_count() > 0
    assert not any(node is alive for node in gc.get_objects())  # frozen objects are in no generation


def test_the_variable_turns_it_on_and_bad_values_are_refused() -> None:
    assert TimersSettings().freeze_gc is False
    assert TimersSettings.from_env({"TIMERS_FREEZE_GC": "1"}).freeze_gc is True
    with pytest.raises(SettingsError, match="TIMERS_FREEZE_GC='often' is not a valid flag"):
        TimersSettings.from_env({"TIMERS_FREEZE_GC": "often"})
    with pytest.raises(SettingsError, match="freeze_gc"):
        TimersSettings(freeze_gc=1)  # type: ignore[arg-type]
