"""Runs core operations on a blocking `redis.Redis` client."""

from __future__ import annotations

from typing import Any, TypeVar

import redis
import redis.exceptions
from redis.client import NEVER_DECODE

from redis_timers.errors import TimersConnectionError
from redis_timers.ops import Arg, Command, Flow, Op, ScriptCall
from redis_timers.sync.lane import Lane

T = TypeVar("T")

RAW_REPLY = {NEVER_DECODE: True}
CONNECTION_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class SyncDriver:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._lane = Lane.for_client(client)

    def execute(self, op: Op) -> Any:
        try:
            if isinstance(op, ScriptCall):
                return self._evalsha(op)
            assert isinstance(op, Command)
            return self.client.execute_command(*op.args)  # type: ignore[no-untyped-call]
        except CONNECTION_ERRORS as error:
            raise TimersConnectionError(f"Redis is unreachable: {error}") from error

    def _evalsha(self, op: ScriptCall) -> Any:
        prefix: tuple[Arg, ...] = ("EVALSHA", op.script.sha, len(op.keys), *op.keys)
        try:
            return self._send(prefix, op.args, op.raw_reply)
        except redis.exceptions.NoScriptError:
            # First use on this server (or it restarted, or its script cache was flushed).
            self.client.script_load(op.script.source)
            return self._send(prefix, op.args, op.raw_reply)

    def _send(self, prefix: tuple[Arg, ...], rest: tuple[Arg, ...], raw_reply: bool) -> Any:
        if self._lane is not None:
            taken, reply = self._lane.try_execute(prefix, rest, raw_reply=raw_reply)
            if taken:
                return reply
        options = RAW_REPLY if raw_reply else {}
        return self.client.execute_command(*prefix, *rest, **options)  # type: ignore[no-untyped-call]

    def drive(self, flow: Flow[T]) -> T:
        reply: Any = None
        while True:
            try:
                op = flow.send(reply)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            reply = self.execute(op)
