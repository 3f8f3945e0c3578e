"""Blocking front end: `from redis_timers.sync import Timers, Router`."""

from redis_timers.router import Router
from redis_timers.sync.timers import Timers

__all__ = ["Router", "Timers"]
