from __future__ import annotations

from django.urls import path

from reporting import views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("buyers/", views.buyers, name="buyers"),
    path("sources/", views.sources, name="sources"),
    path("export/<slug:table>.csv", views.export, name="export"),
]
