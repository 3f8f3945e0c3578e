"""Views that schedule and remove the cancellation of an unpaid order: one blocking call each."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from shop.timers import PAYMENT_WINDOW, UnpaidOrder, timers


@csrf_exempt
@require_POST
def create_order(request: HttpRequest, order_id: int) -> JsonResponse:
    due = timers.set_timer("cancel_unpaid_order", str(order_id), UnpaidOrder(order_id=order_id), PAYMENT_WINDOW)
    return JsonResponse({"cancel_at": due.isoformat()})


@csrf_exempt
@require_POST
def order_paid(request: HttpRequest, order_id: int) -> JsonResponse:
    return JsonResponse({"was_pending": timers.remove_timer("cancel_unpaid_order", str(order_id))})
