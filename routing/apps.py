from __future__ import annotations

from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from leads.services import routing_handler_register
        from routing.tasks import route_lead

        routing_handler_register(route_lead.delay)
