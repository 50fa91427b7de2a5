"""Celery adapters for routing."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="routing.tasks.route_lead")
def route_lead(lead_id: str) -> str:
    from routing.engine import lead_route

    return lead_route(lead_id=lead_id)
