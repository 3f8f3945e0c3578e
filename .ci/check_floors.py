"""Fail unless the environment described on stdin (`uv pip list --format json`) holds exactly the lowest
versions that pyproject.toml allows of each runtime dependency: the floors CI tests must be the declared ones."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

FLOOR = re.compile(r"^([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9.]*)$")
DEPENDENCIES = re.compile(r"^dependencies = \[(.*?)^\]", re.MULTILINE | re.DOTALL)
"""The `[project]` table's dependency array (read without tomllib, which Python 3.10 lacks)."""


def declared_floors(pyproject: Path) -> dict[str, str]:
    floors: dict[str, str] = {}
    array = DEPENDENCIES.search(pyproject.read_text(encoding="utf-8"))
    if array is None:
        raise SystemExit(f"no dependencies array in {pyproject}")
    for requirement in re.findall(r'"([^"]+)"', array.group(1)):
        match = FLOOR.match(requirement.strip())
        if match is None:
            raise SystemExit(f"cannot read a floor from the dependency {requirement!r}: write it as name>=version")
        floors[match.group(1).lower()] = match.group(2)
    return floors


def same_version(installed: str, floor: str) -> bool:
    pad = max(len(installed.split(".")), len(floor.split(".")))
    return installed.split(".") + ["0"] * (pad - len(installed.split("."))) == floor.split(".") + ["0"] * (
        pad - len(floor.split("."))
    )


def main() -> int:
    installed = {package["name"].lower(): package["version"] for package in json.load(sys.stdin)}
    wrong = []
    for name, floor in declared_floors(Path(__file__).resolve().parent.parent / "pyproject.toml").items():
        version = installed.get(name)
        print(f"{name} {version} (declared >= {floor})")
        if version is None or not same_version(version, floor):
            wrong.append(f"{name}: installed {version}, declared floor {floor}")
    if wrong:
        print("not the declared floors: " + "; ".join(wrong), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
