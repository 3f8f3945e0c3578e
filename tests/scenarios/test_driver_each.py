"""`execute_each`: several script calls in one pipeline, a reply or a typed error per call; both front ends."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from redis_timers import TimersConnectionError, TimersServerError, flows
from redis_timers.aio.driver import AsyncDriver
from redis_timers.cli.embedded import free_port
from redis_timers.keys import Namespace, shard_of
from redis_timers.ops import ScriptCall
from redis_timers.sync.driver import SyncDriver
from tests.harness import Front, spec
from tests.scenarios.models import Job

TOPIC = "jobs"
NAMESPACE = Namespace("timers", 4)


def one_id_per_shard() -> dict[int, str]:
    """A timer id of each shard, shard by shard."""
    ids: dict[int, str] = {}
    for n in range(1000):
        ids.setdefault(shard_of(TOPIC, f"t{n}", NAMESPACE.shards), f"t{n}")
    return dict(sorted(ids.items()))


def set_calls(front: Front) -> list[ScriptCall]:
    """A `set_timer` call into each of the four shards, in shard order."""
    registry = front.timers(spec(TOPIC, Job, lambda payload, context: None)).timers.registry
    later = datetime.timedelta(hours=1)
    return [
        flows.set_timer_call(NAMESPACE, registry, TOPIC, timer_id, Job(n=shard), later, None)
        for shard, timer_id in one_id_per_shard().items()
    ]


def execute_each(front: Front, calls: list[ScriptCall], url: str | None = None) -> list[Any]:
    client = front.client(url=url, decode_responses=False)
    try:
        if front.is_async:
            return front.portal.call(AsyncDriver(client).execute_each, calls)
        return SyncDriver(client).execute_each(calls)
    finally:
        front.close_client(client)


def test_each_call_gets_its_own_reply(front: Front) -> None:
    replies = execute_each(front, set_calls(front))

    assert [type(reply) for reply in replies] == [int] * 4
    for shard, timer_id in one_id_per_shard().items():
        assert front.raw.zrange(NAMESPACE.keyspaces[shard].timeline(TOPIC), 0, -1) == [timer_id]


def test_a_call_that_fails_gets_its_typed_error_and_the_others_their_replies(front: Front) -> None:
    front.raw.set(NAMESPACE.keyspaces[2].timeline(TOPIC), "not a sorted set")

    replies = execute_each(front, set_calls(front))

    assert isinstance(replies[2], TimersServerError)
    assert replies[2].code == "WRONGTYPE"
    assert [type(reply) for n, reply in enumerate(replies) if n != 2] == [int] * 3


def test_calls_whose_script_is_missing_load_it_and_are_sent_again(front: Front) -> None:
    calls = set_calls(front)
    execute_each(front, calls[:1])  # loaded once...
    front.raw.script_flush()  # ...and gone, as after a restart or a failover

    replies = execute_each(front, calls)

    assert [type(reply) for reply in replies] == [int] * 4
    assert sum(front.raw.zcard(keyspace.timeline(TOPIC)) for keyspace in NAMESPACE.keyspaces) == 4


def test_a_server_that_cannot_be_reached_fails_the_whole_pipeline(front: Front) -> None:
    with pytest.raises(TimersConnectionError):
        execute_each(front, set_calls(front), url=f"redis://127.0.0.1:{free_port()}")
