"""scripts.py: each script carries the prelude functions it calls, directly or through one another, and no others."""

from __future__ import annotations

import hashlib
import re
from importlib import resources

import pytest

from redis_timers import scripts
from redis_timers.scripts import LuaScript

LUA = resources.files("redis_timers") / "lua"
PRELUDE = (LUA / "prelude.lua").read_text(encoding="utf-8")
PRELUDE_NAMES = re.findall(r"^local function (\w+)\(", PRELUDE, re.MULTILINE)

ALL_SCRIPTS = sorted(
    (value for value in vars(scripts).values() if isinstance(value, LuaScript)),
    key=lambda script: script.name,
)
every_script = pytest.mark.parametrize("script", ALL_SCRIPTS, ids=[script.name for script in ALL_SCRIPTS])


def definitions(source: str, name: str) -> list[int]:
    """Where `source` defines `name` as a local function."""
    return [match.start() for match in re.finditer(rf"^local function {name}\(", source, re.MULTILINE)]


def calls(source: str, name: str) -> list[int]:
    """Where `source` calls `name` (its definitions excluded)."""
    return [match.start() for match in re.finditer(rf"(?<!local function )\b{name}\(", source)]


def defined_prelude_functions(source: str) -> set[str]:
    return {name for name in PRELUDE_NAMES if definitions(source, name)}


def test_the_prelude_and_the_scripts_are_found() -> None:
    assert {"server_now_ms", "ms", "schedule", "forget_state", "run_of", "unpack_stored", "forget", "bury"} <= set(
        PRELUDE_NAMES
    )
    assert len(PRELUDE_NAMES) == len(set(PRELUDE_NAMES))
    assert {script.name for script in ALL_SCRIPTS} >= {
        "set_timer",
        "remove_timer",
        "get_timer",
        "cycle",
        "requeue_dead_letter",
        "import_legacy",
        "remove_legacy",
        "read_legacy",
        "purge_dead_letters",
    }


def test_each_prelude_function_is_one_blank_line_separated_block() -> None:
    # scripts.py carries prelude functions block by block: a function split by a blank line would be cut.
    blocks = [block.strip("\n") for block in PRELUDE.split("\n\n") if block.strip("\n")]
    function_blocks = [block for block in blocks if re.search(r"^local function ", block, re.MULTILINE)]

    for block in function_blocks:
        assert len(re.findall(r"^local function ", block, re.MULTILINE)) == 1, block
        assert block.endswith("\nend"), block
    for block in blocks:
        if block not in function_blocks:
            assert all(line.startswith("--") for line in block.splitlines()), f"not a comment: {block}"


def test_set_timer_carries_only_what_it_calls() -> None:
    defined = defined_prelude_functions(scripts.SET_TIMER.source)

    # run_of through kept_due, which the conditional modes call (a timer a handler runs is not kept).
    assert {"server_now_ms", "schedule", "ms", "forget_state", "kept_due", "run_of"} <= defined
    assert not defined & {"bury", "unpack_stored", "forget"}


def test_remove_timer_carries_what_forget_calls() -> None:
    defined = defined_prelude_functions(scripts.REMOVE_TIMER.source)

    assert defined == {"forget", "forget_state", "update_head", "topic_of"}
    assert (
        definitions(scripts.REMOVE_TIMER.source, "forget_state")[0]
        < definitions(scripts.REMOVE_TIMER.source, "forget")[0]
    )


def test_scripts_without_prelude_calls_carry_no_prelude() -> None:
    for script in (scripts.READ_LEGACY, scripts.PURGE_DEAD_LETTERS, scripts.REMOVE_LEGACY):
        assert defined_prelude_functions(script.source) == set(), script.name
        assert "local function" not in script.source, script.name


@every_script
def test_every_called_prelude_function_is_defined_before_its_first_call(script: LuaScript) -> None:
    for name in PRELUDE_NAMES:
        called_at = calls(script.source, name)
        if called_at:
            defined_at = definitions(script.source, name)
            assert defined_at, f"{script.name} calls {name} without defining it"
            assert defined_at[0] < called_at[0], f"{script.name} calls {name} before defining it"


@every_script
def test_every_prelude_function_is_defined_at_most_once(script: LuaScript) -> None:
    for name in PRELUDE_NAMES:
        assert len(definitions(script.source, name)) <= 1, f"{script.name} defines {name} twice"


@every_script
def test_every_carried_prelude_function_is_called(script: LuaScript) -> None:
    for name in defined_prelude_functions(script.source):
        assert calls(script.source, name), f"{script.name} carries {name} but never calls it"


@every_script
def test_the_sha_is_the_sha1_of_the_utf_8_source(script: LuaScript) -> None:
    assert script.sha == hashlib.sha1(script.source.encode("utf-8"), usedforsecurity=False).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{40}", script.sha)


FILE_SCRIPTS = [script for script in ALL_SCRIPTS if (LUA / f"{script.name}.lua").is_file()]
"""The scripts read from a file of their own (the others are written inline in scripts.py)."""


def test_the_scripts_with_a_file_are_found() -> None:
    assert {script.name for script in FILE_SCRIPTS} >= {"set_timer", "remove_timer", "cycle", "remove_legacy"}


@pytest.mark.parametrize("script", FILE_SCRIPTS, ids=[script.name for script in FILE_SCRIPTS])
def test_a_script_file_ends_its_source(script: LuaScript) -> None:
    body = (LUA / f"{script.name}.lua").read_text(encoding="utf-8")

    assert script.source.endswith(body)
    if script.name == "remove_legacy":  # loaded without the prelude
        assert script.source == body


SYNTHETIC_PRELUDE = """\
-- A header comment, in a block of its own.

local function a()
  return 1
end

-- b calls a.
local function b()
  return a() + 1
end

local function c()
  return 3
end
"""
A = "local function a()\n  return 1\nend\n"
B = "-- b calls a.\nlocal function b()\n  return a() + 1\nend\n"
C = "local function c()\n  return 3\nend\n"


def test_prelude_functions_are_the_blocks_by_name_in_order() -> None:
    functions = scripts._prelude_functions(SYNTHETIC_PRELUDE)

    assert list(functions.items()) == [("a", A), ("b", B), ("c", C)]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("return b()\n", A + B, id="b-brings-a"),
        pytest.param("return a()\n", A, id="a-alone"),
        pytest.param("return c() + a()\n", A + C, id="prelude-order"),
        pytest.param("return c() + b()\n", A + B + C, id="all"),
        pytest.param("return 0\n", "", id="none"),
        pytest.param("return grab() + abc()\n", "", id="other-names"),
    ],
)
def test_with_prelude_includes_the_called_blocks_transitively(body: str, expected: str) -> None:
    assert scripts._with_prelude(body, SYNTHETIC_PRELUDE) == expected + "\n" + body
