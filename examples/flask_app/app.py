"""A Flask app whose views schedule and remove timers with blocking calls: `flask --app app run` from this folder."""

from __future__ import annotations

from flask import Flask
from timers_app import PAYMENT_WINDOW, UnpaidOrder, timers

app = Flask(__name__)


@app.post("/orders/<int:order_id>")
def create_order(order_id: int) -> dict[str, str]:
    due = timers.set_timer("cancel_unpaid_order", str(order_id), UnpaidOrder(order_id=order_id), PAYMENT_WINDOW)
    return {"cancel_at": due.isoformat()}


@app.post("/orders/<int:order_id>/paid")
def order_paid(order_id: int) -> dict[str, bool]:
    return {"was_pending": timers.remove_timer("cancel_unpaid_order", str(order_id))}
