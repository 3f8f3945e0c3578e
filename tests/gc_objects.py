"""Objects for the tests of `TIMERS_FREEZE_GC`: containers the collector tracks, and cycles only it can free."""

from __future__ import annotations

import weakref


class Node:
    """A container object the collector tracks, to make a reference cycle of."""

    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> tuple[Node, Node]:
    """Two nodes that refer to each other: once nothing else does, only a collection frees them."""
    first, second = Node(), Node()
    first.other, second.other = second, first
    return first, second


def cyclic_garbage() -> weakref.ref[Node]:
    """A cycle no reference reaches. Returns a weak reference to one of its nodes."""
    return weakref.ref(cycle()[0])
