from __future__ import annotations

from django.apps import AppConfig


class LeadsConfig(AppConfig):
    name = "leads"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the API key scheme with drf-spectacular.
        from leads import signals
        from leads.api import schema  # noqa: F401

        signals.connect()
