"""Writes for verticals, sources, API keys and leads."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
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
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from config.admin_display import plural
from config.api_keys import api_key_create, api_key_find, api_key_revoke
from leads import intake_cache
from leads.intake import normalise_fields, parse_submission
from leads.models import (
    LEAD_TRANSITIONS,
    ContactKind,
    DuplicateScope,
    IdempotencyRecord,
    Lead,
    LeadStatus,
    Source,
    SourceApiKey,
    SuppressedContact,
    SuppressionList,
    Vertical,
)
from leads.outcomes import lead_outcome_wait
from leads.scoring import score_lead
from leads.selectors import (
    allowed_vertical_slugs,
    vertical_field_specs,
    vertical_for_source,
    vertical_scorecard,
)

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

# A lead in one of these states got through intake; later leads may duplicate it.
INTAKE_ACCEPTED_STATES = (
    LeadStatus.ACCEPTED,
    LeadStatus.ROUTING,
    LeadStatus.SOLD,
    LeadStatus.UNSOLD,
    LeadStatus.RETURNED,
    LeadStatus.FAILED,
)
# What the denormalised columns hold; any other duplicate field is compared inside `data`.
DUPLICATE_COLUMNS = {"email": "email", "phone": "phone", "zip_code": "zip_code", "state": "state"}


class IntakeVerdict(StrEnum):
    ACCEPTED = "accepted"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    SUPPRESSED = "suppressed"
    FORBIDDEN = "forbidden"


@dataclass(frozen=True)
class IngestResult:
    verdict: IntakeVerdict
    lead: Lead
    detail: str = ""
    errors: dict[str, list[str]] = field(default_factory=dict)
    duplicate_of: Lead | None = None


# Takes the locks of a sorted array of keys, so that two transactions wanting overlapping keys
# take them in the same order and cannot deadlock; PostgreSQL evaluates volatile calls after the
# sort.
ADVISORY_LOCK_SQL = (
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest(%s::text[]) AS k ORDER BY k"
)


def _advisory_locks(keys: list[str]) -> None:
    """Serialise transactions that claim the same keys (PostgreSQL; SQLite serialises anyway)."""
    if not keys or connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(ADVISORY_LOCK_SQL, [sorted(set(keys))])


def suppression_hash(kind: str, value: str) -> str:
    """Return the keyed hash under which a normalised email or E.164 phone is suppressed."""
    message = f"{kind}:{value.strip().lower()}".encode()
    return hmac.new(settings.SUPPRESSION_HASH_KEY.encode(), message, hashlib.sha256).hexdigest()


def _duplicate_values(vertical: Vertical, data: dict[str, Any]) -> dict[str, str]:
    values = {}
    for name in vertical.duplicate_fields or ():
        value = data.get(name)
        if value not in (None, ""):
            values[name] = str(value)
    return values


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


def lead_ingest(
    *,
    source: Source,
    api_key: SourceApiKey | None,
    document: Any,
    raw_body: str,
    remote_ip: str | None = None,
) -> IngestResult:
    """Validate, normalise, score, deduplicate and store one submitted lead; enqueue it for
    routing.

    Every outcome is stored as a lead with its raw body and reasons. An accepted lead is handed
    to routing only after its transaction commits.
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
    }
    vertical = vertical_for_source(source=source, slug=submission.vertical)
    if not source.active or vertical is None:
        detail = (
            "This source is inactive; ask your account manager to reactivate it."
            if not source.active
            else f"This source may not submit to {submission.vertical!r}; its verticals "
            f"are {', '.join(allowed_vertical_slugs(source=source)) or 'none'}."
        )
        known = vertical or Vertical.objects.filter(slug=submission.vertical).first()
        return _reject(
            verdict=IntakeVerdict.FORBIDDEN,
            status=LeadStatus.INVALID,
            vertical=known,
            detail=detail,
            **lead_fields,
            **common,
        )
    normalised, errors = normalise_fields(vertical_field_specs(vertical), submission.fields)
    if normalised is None:
        return _reject(
            verdict=IntakeVerdict.INVALID,
            status=LeadStatus.INVALID,
            vertical=vertical,
            detail=f"The lead has {plural(len(errors), 'invalid field')}; see errors.",
            errors=errors,
            **lead_fields,
            **common,
        )
    lead_fields.update(
        data=normalised.data,
        email=normalised.email,
        phone=normalised.phone,
        zip_code=normalised.zip_code,
        state=normalised.state,
    )
    # Pure Python over rules compiled once per vertical: no query, no network.
    scored = score_lead(vertical_scorecard(vertical), normalised.data, source_id=source.pk)
    if scored is not None:
        lead_fields.update(score=scored.score, tier=scored.tier, score_breakdown=scored.breakdown())
    lead = Lead(vertical=vertical, status=LeadStatus.ACCEPTED, **lead_fields, **common)
    checks = IntakeChecks.of(lead, vertical=vertical)
    store = _store_checked_postgres if _one_message_store() else _store_checked_orm
    earlier = store(lead, checks)
    if lead.status == LeadStatus.ACCEPTED:
        # Outside a transaction the lead is committed already and this runs at once.
        transaction.on_commit(partial(routing_enqueue, [lead.pk]))
        return IngestResult(verdict=IntakeVerdict.ACCEPTED, lead=lead)
    if lead.status == LeadStatus.SUPPRESSED:
        return IngestResult(verdict=IntakeVerdict.SUPPRESSED, lead=lead, detail=lead.reason)
    return IngestResult(
        verdict=IntakeVerdict.DUPLICATE, lead=lead, detail=lead.reason, duplicate_of=earlier
    )


SUPPRESSED_REASON = "The consumer may not be contacted."


@dataclass(frozen=True)
class IntakeChecks:
    """What a valid lead is checked against as it is stored: suppression, then duplicates."""

    suppression_hashes: list[str]
    # Duplicate fields with a value, and the lock keys that serialise leads sharing them.
    duplicate_values: dict[str, str]
    lock_keys: list[str]
    lookback_days: int = 0
    same_source: bool = False
    duplicate_reason: str = ""

    @classmethod
    def of(cls, lead: Lead, *, vertical: Vertical) -> IntakeChecks:
        hashes = []
        if lead.email:
            hashes.append(suppression_hash(ContactKind.EMAIL, lead.email))
        if lead.phone:
            hashes.append(suppression_hash(ContactKind.PHONE, lead.phone))
        values = _duplicate_values(vertical, lead.data)
        if not values or not vertical.duplicate_lookback_days:
            return cls(suppression_hashes=hashes, duplicate_values={}, lock_keys=[])
        same_source = vertical.duplicate_scope == DuplicateScope.SOURCE
        scope = f"s{lead.source_id}" if same_source else "g"
        days = vertical.duplicate_lookback_days
        return cls(
            suppression_hashes=hashes,
            duplicate_values=values,
            lock_keys=sorted(
                {
                    f"dup:{vertical.pk}:{scope}:{int(lead.is_test)}:{name}:{value}"
                    for name, value in values.items()
                }
            ),
            lookback_days=days,
            same_source=same_source,
            duplicate_reason=f"A lead with the same {' or '.join(values)} was accepted in the "
            f"last {plural(days, 'day')}.",
        )


def _one_message_store() -> bool:
    """Whether the connection can send several statements with parameters in one message:
    PostgreSQL with psycopg's client-side binding, Django's default."""
    return connection.vendor == "postgresql" and not connection.settings_dict.get(
        "OPTIONS", {}
    ).get("server_side_binding")


def _store_checked_orm(lead: Lead, checks: IntakeChecks) -> Lead | None:
    """Check and store a valid lead with the ORM (SQLite, or PostgreSQL with server-side
    binding); return the lead it duplicates."""
    earlier = None
    with transaction.atomic():
        if (
            checks.suppression_hashes
            and SuppressedContact.objects.filter(
                value_hash__in=checks.suppression_hashes, suppression_list__active=True
            ).exists()
        ):
            lead.status, lead.reason = LeadStatus.SUPPRESSED, SUPPRESSED_REASON
        elif checks.duplicate_values:
            _advisory_locks(checks.lock_keys)
            earlier = _find_duplicate(lead, checks)
            if earlier is not None:
                lead.status, lead.reason = LeadStatus.DUPLICATE, checks.duplicate_reason
                lead.duplicate_of = earlier
        lead.received_at = timezone.now()  # once the locks are held, as on PostgreSQL
        lead.save(force_insert=True)
    return earlier


def _find_duplicate(lead: Lead, checks: IntakeChecks) -> Lead | None:
    match = Q()
    for name, value in checks.duplicate_values.items():
        column = DUPLICATE_COLUMNS.get(name)
        match |= Q(**{column: value}) if column else Q(**{f"data__{name}": value})
    earlier = Lead.objects.filter(
        match,
        vertical_id=lead.vertical_id,
        is_test=lead.is_test,
        received_at__gte=timezone.now() - timedelta(days=checks.lookback_days),
        status__in=INTAKE_ACCEPTED_STATES,
    )
    if checks.same_source:
        earlier = earlier.filter(source_id=lead.source_id)
    return earlier.order_by("received_at").only("id", "source_id").first()


# On PostgreSQL a valid lead costs one round trip: its duplicate keys' locks (ADVISORY_LOCK_SQL),
# then one statement that checks suppression and duplicates and inserts the lead with the verdict,
# in a transaction sent as one message. The duplicate check must be a statement of its own after
# the locks, as a statement sees only what had committed when it began.


LEAD_FIELDS = tuple(f for f in Lead._meta.local_concrete_fields if not f.generated)
# The columns the statement fills in itself: the verdict's three, from the checks, and the dates.
VERDICT_SQL = {
    "status": "(SELECT CASE WHEN suppressed THEN %s WHEN earlier_id IS NOT NULL THEN %s "
    "ELSE %s END FROM checks)",
    "reason": "(SELECT CASE WHEN suppressed THEN %s WHEN earlier_id IS NOT NULL THEN %s "
    "ELSE '' END FROM checks)",
    "duplicate_of_id": "(SELECT CASE WHEN suppressed THEN NULL ELSE earlier_id END FROM checks)",
    # Stamped once the locks are held: a lead that waited for them is not dated before the lead
    # it waited for (a message's statements share one statement_timestamp(), hence the clock).
    "received_at": "(SELECT at FROM stamp)",
    "updated_at": "(SELECT at FROM stamp)",
}


def _earlier_lead_sql(lead: Lead, checks: IntakeChecks, params: list[Any]) -> str:
    """The join that finds the earliest lead the new one duplicates (as `_find_duplicate`)."""
    if not checks.duplicate_values:
        return "LEFT JOIN (SELECT NULL::uuid AS id, NULL::integer AS source_id) earlier ON false"
    match = []
    for name, value in checks.duplicate_values.items():
        column = DUPLICATE_COLUMNS.get(name)
        if column:
            match.append(f"{connection.ops.quote_name(column)} = %s")
            params.append(value)
        else:  # as the ORM compares data__name with a string: as a JSON string
            match.append("data -> %s = to_jsonb(%s::text)")
            params.extend([name, value])
    where = [f"({' OR '.join(match)})", "vertical_id = %s", "is_test = %s"]
    # Measured from when the locks are held (the stamp), as the ORM store measures it.
    where += ["received_at >= (SELECT at FROM stamp) - make_interval(days => %s)"]
    where += ["status = ANY(%s)"]
    params += [lead.vertical_id, lead.is_test, checks.lookback_days]
    params.append(list(INTAKE_ACCEPTED_STATES))
    if checks.same_source:
        where.append("source_id = %s")
        params.append(lead.source_id)
    return (
        f"LEFT JOIN LATERAL (SELECT id, source_id FROM {Lead._meta.db_table} WHERE "  # noqa: S608
        f"{' AND '.join(where)} ORDER BY received_at LIMIT 1) earlier ON true"
    )


def _checked_insert(lead: Lead, checks: IntakeChecks) -> tuple[str, list[Any]]:
    """The statement that checks a valid lead and inserts it with its verdict, and its params.

    It answers one row: the stored status, the lead it duplicates, that lead's source and the
    stored lead's received_at.
    Every value is a parameter; only fixed column names are written into the text.
    """
    params: list[Any] = []
    suppressed = "false"
    if checks.suppression_hashes:
        suppressed = (
            f"EXISTS (SELECT 1 FROM {SuppressedContact._meta.db_table} c "  # noqa: S608 - names
            f"JOIN {SuppressionList._meta.db_table} l ON l.id = c.suppression_list_id "
            "WHERE l.active AND c.value_hash = ANY(%s))"
        )
        params.append(checks.suppression_hashes)
    earlier = _earlier_lead_sql(lead, checks, params)
    verdict_params = {
        "status": [LeadStatus.SUPPRESSED, LeadStatus.DUPLICATE, LeadStatus.ACCEPTED],
        "reason": [SUPPRESSED_REASON, checks.duplicate_reason[:500]],
        "duplicate_of_id": [],
        "received_at": [],
        "updated_at": [],
    }
    placeholders = []
    # Each value as the ORM's INSERT would send it, without the ORM compiling the statement for
    # every lead.
    for field_ in LEAD_FIELDS:
        if field_.column in VERDICT_SQL:
            placeholders.append(VERDICT_SQL[field_.column])
            params += verdict_params[field_.column]
        else:
            placeholders.append("%s")
            params.append(field_.get_db_prep_save(field_.pre_save(lead, add=True), connection))
    columns = ", ".join(connection.ops.quote_name(f.column) for f in LEAD_FIELDS)
    head = f"INSERT INTO {connection.ops.quote_name(Lead._meta.db_table)} ({columns})"
    sql = (
        "WITH stamp AS MATERIALIZED (SELECT clock_timestamp() AS at), "  # noqa: S608
        f"checks AS (SELECT {suppressed} AS suppressed, earlier.id AS earlier_id, "
        f"earlier.source_id AS earlier_source_id FROM (SELECT 1) AS one {earlier}), "
        f"stored AS ({head} VALUES ({', '.join(placeholders)}) "
        "RETURNING status, duplicate_of_id, received_at) "
        "SELECT stored.status, stored.duplicate_of_id, checks.earlier_source_id, "
        "stored.received_at FROM stored, checks"
    )
    return sql, params


def _store_checked_postgres(lead: Lead, checks: IntakeChecks) -> Lead | None:
    """Check and store a valid lead in one round trip; return the lead it duplicates."""
    statements, params = [], []
    if checks.lock_keys:
        statements.append(ADVISORY_LOCK_SQL)
        params.append(checks.lock_keys)
    insert, insert_params = _checked_insert(lead, checks)
    statements.append(insert)
    params += insert_params
    # Locks need a transaction: outside one, open it and commit it in the same message.
    own_transaction = bool(checks.lock_keys) and connection.get_autocommit()
    if own_transaction:
        statements = ["BEGIN", *statements, "COMMIT"]
    with connection.cursor() as cursor:
        try:
            cursor.execute("; ".join(statements), params)
            for _ in range(statements.index(insert)):
                cursor.nextset()
            status, duplicate_of_id, earlier_source_id, received_at = cursor.fetchone()
        except Exception:
            if own_transaction:
                with contextlib.suppress(Exception):
                    cursor.execute("ROLLBACK")
            raise
    lead._state.adding, lead._state.db = False, connection.alias
    lead.status = LeadStatus(status)
    lead.received_at = lead.updated_at = received_at
    if status == LeadStatus.SUPPRESSED:
        lead.reason = SUPPRESSED_REASON
    elif status == LeadStatus.DUPLICATE:
        lead.reason = checks.duplicate_reason[:500]
        # As the ORM store's .only("id", "source_id"): any other field loads when read.
        lead.duplicate_of = Lead.from_db(
            connection.alias, ["id", "source_id"], [duplicate_of_id, earlier_source_id]
        )
        return lead.duplicate_of
    return None


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
    _advisory_locks([f"idem:{source.pk}:{key}"])
    since = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
    return IdempotencyRecord.objects.filter(source=source, key=key, created_at__gte=since).first()


def idempotency_record_save(
    *,
    source: Source,
    key: str,
    request_hash: str,
    lead: Lead | None,
    status: int,
    body: bytes,
    headers: dict[str, str],
) -> None:
    """Keep the answer to replay; an expired record with the same key is replaced."""
    IdempotencyRecord.objects.update_or_create(
        source=source,
        key=key,
        defaults={
            "request_hash": request_hash,
            "lead": lead,
            "response_status": status,
            "response_body": body,
            "response_headers": headers,
            "created_at": timezone.now(),
        },
    )


def idempotency_record_update(
    *, source: Source, key: str, status: int, body: bytes, headers: dict[str, str]
) -> None:
    """Replace the kept answer by the final one (after Prefer: wait saw the outcome)."""
    IdempotencyRecord.objects.filter(source=source, key=key).update(
        response_status=status, response_body=body, response_headers=headers
    )


def idempotency_records_purge() -> int:
    cutoff = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted


# The statuses a `Prefer: wait` request waits for: the routing run has settled the lead.
OUTCOME_STATUSES = frozenset({LeadStatus.SOLD, LeadStatus.UNSOLD, LeadStatus.FAILED})


class Answer(Protocol):
    """An answer to a partner as it is sent and kept for replay: status, bytes and headers."""

    status: int
    body: bytes
    headers: dict[str, str]


AnswerT = TypeVar("AnswerT", bound=Answer)


@dataclass(frozen=True)
class Submission:
    """A partner's request to submit one lead, as the API read it."""

    source: Source
    request_hash: str  # of the body's bytes: a replay must carry the very same body
    idempotency_key: str | None = None
    wait_seconds: int | None = None  # Prefer: wait=N


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
    if key is None:
        answer, lead = ingest()
    else:
        with transaction.atomic():
            record = idempotency_lock_and_find(source=submission.source, key=key)
            if record is not None:
                if record.request_hash != submission.request_hash:
                    return Submitted(answer=key_reused())
                return Submitted(replay=record)
            answer, lead = ingest()
            idempotency_record_save(
                source=submission.source,
                key=key,
                request_hash=submission.request_hash,
                lead=lead,
                status=answer.status,
                body=answer.body,
                headers=answer.headers,
            )
    # Wait only after the commit: the routing run that settles the lead needs to see it.
    if submission.wait_seconds and answer.status == 202 and lead is not None:
        status = lead_outcome_wait(lead.pk, seconds=submission.wait_seconds)
        if status in OUTCOME_STATUSES:
            lead.refresh_from_db(fields=["status", "sale_price", "payout", "sold_at"])
            answer = outcome(lead)
            if key is not None:
                idempotency_record_update(
                    source=submission.source,
                    key=key,
                    status=answer.status,
                    body=answer.body,
                    headers=answer.headers,
                )
    return Submitted(answer=answer)


# --- Suppression lists ----------------------------------------------------------------------


@dataclass(frozen=True)
class SuppressionUpload:
    added: int
    already_listed: int
    rejected: list[str]


def suppression_list_add(*, suppression_list: SuppressionList, text: str) -> SuppressionUpload:
    """Add the emails and phones of a pasted or uploaded list (one per line or CSV cell)."""
    from leads.intake import FieldError, FieldSpec, normalise_value

    entries: set[tuple[str, str]] = set()
    rejected: list[str] = []
    for raw in re.split(r"[\s,;]+", text):
        value = raw.strip().strip('"').strip("'")
        if not value or value.lower() in {"email", "phone", "e-mail"}:
            continue
        kind = ContactKind.EMAIL if "@" in value else ContactKind.PHONE
        try:
            normalised = normalise_value(FieldSpec(name=kind, field_type=kind), value)
        except FieldError:
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
        added=len(new), already_listed=len(entries & existing), rejected=rejected
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
