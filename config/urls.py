from __future__ import annotations

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from config.views import health

admin.site.site_header = "Leadswitch"
admin.site.site_title = "Leadswitch admin"
admin.site.index_title = "Lead distribution console"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("health/", health, name="health"),
]
