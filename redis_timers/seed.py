"""The original library's listing calls, `fetch_all_timers` and `fetch_ready_timers`, in its shapes.

The original kept every timer in two keys, a `topic--id` -> whole-second ZSET and a payload HASH,
and these calls read them whole. Here timers live per topic, so both read every topic this
`Timers` handles (the only topics it knows) and name each timer `topic<separator>id` as before.
Like the originals they are unbounded, one script call per topic and shard (one after the other)
returning all its timers there: for tests and small sets, not for a backlog of millions.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from redis_timers import codec, scripts
from redis_timers.errors import ReplacedFeatureError
from redis_timers.keys import Namespace
from redis_timers.ops import Flow, ScriptCall
from redis_timers.registry import HandlerRegistry
from redis_timers.router import Handler
from redis_timers.settings import TimersSettings
from redis_timers.validation import check_aware

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_ONE_MS = datetime.timedelta(milliseconds=1)


class Listed(NamedTuple):
    score: float
    """Due time in ms (while a handler runs the timer, when its lease ends)."""
    member: str
    """`topic<separator>id`, the original library's name of a timer."""
    payload: str | None


def list_timers(
    namespace: Namespace,
    registry: HandlerRegistry,
    settings: TimersSettings,
    *,
    up_to_ms: int | None,
    with_payloads: bool,
) -> Flow[list[Listed]]:
    """Every timer of every handled topic in every shard scored up to `up_to_ms` (all when None), earliest first."""
    step = 3 if with_payloads else 2
    listed: list[Listed] = []
    for topic in registry.topics:
        for keyspace in namespace.keyspaces:
            flat = yield ScriptCall(
                scripts.LIST_TIMERS,
                keyspace.topic_keys(topic)[:2],
                ("+inf" if up_to_ms is None else up_to_ms, "1" if with_payloads else "0"),
            )
            rows = list(flat or ())
            for at in range(0, len(rows), step):
                member = f"{topic}{settings.separator}{codec.text(rows[at])}"
                payload = codec.text(rows[at + 2]) if with_payloads else None
                listed.append(Listed(float(rows[at + 1]), member, payload))
    listed.sort()
    return listed


def fetch_all_timers(
    namespace: Namespace, registry: HandlerRegistry, settings: TimersSettings
) -> Flow[tuple[list[str], dict[str, str]]]:
    """The original's shape: the `topic--id` members, earliest first, and a dict of their payload JSON."""
    listed = yield from list_timers(namespace, registry, settings, up_to_ms=None, with_payloads=True)
    return [row.member for row in listed], {row.member: row.payload or "" for row in listed}


def fetch_ready_timers(
    namespace: Namespace, registry: HandlerRegistry, settings: TimersSettings, timestamp: Any
) -> Flow[list[str]]:
    """The `topic--id` members due at or before the aware `timestamp`, earliest first."""
    # Rounded down: a timer due 0.4 ms after `timestamp` is not due at `timestamp`.
    up_to_ms = (check_aware(timestamp, "timestamp") - _EPOCH) // _ONE_MS
    listed = yield from list_timers(namespace, registry, settings, up_to_ms=up_to_ms, with_payloads=False)
    return [row.member for row in listed]


class HandlersByTopic(Mapping[str, Handler[Any]]):
    """The original `Timers.handlers_by_topics`, read-only: topic -> `Handler` (`.topic`, `.schema`, `.handler`).

    The original was a plain dict that tests edited by hand; here the registry checks every handler
    as it is included, and running workers rely on what it holds, so edits are refused by name.
    """

    def __init__(self, registry: HandlerRegistry) -> None:
        self._registry = registry

    def __getitem__(self, topic: str) -> Handler[Any]:
        if topic not in self._registry.topics:
            raise KeyError(topic)
        return self._registry.find(topic)

    def __iter__(self) -> Iterator[str]:
        return iter(self._registry.topics)

    def __len__(self) -> int:
        return len(self._registry)

    def __setitem__(self, topic: str, handler: Any) -> None:
        raise ReplacedFeatureError(
            "handlers_by_topics is read-only: register handlers with include_router(router) or "
            "Timers(routers=[...]), which check them"
        )

    def __delitem__(self, topic: str) -> None:
        raise ReplacedFeatureError(
            "handlers_by_topics is read-only: a Timers cannot forget a topic while workers may rely on it; "
            "build one whose include_router calls leave that topic's router out"
        )

    def __repr__(self) -> str:
        return f"HandlersByTopic({dict(self)!r})"
