from __future__ import annotations

from django.apps import AppConfig


class SimulatorConfig(AppConfig):
    """Installed only for its `simulate_buyers` command: it has no models."""

    name = "simulator"
