"""The documentation site (mkdocs.yml, docs/hooks.py): its generated configuration reference, and the README
sections its pages include. CI builds the site itself with `mkdocs build --strict`."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path
from types import ModuleType

from redis_timers import TimersSettings
from redis_timers.settings import ENVIRONMENT_VARIABLES

ROOT = Path(__file__).resolve().parents[2]


def hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_setting_has_a_docstring_for_the_generated_reference() -> None:
    docs = hooks().field_docs()
    assert set(docs) == {field.name for field in dataclasses.fields(TimersSettings)}
    assert all(docs.values())


def test_the_generated_reference_has_a_row_per_setting_with_its_variable_and_default() -> None:
    table = hooks().settings_table()
    rows = table.splitlines()[2:]
    assert len(rows) == len(dataclasses.fields(TimersSettings)) == len(ENVIRONMENT_VARIABLES)
    for field, row in zip(dataclasses.fields(TimersSettings), rows):
        assert row.startswith(f"| `{ENVIRONMENT_VARIABLES[field.name][0]}` | `{field.name}` |")


def test_the_readme_table_names_the_same_variables_with_the_same_defaults() -> None:
    readme = (ROOT / "README.md").read_text()
    listed = dict(re.findall(r"^\| `(TIMERS_[A-Z_]+)` \| `([^`]*)` \|", readme, flags=re.MULTILINE))
    generated = dict(
        re.findall(
            r"^\| `(TIMERS_[A-Z_]+)` \| `[a-z_]+` \| `[a-z]+` \| `([^`]*)` \|",
            hooks().settings_table(),
            flags=re.MULTILINE,
        )
    )
    assert set(listed) == set(generated)
    for variable, default in generated.items():
        assert float(listed[variable]) == float(default) if default[0].isdigit() else listed[variable] == default


def test_every_readme_section_a_page_includes_is_marked_once() -> None:
    readme = (ROOT / "README.md").read_text()
    included = set()
    for page in (ROOT / "docs").glob("*.md"):
        included |= set(re.findall(r'^--8<-- "README\.md:([a-z-]+)"$', page.read_text(), flags=re.MULTILINE))
    assert included
    for name in included:
        assert readme.count(f"<!-- --8<-- [start:{name}] -->") == 1
        assert readme.count(f"<!-- --8<-- [end:{name}] -->") == 1
        assert readme.index(f"[start:{name}]") < readme.index(f"[end:{name}]")


def test_every_docs_page_is_in_the_site_navigation() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    pages = {page.name for page in (ROOT / "docs").glob("*.md")}
    in_nav = set(re.findall(r"^  - [^:]+: ([a-z-]+\.md)$", config, flags=re.MULTILINE))
    assert pages == in_nav
