"""The Flask app's timers: the blocking front end, one `Timers` shared by every request thread.

Its worker runs in a process of its own: `redis-timers worker timers_app:timers` from this folder.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

import redis
from pydantic import BaseModel

from redis_timers.sync import Router, Timers

PAYMENT_WINDOW = datetime.timedelta(seconds=float(os.environ.get("ORDER_PAYMENT_SECONDS", "1800")))
CANCELLED = "shop:cancelled"
"""The set the handler adds cancelled orders to (a real app would update its database)."""

redis_client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379"))
router = Router()


class UnpaidOrder(BaseModel):
    order_id: int


@router.handler(topic="cancel_unpaid_order", schema=UnpaidOrder)
def cancel_unpaid_order(payload: UnpaidOrder, context: dict[str, Any]) -> None:
    redis_client.sadd(CANCELLED, payload.order_id)


timers = Timers(redis_client=redis_client, routers=[router])
