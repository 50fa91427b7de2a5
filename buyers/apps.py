from __future__ import annotations

from django.apps import AppConfig


class BuyersConfig(AppConfig):
    name = "buyers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from buyers.field_reads import fields_removed_problems, source_moved_problems
        from leads.schema_checks import schema_checks_register

        # A vertical's page and a source's version are checked against the contracts that read
        # their fields, while leads imports nothing of buyers.
        schema_checks_register(field_set=fields_removed_problems, pin=source_moved_problems)
