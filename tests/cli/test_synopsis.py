"""The README's synopsis of the command line is argparse's own parsers, flag for flag, so the two cannot drift."""

from __future__ import annotations

import argparse
import re

from redis_timers.cli.main import build_parser
from tests.cli.processes import ROOT


def synopsis_lines() -> dict[str, str]:
    """The README's synopsis lines, without their comments, by what follows `redis-timers`."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The command line", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block is not None
    lines = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    return {line.split()[1]: line for line in lines if line.startswith("redis-timers ")}


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [commands] = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return dict(commands.choices)


def is_help(action: argparse.Action) -> bool:
    return isinstance(action, argparse._HelpAction)


def usage_of(action: argparse.Action) -> str:
    if not action.option_strings:
        return str(action.metavar or action.dest)
    flag = max(action.option_strings, key=len)
    if action.nargs == 0:
        return f"[{flag}]"
    value = action.metavar or ("|".join(map(str, action.choices)) if action.choices else action.dest.upper())
    return f"[{flag} {value}]"


def expected_line(name: str, parser: argparse.ArgumentParser) -> str:
    actions = [action for action in parser._actions if not is_help(action)]
    positionals = [usage_of(action) for action in actions if not action.option_strings]
    optionals = [usage_of(action) for action in actions if action.option_strings]
    return " ".join(["redis-timers", name, *positionals, *optionals])


def test_every_subcommand_is_in_the_synopsis_with_every_flag() -> None:
    parser = build_parser()
    lines = synopsis_lines()

    for name, subparser in subcommands(parser).items():
        if name == "bench":
            # Everything after `bench` is the benchmark's: it has no flags of its own here, --help included.
            assert not subparser._actions
            assert lines["bench"] == "redis-timers bench [ARGUMENTS...]"
            continue
        assert lines[name] == expected_line(name, subparser)
        assert any(is_help(action) for action in subparser._actions)  # "also take --help"


def test_every_top_level_flag_is_in_the_synopsis() -> None:
    parser = build_parser()
    lines = synopsis_lines()
    flags = {
        max(action.option_strings, key=len)
        for action in parser._actions
        if action.option_strings and not is_help(action)
    }

    assert flags == {"--version"}
    assert {f"redis-timers {flag}" for flag in flags} <= set(lines.values())
    assert set(lines) == set(subcommands(parser)) | flags
