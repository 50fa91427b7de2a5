"""Writes for verticals, sources, API keys and leads."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from config.admin_display import plural
from config.api_keys import api_key_create, api_key_find, api_key_revoke
from leads import intake_cache, store
from leads.intake import invalid_lead_detail, normalise_fields, parse_submission
from leads.models import (
    LEAD_TRANSITIONS,
    ContactKind,
    IdempotencyRecord,
    Lead,
    LeadStatus,
    SchemaPin,
    SchemaVersion,
    Source,
    SourceApiKey,
    SuppressedContact,
    SuppressionList,
    Vertical,
    VerticalField,
)
from leads.outcomes import lead_outcome_wait
from leads.profiles import split_unknown
from leads.schema_versions import same_schema, schema_summary, snapshot_of
from leads.scoring import score_lead
from leads.selectors import (
    allowed_vertical_slugs,
    source_field_specs,
    vertical_for_source,
    vertical_scorecard,
)
from leads.store import IntakeChecks, suppression_hash

logger = logging.getLogger(__name__)


class InvalidTransition(Exception):
    """A status change that the lead state machine does not allow."""


def source_api_key_create(*, source: Source, name: str = "") -> tuple[SourceApiKey, str]:
    """Mint an API key for a source; return the row and the key, which is never stored."""
    return api_key_create(model=SourceApiKey, owner=source, name=name)


def source_api_key_revoke(*, api_key: SourceApiKey) -> bool:
    """Revoke a key; return False when it was already revoked."""
    revoked = api_key_revoke(api_key=api_key)
    if revoked:
        intake_cache.invalidate()
    return revoked


def source_api_key_authenticate(*, raw_key: str) -> SourceApiKey | None:
    """Return the live key matching raw_key (with its source), or None."""

    def lookup(hashed: str) -> SourceApiKey | None:
        return intake_cache.cached(
            ("key", hashed),
            intake_cache.generation(),
            lambda: (
                SourceApiKey.objects.select_related("source")
                .filter(hashed_key=hashed, revoked_at__isnull=True)
                .order_by()
                .first()
            ),
        )

    return api_key_find(model=SourceApiKey, raw_key=raw_key, lookup=lookup)


def vertical_touch(*, vertical_id: int) -> None:
    """Mark a vertical changed, so that processes drop their cached copy of its schema."""
    Vertical.objects.filter(pk=vertical_id).update(updated_at=timezone.now())
    intake_cache.invalidate()


# --- Versions of a vertical's field set (leads.schema_versions) ------------------------------


def schema_version_record(*, vertical: Vertical, actor: Any = None) -> SchemaVersion | None:
    """Record the vertical's fields as its next version when a partner could tell them from its
    newest (the first version when it has none); return the new version, or None.

    Called once per save of the field set (the vertical's admin page, a field's own page, an
    import), never per row: one save, one version.
    """
    with transaction.atomic():
        # Two saves of one vertical number their versions one after the other.
        Vertical.objects.select_for_update().filter(pk=vertical.pk).exists()
        fields = snapshot_of(
            VerticalField.objects.filter(vertical_id=vertical.pk).order_by("position", "id")
        )
        newest = SchemaVersion.objects.filter(vertical_id=vertical.pk).order_by("-number").first()
        if newest is not None and same_schema(newest.fields, fields):
            return None
        recorded = SchemaVersion.objects.create(
            vertical_id=vertical.pk,
            number=newest.number + 1 if newest is not None else 1,
            fields=fields,
            summary=schema_summary(newest.fields if newest is not None else None, fields),
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        if newest is not None and not newest.fields:
            # Nobody integrates against a vertical without fields: the sources pinned to its
            # empty version (given the vertical before it had fields, or upgraded so) move on
            # with its first fields instead of posting in an empty schema for good.
            for pin in SchemaPin.objects.filter(schema_version=newest):
                pin.schema_version = recorded
                pin.save(update_fields=["schema_version"])
        return recorded


def schema_version_newest(*, vertical: Vertical) -> SchemaVersion:
    """The vertical's newest version; its fields become version 1 when it has none yet."""
    newest = SchemaVersion.objects.filter(vertical_id=vertical.pk).order_by("-number").first()
    if newest is not None:
        return newest
    recorded = schema_version_record(vertical=vertical)
    assert recorded is not None  # noqa: S101 - a vertical without versions always records one
    return recorded


def schema_pins_sync(
    *, source_ids: list[int] | None = None, vertical_ids: list[int] | None = None
) -> None:
    """Pin every source that posts to a vertical and has no version of it to the newest, and
    drop the pins of verticals a source no longer posts to (of these sources or verticals)."""
    links = Source.verticals.through.objects.all()
    pins = SchemaPin.objects.all()
    if source_ids is not None:
        links, pins = links.filter(source_id__in=source_ids), pins.filter(source_id__in=source_ids)
    if vertical_ids is not None:
        links = links.filter(vertical_id__in=vertical_ids)
        pins = pins.filter(vertical_id__in=vertical_ids)
    linked = set(links.values_list("source_id", "vertical_id"))
    pinned = {(p.source_id, p.vertical_id): p for p in pins}
    for pair, pin in pinned.items():
        if pair not in linked:
            pin.delete()
    newest: dict[int, SchemaVersion] = {}
    for source_id, vertical_id in sorted(linked - set(pinned)):
        if vertical_id not in newest:
            newest[vertical_id] = schema_version_newest(vertical=Vertical(pk=vertical_id))
        SchemaPin.objects.get_or_create(
            source_id=source_id,
            vertical_id=vertical_id,
            defaults={"schema_version": newest[vertical_id]},
        )


def source_get_or_create(
    *, name: str, verticals: list[Vertical], **defaults: Any
) -> tuple[Source, bool]:
    """Create the source if it does not exist and allow it the given verticals."""
    with transaction.atomic():
        source, created = Source.objects.get_or_create(name=name, defaults=defaults)
        if created:
            source.full_clean()
        source.verticals.add(*verticals)
    return source, created


def lead_transition(*, lead: Lead, to: LeadStatus, **fields: Any) -> bool:
    """Move a lead to status `to` if its current state allows it; return whether this call did.

    The UPDATE is conditional on the states `to` may be entered from, so of two workers racing
    for the same lead exactly one wins; the loser gets False and must leave the lead alone.
    """
    allowed_from = LEAD_TRANSITIONS.get(to)
    if allowed_from is None:
        raise InvalidTransition(f"no lead ever enters {to!r} after intake")
    updated = Lead.objects.filter(pk=lead.pk, status__in=allowed_from).update(
        status=to, updated_at=timezone.now(), **fields
    )
    if updated:
        lead.status = to
        for name, value in fields.items():
            setattr(lead, name, value)
        return True
    return False


# --- Intake ---------------------------------------------------------------------------------


class IntakeVerdict(StrEnum):
    ACCEPTED = "accepted"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    SUPPRESSED = "suppressed"
    FORBIDDEN = "forbidden"
    PING_REFUSED = "ping_refused"


@dataclass(frozen=True)
class IngestResult:
    verdict: IntakeVerdict
    lead: Lead
    detail: str = ""
    errors: dict[str, list[str]] = field(default_factory=dict)
    duplicate_of: Lead | None = None
    problem: str = ""  # a refused ping post's problem type (config.problems)


@dataclass(frozen=True)
class PingRefusal:
    """Why a post may not take up the ping it names: a problem type's slug, and its words."""

    problem: str
    detail: str
    errors: dict[str, list[str]] = field(default_factory=dict)


class PingPosts(Protocol):
    """How intake checks a post that names an inbound ping and hands the ping its lead."""

    def check(
        self, *, source: Source, vertical: Vertical, ping_id: str, data: dict[str, Any], test: bool
    ) -> PingRefusal | None: ...

    def attach(self, *, ping_id: str, lead: Lead) -> None: ...


# Registered by the exchange app when it loads (exchange.apps): intake knows that a post may
# take up an inbound ping, not who keeps pings, so leads imports no exchange.
_ping_posts: PingPosts | None = None


def ping_posts_register(handler: PingPosts) -> None:
    """Make `handler` the way posts naming a ping are checked and tied to it (one per process)."""
    global _ping_posts  # noqa: PLW0603 - set once, when the exchange app loads
    _ping_posts = handler


def ping_answer_key(ping_id: str) -> str:
    """The key under which the answer to a ping's post is kept for replay (IdempotencyRecord)."""
    return f"ping:{ping_id}"


def _reject(
    *,
    verdict: IntakeVerdict,
    status: LeadStatus,
    source: Source,
    api_key: SourceApiKey | None,
    vertical: Vertical | None,
    raw_body: str,
    remote_ip: str | None,
    detail: str,
    errors: dict[str, list[str]] | None = None,
    problem: str = "",
    **fields: Any,
) -> IngestResult:
    lead = Lead.objects.create(
        source=source,
        api_key=api_key,
        vertical=vertical,
        status=status,
        raw_body=raw_body,
        remote_ip=remote_ip,
        reason=detail[:500],
        errors=errors or {},
        **fields,
    )
    return IngestResult(
        verdict=verdict,
        lead=lead,
        detail=detail,
        errors=errors or {},
        duplicate_of=fields.get("duplicate_of"),
        problem=problem,
    )


def lead_reject_request(
    *,
    source: Source,
    api_key: SourceApiKey | None,
    raw_body: str,
    remote_ip: str | None,
    detail: str,
    errors: dict[str, list[str]] | None = None,
) -> Lead:
    """Store a request refused before its body could be read as a lead (size, type, JSON)."""
    return _reject(
        verdict=IntakeVerdict.INVALID,
        status=LeadStatus.INVALID,
        source=source,
        api_key=api_key,
        vertical=None,
        raw_body=raw_body,
        remote_ip=remote_ip,
        detail=detail,
        errors=errors,
    ).lead


def source_vertical(
    *, source: Source, slug: str, verb: str = "submit to"
) -> tuple[Vertical | None, str]:
    """The active vertical `slug` if the source may use it, and why the source may not send to
    it ('' when it may): the source is inactive, or the vertical is not one of its own."""
    vertical = vertical_for_source(source=source, slug=slug)
    if not source.active:
        return vertical, "This source is inactive; ask your account manager to reactivate it."
    if vertical is None:
        allowed = ", ".join(allowed_vertical_slugs(source=source)) or "none"
        return None, f"This source may not {verb} {slug!r}; its verticals are {allowed}."
    return vertical, ""


def lead_ingest(  # noqa: PLR0911 - one return per verdict
    *,
    source: Source,
    api_key: SourceApiKey | None,
    document: Any,
    raw_body: str,
    remote_ip: str | None = None,
    keep_unknown: bool = False,
) -> IngestResult:
    """Validate, normalise, score, deduplicate and store one submitted lead; enqueue it for
    routing.

    Every outcome is stored as a lead with its raw body and reasons. An accepted lead is handed
    to routing only after its transaction commits. With `keep_unknown` (the source's posting
    profile keeps them), fields the vertical does not know are stored as the lead's extra data
    instead of refused by name.
    """
    common = {"source": source, "api_key": api_key, "raw_body": raw_body, "remote_ip": remote_ip}
    submission, errors = parse_submission(document)
    if submission is None:
        return _reject(
            verdict=IntakeVerdict.INVALID,
            status=LeadStatus.INVALID,
            vertical=None,
            detail=f"The body has {plural(len(errors), 'error')}; see errors.",
            errors=errors,
            **common,
        )
    lead_fields: dict[str, Any] = {
        "is_test": submission.test,
        "sub_id": submission.sub_id,
        "consent": submission.consent,
        "ping_id": submission.ping_id,
    }
    vertical, detail = source_vertical(source=source, slug=submission.vertical)
    if detail:
        known = vertical or Vertical.objects.filter(slug=submission.vertical).first()
        return _reject(
            verdict=IntakeVerdict.FORBIDDEN,
            status=LeadStatus.INVALID,
            vertical=known,
            detail=detail,
            **lead_fields,
            **common,
        )
    specs = source_field_specs(vertical)
    fields = submission.fields
    if keep_unknown:
        fields, lead_fields["extra"] = split_unknown(fields, (spec.name for spec in specs))
    normalised, errors = normalise_fields(specs, fields)
    if normalised is None:
        return _reject(
            verdict=IntakeVerdict.INVALID,
            status=LeadStatus.INVALID,
            vertical=vertical,
            detail=invalid_lead_detail(errors),
            errors=errors,
            **lead_fields,
            **common,
        )
    if submission.ping_id:
        refusal = (
            PingRefusal("unknown-ping", "This platform takes no inbound pings.")
            if _ping_posts is None
            else _ping_posts.check(
                source=source,
                vertical=vertical,
                ping_id=submission.ping_id,
                data=normalised.data,
                test=submission.test,
            )
        )
        if refusal is not None:
            return _reject(
                verdict=IntakeVerdict.PING_REFUSED,
                status=LeadStatus.INVALID,
                vertical=vertical,
                detail=refusal.detail,
                errors=refusal.errors,
                problem=refusal.problem,
                **lead_fields,
                **common,
            )
    lead_fields.update(
        data=normalised.data,
        email=normalised.email,
        phone=normalised.phone,
        email_sha256=normalised.email_sha256,
        phone_sha256=normalised.phone_sha256,
        zip_code=normalised.zip_code,
        state=normalised.state,
    )
    # Pure Python over rules compiled once per vertical: no query, no network.
    scored = score_lead(vertical_scorecard(vertical), normalised.data, source_id=source.pk)
    if scored is not None:
        lead_fields.update(score=scored.score, tier=scored.tier, score_breakdown=scored.breakdown())
    lead = Lead(vertical=vertical, status=LeadStatus.ACCEPTED, **lead_fields, **common)
    earlier = store.lead_store_checked(lead, IntakeChecks.of(lead, vertical=vertical))
    if lead.status == LeadStatus.ACCEPTED:
        if submission.ping_id and _ping_posts is not None:
            # Before routing is enqueued: the run finds the ping's bids through the lead.
            _ping_posts.attach(ping_id=submission.ping_id, lead=lead)
        # Outside a transaction the lead is committed already and this runs at once.
        transaction.on_commit(partial(routing_enqueue, [lead.pk]))
        return IngestResult(verdict=IntakeVerdict.ACCEPTED, lead=lead)
    if lead.status == LeadStatus.SUPPRESSED:
        return IngestResult(verdict=IntakeVerdict.SUPPRESSED, lead=lead, detail=lead.reason)
    return IngestResult(
        verdict=IntakeVerdict.DUPLICATE, lead=lead, detail=lead.reason, duplicate_of=earlier
    )


# After a failed publish, this process leaves routing to the sweeper for this long instead of
# trying the broker again on every request: each try against a broker that is down cost an intake
# request two seconds (bench: tests/faults/test_services.py).
BROKER_RETRY_AFTER_SECONDS = 5.0
_broker_down_until = 0.0


# How a lead is handed to routing, registered by the routing app when it loads (routing.apps):
# intake knows that leads are routed, not who routes them, so leads imports no routing.
_route: Callable[[str], object] | None = None


def routing_handler_register(route: Callable[[str], object]) -> None:
    """Make `route(lead_id)` the way accepted leads are handed to routing (one per process)."""
    global _route  # noqa: PLW0603 - set once, when the routing app loads
    _route = route


def routing_enqueue(lead_ids: list[Any]) -> int:
    """Hand leads to the routing workers; return how many were handed over.

    A broker that is down is not the partner's problem: the lead is already stored, so log and
    let `sweep_waiting_leads` enqueue it again once the broker is back.
    """
    global _broker_down_until  # noqa: PLW0603 - one flag per process, set and read here only
    if _route is None:
        raise ImproperlyConfigured("No routing handler: is the routing app installed?")
    if time.monotonic() < _broker_down_until:
        return 0
    sent = 0
    for lead_id in lead_ids:
        try:
            _route(str(lead_id))
        except Exception:
            _broker_down_until = time.monotonic() + BROKER_RETRY_AFTER_SECONDS
            logger.warning(
                "routing enqueue failed; the sweeper will retry",
                extra={"lead_id": str(lead_id)},
                exc_info=True,
            )
            break
        sent += 1
    return sent


def leads_sweep_waiting(*, older_than: timedelta, limit: int = 1000) -> int:
    """Enqueue again the accepted leads that no routing run has claimed; return how many."""
    cutoff = timezone.now() - older_than
    ids = list(
        Lead.objects.filter(status=LeadStatus.ACCEPTED, received_at__lt=cutoff)
        .order_by("received_at")
        .values_list("id", flat=True)[:limit]
    )
    return routing_enqueue(ids) if ids else 0


# --- Idempotency ----------------------------------------------------------------------------


def idempotency_lock_and_find(*, source: Source, key: str) -> IdempotencyRecord | None:
    """Inside a transaction: serialise requests with this key and return a live earlier record."""
    return idempotency_locks_and_find(source=source, keys=[key]).get(key)


def idempotency_locks_and_find(*, source: Source, keys: list[str]) -> dict[str, IdempotencyRecord]:
    """Inside a transaction: serialise requests sharing any of these keys (locks taken in one
    order, no deadlock) and return the live earlier records by key."""
    store.advisory_locks([f"idem:{source.pk}:{key}" for key in keys])
    since = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
    records = IdempotencyRecord.objects.filter(source=source, key__in=keys, created_at__gte=since)
    return {record.key: record for record in records}


def idempotency_record_save(
    *,
    source: Source,
    key: str,
    request_hash: str,
    lead: Lead | None,
    status: int,
    document: dict[str, Any],
    answer_format: str,
    headers: dict[str, str],
) -> None:
    """Keep the answer to replay (its document, rendered again at replay); an expired record
    with the same key is replaced."""
    IdempotencyRecord.objects.update_or_create(
        source=source,
        key=key,
        defaults={
            "request_hash": request_hash,
            "lead": lead,
            "response_status": status,
            "response_document": json.dumps(document, separators=(",", ":")),
            "answer_format": answer_format,
            "response_headers": headers,
            "created_at": timezone.now(),
        },
    )


def idempotency_record_update(
    *, source: Source, key: str, status: int, document: dict[str, Any], headers: dict[str, str]
) -> None:
    """Replace the kept answer by the final one (after Prefer: wait saw the outcome)."""
    IdempotencyRecord.objects.filter(source=source, key=key).update(
        response_status=status,
        response_document=json.dumps(document, separators=(",", ":")),
        response_headers=headers,
    )


def idempotency_records_purge() -> int:
    cutoff = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted


# The statuses a `Prefer: wait` request waits for: the routing run has settled the lead.
OUTCOME_STATUSES = frozenset({LeadStatus.SOLD, LeadStatus.UNSOLD, LeadStatus.FAILED})


class Answer(Protocol):
    """An answer to a partner as it is sent and kept for replay: status, its document and the
    format it is rendered in, and headers."""

    status: int
    document: dict[str, Any]
    answer_format: str
    headers: dict[str, str]


AnswerT = TypeVar("AnswerT", bound=Answer)


@dataclass(frozen=True)
class Submission:
    """A partner's request to submit one lead, as the API read it."""

    source: Source
    request_hash: str  # of the body's bytes: a replay must carry the very same body
    idempotency_key: str | None = None
    wait_seconds: int | None = None  # Prefer: wait=N
    # The inbound ping the body names: single-use, its post's first answer is replayed to any
    # later post naming it, whatever that post carries.
    ping_id: str = ""


@dataclass(frozen=True)
class Submitted(Generic[AnswerT]):
    """The answer to a submission, or the earlier answer to replay for its Idempotency-Key."""

    answer: AnswerT | None = None
    replay: IdempotencyRecord | None = None


def lead_submit(
    *,
    submission: Submission,
    ingest: Callable[[], tuple[AnswerT, Lead | None]],
    key_reused: Callable[[], AnswerT],
    outcome: Callable[[Lead], AnswerT],
) -> Submitted[AnswerT]:
    """Ingest a submission at most once per Idempotency-Key and answer it.

    The caller renders: `ingest()` stores the lead and renders its answer, `key_reused()` the
    refusal of a key sent before with another body, `outcome(lead)` the final answer that a
    `Prefer: wait` request waits for. A key sent before with the same body replays the answer
    kept for it; concurrent requests with one key are serialised by a lock on the key.
    """
    key = submission.idempotency_key
    ping_key = ping_answer_key(submission.ping_id) if submission.ping_id else None
    kept = [k for k in (key, ping_key) if k is not None]
    if not kept:
        answer, lead = ingest()
    else:
        with transaction.atomic():
            records = idempotency_locks_and_find(source=submission.source, keys=kept)
            if ping_key in records:
                return Submitted(replay=records[ping_key])
            record = records.get(key) if key is not None else None
            if record is not None:
                if record.request_hash != submission.request_hash:
                    return Submitted(answer=key_reused())
                return Submitted(replay=record)
            answer, lead = ingest()
            # A ping is taken up only by a post that was accepted: a refused one may be fixed.
            taken_up = ping_key is not None and 200 <= answer.status < 300
            for kept_key in (key, ping_key if taken_up else None):
                if kept_key is None:
                    continue
                idempotency_record_save(
                    source=submission.source,
                    key=kept_key,
                    request_hash=submission.request_hash,
                    lead=lead,
                    status=answer.status,
                    document=answer.document,
                    answer_format=answer.answer_format,
                    headers=answer.headers,
                )
    # Wait only after the commit: the routing run that settles the lead needs to see it.
    if submission.wait_seconds and answer.status == 202 and lead is not None:
        status = lead_outcome_wait(lead.pk, seconds=submission.wait_seconds)
        if status in OUTCOME_STATUSES:
            lead.refresh_from_db(fields=["status", "sale_price", "payout", "sold_at"])
            answer = outcome(lead)
            for kept_key in kept:
                idempotency_record_update(
                    source=submission.source,
                    key=kept_key,
                    status=answer.status,
                    document=answer.document,
                    headers=answer.headers,
                )
    return Submitted(answer=answer)


# --- Suppression lists ----------------------------------------------------------------------


@dataclass(frozen=True)
class SuppressionUpload:
    added: int
    already_listed: int
    rejected: list[str]  # the first 20 values that are not an email or phone
    rejected_count: int = 0  # all of them


def suppression_list_add(*, suppression_list: SuppressionList, text: str) -> SuppressionUpload:
    """Add the emails and phones of a pasted or uploaded list (one per line or CSV cell)."""
    from leads.intake import FieldError, FieldSpec, normalise_value

    entries: set[tuple[str, str]] = set()
    rejected: list[str] = []
    rejected_count = 0
    for raw in re.split(r"[\s,;]+", text):
        value = raw.strip().strip('"').strip("'")
        if not value or value.lower() in {"email", "phone", "e-mail"}:
            continue
        kind = ContactKind.EMAIL if "@" in value else ContactKind.PHONE
        try:
            normalised = normalise_value(FieldSpec(name=kind, field_type=kind), value)
        except FieldError:
            rejected_count += 1
            if len(rejected) < 20:
                rejected.append(value[:80])
            continue
        entries.add((kind, suppression_hash(kind, normalised)))
    existing = set(
        SuppressedContact.objects.filter(
            suppression_list=suppression_list, value_hash__in=[h for _, h in entries]
        ).values_list("kind", "value_hash")
    )
    new = [
        SuppressedContact(suppression_list=suppression_list, kind=kind, value_hash=value_hash)
        for kind, value_hash in sorted(entries - existing)
    ]
    SuppressedContact.objects.bulk_create(new, batch_size=2000, ignore_conflicts=True)
    return SuppressionUpload(
        added=len(new),
        already_listed=len(entries & existing),
        rejected=rejected,
        rejected_count=rejected_count,
    )


# --- Postbacks ------------------------------------------------------------------------------


def postback_schedule(*, lead: Lead) -> None:
    """After the current transaction commits, tell the lead's source its final outcome."""
    if not lead.source.postback_url:
        return
    transaction.on_commit(partial(postback_enqueue, str(lead.pk)))


def postback_enqueue(lead_id: str) -> bool:
    """Queue a lead's postback; a broker that is down loses nothing: the sweeper re-queues
    routed leads that have no postback on record."""
    from leads.tasks import send_postback

    try:
        send_postback.delay(lead_id)
    except Exception:
        logger.warning(
            "postback enqueue failed; the sweeper will retry",
            extra={"lead_id": lead_id},
            exc_info=True,
        )
        return False
    return True


# Routed outcomes a source is told of by postback.
POSTBACK_STATUSES = (LeadStatus.SOLD, LeadStatus.UNSOLD, LeadStatus.FAILED)


def leads_missing_postbacks(*, settle_seconds: int = 60, limit: int = 500) -> list[str]:
    """Routed leads of sources with a postback URL that have no postback attempt on record."""
    now = timezone.now()
    return [
        str(lead_id)
        for lead_id in Lead.objects.filter(
            status__in=POSTBACK_STATUSES,
            received_at__gte=now - timedelta(days=1),
            updated_at__lt=now - timedelta(seconds=settle_seconds),
            postbacks__isnull=True,
        )
        .exclude(source__postback_url="")
        .order_by("received_at")
        .values_list("id", flat=True)[:limit]
    ]
