"""The Lua scripts, each prefixed with the shared prelude. Front ends load each once per server (EVALSHA)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from importlib import resources


@dataclasses.dataclass(frozen=True)
class LuaScript:
    name: str
    source: str

    @functools.cached_property
    def sha(self) -> str:
        """The SHA1 that EVALSHA names the script by."""
        return hashlib.sha1(self.source.encode("utf-8"), usedforsecurity=False).hexdigest()


def _load(name: str, *, with_prelude: bool = True) -> LuaScript:
    lua = resources.files("redis_timers") / "lua"
    body = (lua / f"{name}.lua").read_text(encoding="utf-8")
    prelude = (lua / "prelude.lua").read_text(encoding="utf-8") if with_prelude else ""
    return LuaScript(name=name, source=prelude + "\n" + body)


SET_TIMER = _load("set_timer")
REMOVE_TIMER = _load("remove_timer")
GET_TIMER = _load("get_timer")
CYCLE = _load("cycle")
REQUEUE_DEAD_LETTER = _load("requeue_dead_letter")
IMPORT_LEGACY = _load("import_legacy")
REMOVE_LEGACY = _load("remove_legacy", with_prelude=False)
READ_LEGACY = LuaScript(
    name="read_legacy",
    # A script rather than ZRANGE so that the reply is a flat array under RESP2 and RESP3 alike.
    source="return redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2], 'WITHSCORES')",
)

PURGE_DEAD_LETTERS = LuaScript(
    name="purge_dead_letters",
    source="local n = redis.call('HLEN', KEYS[1]); redis.call('DEL', KEYS[1]); return n",
)
