"""What core flows ask a front end to do. A front end executes each and sends the reply back.

Core operations are generators (`Flow`) that yield these and receive the replies, so the
sequencing is written once and driven by both the blocking and the asyncio front end.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, NamedTuple, TypeVar

from redis_timers.scripts import LuaScript

Arg = str | int | float | bytes


class ScriptCall(NamedTuple):
    """Run `script` with these keys and arguments (EVALSHA). A tuple: `set_timer` makes one per call."""

    script: LuaScript
    keys: tuple[str, ...]
    args: tuple[Arg, ...]

    @property
    def evalsha_prefix(self) -> tuple[str, ...]:
        """`EVALSHA <sha> <key count> <keys...>`: the leading arguments; `args` follow them."""
        return ("EVALSHA", self.script.sha, str(len(self.keys)), *self.keys)

    @property
    def command(self) -> tuple[Arg, ...]:
        return (*self.evalsha_prefix, *self.args)


class Command(NamedTuple):
    """A plain command for the few reads whose reply is the same under RESP2 and RESP3."""

    args: tuple[Arg, ...]

    @property
    def command(self) -> tuple[Arg, ...]:
        return self.args


class OneConnection(NamedTuple):
    """Send `ops` back to back on one connection (a pipeline, not a transaction); the reply is the list of their
    replies, an error reply as its `TimersError` in its place. For `WAIT` and `WAITAOF`, which count only the
    writes made before them on their own connection."""

    ops: tuple[ScriptCall | Command, ...]


class NodeOf(NamedTuple):
    """The name of the node `call` would be sent to (`host:port` of a cluster node, "" for a plain client's one
    server), from what the client knows: no command is sent."""

    call: ScriptCall


Op = ScriptCall | Command | OneConnection | NodeOf
T = TypeVar("T")
Flow = Generator[Op, Any, T]
