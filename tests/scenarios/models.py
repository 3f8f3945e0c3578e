"""Payload schemas shared by the scenarios."""

from __future__ import annotations

import pydantic


class Job(pydantic.BaseModel):
    n: int
    note: str = ""


class Stamp(pydantic.BaseModel):
    """A payload that knows its own due time (server ms), so a handler can check it is not early."""

    key: str
    due_ms: int


class Other(pydantic.BaseModel):
    text: str
