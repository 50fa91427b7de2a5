from __future__ import annotations

from django.apps import AppConfig


class MarketplaceConfig(AppConfig):
    """Configuration as code: a marketplace's whole configuration exported to a file and
    imported from one (`manage.py config`). It sits above every app whose settings it writes;
    nothing imports it."""

    name = "marketplace"
