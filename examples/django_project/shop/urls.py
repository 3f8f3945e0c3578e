from __future__ import annotations

from django.urls import path

from shop import views

urlpatterns = [
    path("orders/<int:order_id>", views.create_order),
    path("orders/<int:order_id>/paid", views.order_paid),
]
