"""Runs core operations on a `redis.asyncio.Redis` client."""

from __future__ import annotations

from typing import Any, TypeVar

import redis.asyncio
import redis.exceptions
from redis.client import NEVER_DECODE

from redis_timers.aio.lane import CONNECTION_ERRORS, Lane
from redis_timers.errors import TimersConnectionError
from redis_timers.ops import Arg, Flow, Op, ScriptCall

T = TypeVar("T")

RAW_REPLY = {NEVER_DECODE: True}


class AsyncDriver:
    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client
        self._lane = Lane.for_client(client)

    async def execute(self, op: Op) -> Any:
        try:
            if not isinstance(op, ScriptCall):
                return await self.client.execute_command(*op.args)  # type: ignore[no-untyped-call]
            prefix: tuple[Arg, ...] = ("EVALSHA", op.script.sha, len(op.keys), *op.keys)
            for attempt in range(2):
                try:
                    if self._lane is not None:
                        taken, reply = await self._lane.try_execute(prefix, op.args, raw_reply=op.raw_reply)
                        if taken:
                            return reply
                    options = RAW_REPLY if op.raw_reply else {}
                    return await self.client.execute_command(*prefix, *op.args, **options)  # type: ignore[no-untyped-call]
                except redis.exceptions.NoScriptError:
                    if attempt:
                        raise
                    # First use on this server (or it restarted, or its script cache was flushed).
                    await self.client.script_load(op.script.source)
        except CONNECTION_ERRORS as error:
            raise TimersConnectionError(f"Redis is unreachable: {error}") from error
        raise AssertionError("unreachable")

    async def drive(self, flow: Flow[T]) -> T:
        reply: Any = None
        while True:
            try:
                op = flow.send(reply)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            reply = await self.execute(op)
