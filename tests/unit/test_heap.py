"""`heap.freeze_heap` and its setting, without Redis."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from redis_timers import TimersSettings, heap
from redis_timers.errors import SettingsError


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    gc.disable()  # only freeze_heap's own collection may free the cycle below
    yield
    gc.unfreeze()
    gc.enable()
    gc.collect()  # what the test left, collected in it rather than in whichever test runs next


def test_freeze_heap_frees_cyclic_garbage_first_and_freezes_what_lives(unfrozen: None) -> None:
    first, second, alive = Node(), Node(), Node()
    first.other, second.other = second, first
    garbage = weakref.ref(first)
    del first, second
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
