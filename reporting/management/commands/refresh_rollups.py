"""Bring the reporting rollups up to date now (Celery beat does it every minute)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from reporting.rollup import rollup_refresh


class Command(BaseCommand):
    help = "Rebuild the rollup hours changed since the last run (as beat does), until none is left."

    def handle(self, *args, **options):
        limit = settings.ROLLUP_MAX_HOURS_PER_RUN
        total = 0
        while True:
            rebuilt = rollup_refresh(max_hours=limit)
            total += rebuilt
            # A run that rebuilt fewer hours than it may left none waiting.
            if rebuilt < limit:
                break
        self.stdout.write(f"Rebuilt {total} hour(s).")
