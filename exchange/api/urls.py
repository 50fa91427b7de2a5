from __future__ import annotations

from django.urls import path

from exchange.api import views

app_name = "exchange"

urlpatterns = [path("pings/", views.PingCreateView.as_view(), name="ping-list")]
