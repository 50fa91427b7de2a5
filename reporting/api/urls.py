from __future__ import annotations

from django.urls import path

from reporting.api import views

app_name = "reports_api"

urlpatterns = [
    path("reports/summary/", views.SummaryView.as_view(), name="summary"),
    path("reports/timeseries/", views.TimeseriesView.as_view(), name="timeseries"),
    path("reports/buyers/", views.BuyersReportView.as_view(), name="buyers"),
    path("reports/sources/", views.SourcesReportView.as_view(), name="sources"),
    path("reports/tiers/", views.TiersReportView.as_view(), name="tiers"),
    path("returns/", views.ReturnCreateView.as_view(), name="return-create"),
]
