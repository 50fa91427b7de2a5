"""Intake's store: a valid lead checked against the suppression lists and earlier leads and
stored with its verdict, as one PostgreSQL message (`_store_checked_postgres`) or through the
ORM (`_store_checked_orm`: SQLite, the embedded default, or PostgreSQL with server-side
binding), side by side; and the advisory locks that serialise leads and requests sharing a key.

`_on_postgres()` is the one place leads ask which database they are on;
tests/leads/test_intake_store.py holds both stores to the same verdicts.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from config.admin_display import plural
from leads.models import (
    ContactKind,
    DuplicateScope,
    Lead,
    LeadStatus,
    SuppressedContact,
    SuppressionList,
    Vertical,
)


def _on_postgres() -> bool:
    return connection.vendor == "postgresql"


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


# Takes the locks of a sorted array of keys, so that two transactions wanting overlapping keys
# take them in the same order and cannot deadlock; PostgreSQL evaluates volatile calls after the
# sort.
ADVISORY_LOCK_SQL = (
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest(%s::text[]) AS k ORDER BY k"
)


def advisory_locks(keys: list[str]) -> None:
    """Serialise transactions that claim the same keys (PostgreSQL; SQLite serialises anyway)."""
    if not keys or not _on_postgres():
        return
    with connection.cursor() as cursor:
        cursor.execute(ADVISORY_LOCK_SQL, [sorted(set(keys))])


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
    return _on_postgres() and not connection.settings_dict.get("OPTIONS", {}).get(
        "server_side_binding"
    )


def lead_store_checked(lead: Lead, checks: IntakeChecks) -> Lead | None:
    """Check a valid lead against suppression, then duplicates, and store it with its verdict
    (its status, reason and duplicate_of are set); return the lead it duplicates."""
    if _one_message_store():
        return _store_checked_postgres(lead, checks)
    return _store_checked_orm(lead, checks)


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
            advisory_locks(checks.lock_keys)
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
