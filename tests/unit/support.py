"""Shared helpers for the Redis-free unit tests: schemas, registries, flow driving, hash slots."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import pydantic

from redis_timers import scripts
from redis_timers.ops import Command, Flow, Op, ScriptCall
from redis_timers.registry import HandlerRegistry
from redis_timers.router import Router

T = TypeVar("T")

BASE_MS = 1_700_000_000_000
"""An arbitrary server clock reading (ms) used as the server's time at monotonic 0."""


class Order(pydantic.BaseModel):
    order_id: int
    note: str = ""


class Reminder(pydantic.BaseModel):
    text: str


def handle_order(payload: Order, context: dict[str, Any]) -> None:
    """A plain handler; the unit tests never call it."""


def handle_reminder(payload: Reminder, context: dict[str, Any]) -> None:
    """A plain handler; the unit tests never call it."""


def make_router(max_attempts: Mapping[str, int] | None = None) -> Router:
    limits = max_attempts or {}
    router = Router()
    router.handler(topic="orders", schema=Order, max_attempts=limits.get("orders"))(handle_order)
    router.handler(topic="reminders", schema=Reminder, max_attempts=limits.get("reminders"))(handle_reminder)
    return router


def make_registry(
    *, separator: str = "--", max_attempts: Mapping[str, int] | None = None, empty: bool = False
) -> HandlerRegistry:
    registry = HandlerRegistry(separator=separator, accepts_async=False, front_end="unit-test")
    if not empty:
        registry.include(make_router(max_attempts))
    return registry


def encode(value: Any, as_bytes: bool) -> Any:
    """What a client with decode_responses=False returns instead of `value` (recursively)."""
    if not as_bytes:
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, list):
        return [encode(item, as_bytes) for item in value]
    if isinstance(value, dict):
        return {encode(key, as_bytes): encode(item, as_bytes) for key, item in value.items()}
    return value


def legacy_page(flat: list[Any], topics: Iterable[str] = ("orders", "reminders"), separator: str = "--") -> list[Any]:
    """`read_legacy`'s reply for a page of the original timeline holding `flat` (member, score, ...): its size, then
    only the entries of `topics` (a member's topic ends at its first separator), as the script answers."""
    handled = {topic.encode("utf-8") for topic in topics}
    pairs = list(zip(flat[0::2], flat[1::2]))
    kept = [
        item
        for member, score in pairs
        if _topic_of(member, separator.encode("utf-8")) in handled
        for item in (member, score)
    ]
    return [len(pairs), *kept]


def _topic_of(member: str | bytes, separator: bytes) -> bytes | None:
    raw = member.encode("utf-8", "surrogateescape") if isinstance(member, str) else member
    topic, found, _ = raw.partition(separator)
    return topic if found else None


_NO_REPLY = object()


def run_flow(flow: Flow[T], replies: Iterable[Any]) -> tuple[list[Op], T]:
    """Drive `flow` by hand, answering its ops with `replies` in order; returns the ops and the result."""
    ops: list[Op] = []
    scripted = iter(replies)
    try:
        op = next(flow)
        while True:
            ops.append(op)
            reply = next(scripted, _NO_REPLY)
            if reply is _NO_REPLY:
                raise AssertionError(f"the flow asked for more than was scripted; last op: {op!r}")
            op = flow.send(reply)
    except StopIteration as done:
        result: T = done.value
        return ops, result


def nothing_to_import(flow: Flow[T]) -> tuple[list[Op], T]:
    """Drive a pass of the import (or one step of it) as the server answers it when the original library left
    nothing: an empty original timeline and payloads hash, no receipts."""
    ops: list[Op] = []
    reply: Any = None
    try:
        while True:
            op = flow.send(reply)
            ops.append(op)
            reply = _nothing_left(op)
    except StopIteration as done:
        return ops, done.value


def _nothing_left(op: Op) -> Any:
    if isinstance(op, Command):
        assert op.args[0] == "HLEN", op
        return 0
    assert isinstance(op, ScriptCall), op
    if op.script is scripts.LEGACY_FINGERPRINT:
        return [b"0", b"", b"", b"", b""]
    if op.script is scripts.READ_LEGACY:
        return [0]  # an empty page: no entries, so none of a handled topic
    assert op.script is scripts.LEGACY_RECEIPTS, op
    return [b"0"]


class FixedRandom(random.Random):
    """A Random whose `random()` (and so `uniform`) always returns the same fraction."""

    def __init__(self, value: float = 0.0) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def crc16(data: bytes) -> int:
    """CRC16/XMODEM, as Redis Cluster uses for key slots."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key: str) -> int:
    """The Redis Cluster slot of `key`, following the hash tag rule."""
    raw = key.encode("utf-8")
    start = raw.find(b"{")
    if start != -1:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1 : end]
    return crc16(raw) % 16384


def assert_single_slot(keys: Iterable[str], namespace: str) -> None:
    """Every key carries the `{namespace}` hash tag, so a script touching them all is single-slot."""
    key_list = list(keys)
    assert key_list
    for key in key_list:
        assert key.startswith("{" + namespace + "}:"), key
    assert {key_slot(key) for key in key_list} == {key_slot("{" + namespace + "}")}
