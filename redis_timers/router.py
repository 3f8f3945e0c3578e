"""Routers collect handlers by topic; `Timers.include_router` copies them into its registry."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import pydantic

from redis_timers.errors import HandlerRegistrationError

PayloadT = TypeVar("PayloadT", bound=pydantic.BaseModel)
HandlerFunc = Callable[[PayloadT, dict[str, Any]], Any]
"""`(payload, context)`: an `async def` or a plain `def`; which ones run depends on the front end."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Handler(Generic[PayloadT]):
    topic: str
    schema: type[PayloadT]
    handler: HandlerFunc[PayloadT]
    max_attempts: int | None = None
    """Overrides the instance's `max_attempts` for this topic."""


class Router:
    """Registers handlers with `@router.handler(topic=..., schema=...)`."""

    def __init__(self) -> None:
        self.handlers: list[Handler[Any]] = []

    def handler(
        self,
        *,
        topic: str,
        schema: type[PayloadT],
        max_attempts: int | None = None,
    ) -> Callable[[HandlerFunc[PayloadT]], HandlerFunc[PayloadT]]:
        if not (isinstance(schema, type) and issubclass(schema, pydantic.BaseModel)):
            raise HandlerRegistrationError(f"schema for topic {topic!r} must be a pydantic.BaseModel subclass")
        if max_attempts is not None and max_attempts < 1:
            raise HandlerRegistrationError(f"max_attempts for topic {topic!r} must be >= 1")

        def decorator(func: HandlerFunc[PayloadT]) -> HandlerFunc[PayloadT]:
            if not callable(func):
                raise HandlerRegistrationError(f"handler for topic {topic!r} must be callable")
            self.handlers.append(Handler(topic=topic, schema=schema, handler=func, max_attempts=max_attempts))
            return func

        return decorator
