from __future__ import annotations

from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from buyers.delivery_checks import delivery_check_register
        from leads.services import routing_handler_register
        from routing.integration import check_endpoint, check_rule
        from routing.tasks import route_lead

        routing_handler_register(route_lead.delay)
        delivery_check_register("endpoint", check_endpoint)
        delivery_check_register("rule", check_rule)
