"""Asyncio front end: `from redis_timers.aio import Timers, Router` (also `from redis_timers import ...`)."""

from redis_timers.aio.timers import Timers
from redis_timers.router import Router

__all__ = ["Router", "Timers"]
