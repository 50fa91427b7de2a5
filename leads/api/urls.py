from __future__ import annotations

from django.urls import path

from leads.api import views

app_name = "api"

urlpatterns = [
    path("leads/", views.LeadListCreateView.as_view(), name="lead-list"),
    path("leads/<uuid:pk>/", views.LeadDetailView.as_view(), name="lead-detail"),
    path("verticals/", views.VerticalListView.as_view(), name="vertical-list"),
    path("verticals/<slug:slug>/", views.VerticalDetailView.as_view(), name="vertical-detail"),
    path(
        "verticals/<slug:slug>/versions/",
        views.VerticalVersionListView.as_view(),
        name="vertical-version-list",
    ),
    path(
        "verticals/<slug:slug>/versions/newest/",
        views.VerticalVersionView.as_view(),
        name="vertical-version-newest",
    ),
    path(
        "verticals/<slug:slug>/versions/<int:number>/",
        views.VerticalVersionView.as_view(),
        name="vertical-version",
    ),
]
