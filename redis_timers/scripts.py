"""The Lua scripts, each prefixed with the shared prelude. Front ends load each once per server (EVALSHA)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
from importlib import resources


@dataclasses.dataclass(frozen=True)
class LuaScript:
    name: str
    source: str

    @functools.cached_property
    def sha(self) -> str:
        """The SHA1 that EVALSHA names the script by."""
        return hashlib.sha1(self.source.encode("utf-8"), usedforsecurity=False).hexdigest()


PRELUDE_FUNCTION = re.compile(r"^local function (\w+)\(", re.MULTILINE)


def _prelude_functions(prelude: str) -> dict[str, str]:
    """The prelude's blank-line separated blocks that define a `local function`, by its name, in order."""
    functions: dict[str, str] = {}
    for block in prelude.split("\n\n"):
        defined = PRELUDE_FUNCTION.search(block)
        if defined is not None:
            functions[defined.group(1)] = block.strip("\n") + "\n"
    return functions


def _with_prelude(body: str, prelude: str) -> str:
    """`body` after the prelude functions it calls, directly or through others.

    A script defines its prelude functions on every call, so it carries only those it uses.
    """
    functions = _prelude_functions(prelude)
    needed: set[str] = set()
    pending = [body]
    while pending:
        text = pending.pop()
        for name, source in functions.items():
            if name not in needed and re.search(rf"\b{name}\(", text):
                needed.add(name)
                pending.append(source)
    return "".join(source for name, source in functions.items() if name in needed) + "\n" + body


def _load(name: str, *, with_prelude: bool = True) -> LuaScript:
    lua = resources.files("redis_timers") / "lua"
    body = (lua / f"{name}.lua").read_text(encoding="utf-8")
    if with_prelude:
        body = _with_prelude(body, (lua / "prelude.lua").read_text(encoding="utf-8"))
    return LuaScript(name=name, source=body)


SET_TIMER = _load("set_timer")
REMOVE_TIMER = _load("remove_timer")
SET_TIMERS = _load("set_timers")
REMOVE_TIMERS = _load("remove_timers")
GET_TIMER = _load("get_timer")
CYCLE = _load("cycle")
PROBE = _load("probe", with_prelude=False)
REQUEUE_DEAD_LETTER = _load("requeue_dead_letter")
IMPORT_LEGACY = _load("import_legacy")
REMOVE_LEGACY = _load("remove_legacy", with_prelude=False)
LEGACY_RECEIPTS = _load("legacy_receipts", with_prelude=False)
SETTLE_LEGACY = _load("settle_legacy")
REMOVE_LEGACY_PAYLOADS = _load("remove_legacy_payloads", with_prelude=False)
LEGACY_COPIES = _load("legacy_copies", with_prelude=False)
LEGACY_SCORES = LuaScript(
    name="legacy_scores",
    # Each member's score as text ('' when it is not on the timeline): ZMSCORE's reply differs between RESP2 and
    # RESP3 (and needs Redis 6.2).
    source="local r = {} for i, m in ipairs(ARGV) do r[i] = redis.call('ZSCORE', KEYS[1], m) or '' end return r",
)
LEGACY_FINGERPRINT = LuaScript(
    name="legacy_fingerprint",
    # What a pass of the import remembers of the original timeline: its size and its first and last entries.
    source="local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES') "
    "local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES') "
    "return {tostring(redis.call('ZCARD', KEYS[1])), first[1] or '', first[2] or '', last[1] or '', last[2] or ''}",
)
LIST_TIMERS = _load("list_timers")
READ_LEGACY = _load("read_legacy", with_prelude=False)

PURGE_DEAD_LETTERS = LuaScript(
    name="purge_dead_letters",
    # UNLINK: the server frees the hash in the background, so a purge of any size blocks it for O(1).
    source="local n = redis.call('HLEN', KEYS[1]); redis.call('UNLINK', KEYS[1]); return n",
)
CHECK_LAYOUT = _load("check_layout", with_prelude=False)
INSPECT_RANGE = _load("inspect_range")
INSPECT_COUNTS = _load("inspect_counts")
INSPECT_SCAN = _load("inspect_scan", with_prelude=False)
