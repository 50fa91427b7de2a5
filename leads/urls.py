from __future__ import annotations

from django.urls import path

from leads.views import shared_instructions_view

urlpatterns = [
    path("<str:token>/", shared_instructions_view, name="posting-instructions-shared"),
]
