"""Invalidate intake's per-process cache whenever what it caches changes (see intake_cache)."""

from __future__ import annotations

from django.db.models.signals import m2m_changed, post_delete, post_save

from leads import intake_cache
from leads.models import Source, SourceApiKey, Vertical, VerticalField


def _invalidate(**kwargs: object) -> None:
    intake_cache.invalidate()


def connect() -> None:
    for model in (Source, SourceApiKey, Vertical, VerticalField):
        post_save.connect(_invalidate, sender=model, dispatch_uid=f"intake-cache-save-{model}")
        post_delete.connect(_invalidate, sender=model, dispatch_uid=f"intake-cache-del-{model}")
    m2m_changed.connect(
        _invalidate, sender=Source.verticals.through, dispatch_uid="intake-cache-verticals"
    )
