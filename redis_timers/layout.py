"""The namespace's shard count, recorded once and checked by every process before it first touches a shard.

A timer's shard is a function of the count (`keys.shard_of`), so two processes with different counts would
look for the same timer in different shards: one would never see what the other wrote, and a worker would
never fire it. A namespace of N > 1 shards therefore records N at `Namespace.layout_key`; a process with
another N, or with one shard on a namespace that records several, refuses to run (`ShardLayoutError`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from redis_timers import codec, scripts
from redis_timers.errors import ShardLayoutError
from redis_timers.keys import Keyspace, Namespace
from redis_timers.ops import Flow, ScriptCall

T = TypeVar("T")

RECORDED_ANOTHER_COUNT, HOLDS_ONE_SHARD_DATA = 1, 2
"""What `check_layout.lua` answers when this process may not run (0 when it may)."""


def check_layout(namespace: Namespace, topics: Iterable[str]) -> Flow[int]:
    """One script call: records N > 1 if nothing is recorded yet, else refuses a count other than the recorded one.

    A process of N > 1 shards also refuses a namespace holding one-shard data of its topics (timelines, or dead
    letters): those timers would never fire under it. All these keys carry the one-shard tag: one slot.
    Returns 0 (a flow's result, so that a worker can run it as a maintenance step).
    """
    one_shard = Keyspace(namespace.name)
    keys = (namespace.layout_key, one_shard.dead_letters, *(one_shard.timeline(topic) for topic in topics))
    reply = yield ScriptCall(scripts.CHECK_LAYOUT, keys, (namespace.shards,))
    verdict = int(reply[0])
    if verdict == RECORDED_ANOTHER_COUNT:
        raise ShardLayoutError(
            f"namespace {namespace.name!r} records {codec.text(reply[1])} shard(s) at {namespace.layout_key!r}, "
            f"but this process has TIMERS_SHARDS={namespace.shards}. {_how_to_move(namespace)}"
        )
    if verdict == HOLDS_ONE_SHARD_DATA:
        raise ShardLayoutError(
            f"namespace {namespace.name!r} holds data written with one shard ({codec.text(reply[1])!r}), but this "
            f"process has TIMERS_SHARDS={namespace.shards}. {_how_to_move(namespace)}"
        )
    return 0


def _how_to_move(namespace: Namespace) -> str:
    return (
        "A namespace's shard count cannot change in place (a timer's shard depends on it). To move, start the "
        "processes with the new TIMERS_SHARDS under a new namespace (TIMERS_NAMESPACE), point writers there, "
        f"and keep workers of {namespace.name!r} running with its old count until it is drained."
    )


def checked_first(check: Flow[Any] | None, flow: Flow[T]) -> Flow[T]:
    """`flow`, with `check` run before its first op but after its input checks (which run before its first yield),
    so that bad input is still refused before anything reaches Redis."""
    try:
        op = next(flow)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    if check is not None:
        yield from check
    while True:
        reply = yield op
        try:
            op = flow.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
