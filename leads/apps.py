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

    def warm_up(self) -> None:
        """Load the offline ZIP table before a worker takes its first lead (config.celery)."""
        from leads.geo import zip_lookup

        zip_lookup("10001")
