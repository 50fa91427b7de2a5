from __future__ import annotations

from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    """A consumer's erasure everywhere their data lies (leads, attempts, postbacks, teams' messages)
    and the retention purge of raw bodies. It sits above every app whose rows it scrubs."""

    name = "privacy"
