from __future__ import annotations

from django.urls import path

from teams.views import assignment_claim_view

urlpatterns = [
    path(
        "assignments/<int:assignment_id>/claim/",
        assignment_claim_view,
        name="team-assignment-claim",
    ),
]
