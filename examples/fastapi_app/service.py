"""A FastAPI service whose lifespan runs the timers worker: an order left unpaid is cancelled after a while.

Run it with `REDIS_URL=redis://... uvicorn service:app` from this folder (uvicorn is not a dependency of the library).
`POST /orders/{id}` schedules the cancellation, `POST /orders/{id}/paid` removes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio
from fastapi import FastAPI
from pydantic import BaseModel

from redis_timers import Router, Timers

PAYMENT_WINDOW = datetime.timedelta(seconds=float(os.environ.get("ORDER_PAYMENT_SECONDS", "1800")))
CANCELLED = "shop:cancelled"
"""The set the handler adds cancelled orders to (a real service would update its database)."""

redis_client = redis.asyncio.Redis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379"))
router = Router()


class UnpaidOrder(BaseModel):
    order_id: int


@router.handler(topic="cancel_unpaid_order", schema=UnpaidOrder)
async def cancel_unpaid_order(payload: UnpaidOrder, context: dict[str, Any]) -> None:
    await redis_client.sadd(CANCELLED, payload.order_id)


timers = Timers(redis_client=redis_client, routers=[router])


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # The worker runs beside the requests, on the same event loop; on shutdown it stops claiming and lets
    # in-flight handlers finish (TIMERS_SHUTDOWN_GRACE_SECONDS).
    worker = asyncio.create_task(timers.run_forever())
    try:
        yield
    finally:
        timers.stop()
        await worker


app = FastAPI(lifespan=lifespan)


@app.post("/orders/{order_id}")
async def create_order(order_id: int) -> dict[str, str]:
    due = await timers.set_timer("cancel_unpaid_order", str(order_id), UnpaidOrder(order_id=order_id), PAYMENT_WINDOW)
    return {"cancel_at": due.isoformat()}


@app.post("/orders/{order_id}/paid")
async def order_paid(order_id: int) -> dict[str, bool]:
    return {"was_pending": await timers.remove_timer("cancel_unpaid_order", str(order_id))}
