"""The project's timers: the blocking front end (views are blocking code), shared by every request thread."""

from __future__ import annotations

import datetime
import os
from typing import Any

import redis
from django.conf import settings
from pydantic import BaseModel

from redis_timers.sync import Router, Timers

PAYMENT_WINDOW = datetime.timedelta(seconds=float(os.environ.get("ORDER_PAYMENT_SECONDS", "1800")))
CANCELLED = "shop:cancelled"
"""The set the handler adds cancelled orders to (a real project would update the order in its database)."""

redis_client = redis.Redis.from_url(settings.REDIS_URL)
router = Router()


class UnpaidOrder(BaseModel):
    order_id: int


@router.handler(topic="cancel_unpaid_order", schema=UnpaidOrder)
def cancel_unpaid_order(payload: UnpaidOrder, context: dict[str, Any]) -> None:
    redis_client.sadd(CANCELLED, payload.order_id)


timers = Timers(redis_client=redis_client, routers=[router])
