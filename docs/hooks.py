"""MkDocs hooks of the documentation site: the configuration reference is generated from `TimersSettings`.

`<!-- settings-reference -->` on a page is replaced by a table of every setting (its environment variable, type,
default and the field's own docstring), so the reference cannot drift from the class. The test suite renders the
same table (tests/unit/test_docs_site.py).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
from typing import Any

from redis_timers import settings

MARKER = "<!-- settings-reference -->"


def field_docs() -> dict[str, str]:
    """Each `TimersSettings` field's docstring (the string literal right after it in the class body)."""
    tree = ast.parse(inspect.getsource(settings))
    body = next(node.body for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "TimersSettings")
    docs: dict[str, str] = {}
    for statement, following in itertools.pairwise(body):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = " ".join(following.value.value.split())
    return docs


def settings_table() -> str:
    """The Markdown table of every setting, in the class's order."""
    docs = field_docs()
    rows = ["| variable | setting | type | default | meaning |", "| --- | --- | --- | --- | --- |"]
    for field in dataclasses.fields(settings.TimersSettings):
        variable = settings.ENVIRONMENT_VARIABLES[field.name][0]
        default = field.default
        shown = ("1" if default else "0") if isinstance(default, bool) else f"{default}"
        meaning = docs.get(field.name, "").replace("|", "\\|")
        rows.append(f"| `{variable}` | `{field.name}` | `{field.type}` | `{shown}` | {meaning} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return markdown.replace(MARKER, settings_table()) if MARKER in markdown else markdown
