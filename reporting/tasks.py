"""Celery adapters for reporting: keep the hourly rollups current."""

from __future__ import annotations

from celery import shared_task

from reporting.rollup import rollup_refresh


@shared_task(name="reporting.tasks.refresh_rollups")
def refresh_rollups() -> int:
    """Rebuild the rollup hours changed since the last run (at most a bounded number per run)."""
    # Runs cannot overlap: rollup_refresh skips while another run holds the state row.
    return rollup_refresh()
