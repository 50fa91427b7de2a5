from __future__ import annotations

from django.apps import AppConfig


class SimulatorConfig(AppConfig):
    """Dev and test tools, installed for their commands: `simulate_buyers` (the buyer
    simulator) and `load_demo` (the demo marketplace that points at it). No models; the
    product never imports it."""

    name = "simulator"
