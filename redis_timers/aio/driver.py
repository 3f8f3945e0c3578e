"""Runs core operations on a `redis.asyncio.Redis` client."""

from __future__ import annotations

from typing import Any, TypeVar

import redis.asyncio
import redis.exceptions

from redis_timers.errors import TimersConnectionError
from redis_timers.ops import Command, Flow, Op, ScriptCall

T = TypeVar("T")

CONNECTION_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class AsyncDriver:
    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client
        self._scripts: dict[str, Any] = {}

    async def execute(self, op: Op) -> Any:
        try:
            if isinstance(op, ScriptCall):
                script = self._scripts.get(op.script.name)
                if script is None:
                    # redis-py's Script sends EVALSHA and loads the source once per server on NOSCRIPT.
                    script = self._scripts[op.script.name] = self.client.register_script(op.script.source)
                return await script(keys=op.keys, args=op.args)
            assert isinstance(op, Command)
            return await self.client.execute_command(*op.args)  # type: ignore[no-untyped-call]
        except CONNECTION_ERRORS as error:
            raise TimersConnectionError(f"Redis is unreachable: {error}") from error

    async def drive(self, flow: Flow[T]) -> T:
        reply: Any = None
        while True:
            try:
                op = flow.send(reply)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            reply = await self.execute(op)
