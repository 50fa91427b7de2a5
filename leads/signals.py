"""Invalidate intake's per-process cache whenever what it caches changes (see intake_cache)."""

from __future__ import annotations

from django.core.signals import request_finished, request_started
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from leads import intake_cache
from leads.models import (
    PostingProfile,
    SchemaPin,
    SchemaVersion,
    ScoringRule,
    Source,
    SourceApiKey,
    Vertical,
    VerticalField,
)
from leads.services import schema_pins_sync, vertical_touch


def _invalidate(**kwargs: object) -> None:
    intake_cache.invalidate()
    # Once more when the change commits: a process that read the old rows in between would
    # otherwise keep them under the new token until its entries expire.
    transaction.on_commit(intake_cache.invalidate)


def _scoring_rule_changed(*, instance: ScoringRule, **kwargs: object) -> None:
    # Compiled scoring rules are cached per process by their vertical's updated_at, which a
    # rule saved from the shell or its own admin page would otherwise leave as it was.
    vertical_touch(vertical_id=instance.vertical_id)
    transaction.on_commit(intake_cache.invalidate)


def _source_verticals_changed(
    *, instance: object, action: str, reverse: bool, **kwargs: object
) -> None:
    # However a source gains a vertical (its admin page, a command, an import, a test's add()),
    # it is pinned to the vertical's newest version then, and unpinned when it loses it.
    if action not in {"post_add", "post_remove", "post_clear"}:
        return
    pk = instance.pk  # type: ignore[attr-defined]
    if reverse:
        schema_pins_sync(vertical_ids=[pk])
    else:
        schema_pins_sync(source_ids=[pk])


def connect() -> None:
    request_started.connect(intake_cache.request_started, dispatch_uid="intake-cache-request")
    request_finished.connect(intake_cache.request_finished, dispatch_uid="intake-cache-request")
    for model in (
        Source,
        SourceApiKey,
        Vertical,
        VerticalField,
        PostingProfile,
        SchemaVersion,
        SchemaPin,
    ):
        post_save.connect(_invalidate, sender=model, dispatch_uid=f"intake-cache-save-{model}")
        post_delete.connect(_invalidate, sender=model, dispatch_uid=f"intake-cache-del-{model}")
    m2m_changed.connect(
        _invalidate, sender=Source.verticals.through, dispatch_uid="intake-cache-verticals"
    )
    m2m_changed.connect(
        _source_verticals_changed, sender=Source.verticals.through, dispatch_uid="schema-pins"
    )
    post_save.connect(_scoring_rule_changed, sender=ScoringRule, dispatch_uid="scoring-rule-save")
    post_delete.connect(
        _scoring_rule_changed, sender=ScoringRule, dispatch_uid="scoring-rule-delete"
    )
