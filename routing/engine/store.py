"""The routing run's persistence: each write of the hot path as one PostgreSQL statement, with
its ORM twin beside it.

On PostgreSQL a sold lead costs three round trips: the claim (here), the cap reservation
(buyers/store.py) and the settlement (here, with the sale and the run's attempts), each one
statement that is atomic on its own and needs no BEGIN or COMMIT, its values prepared and read
back through the models' own fields (config/rows.py). The ORM twins do the same work in
transactions of several statements, on SQLite (the embedded default); the tests hold both to
the same rows (tests/routing/test_engine_statements.py). `_on_postgres()` is the one place the
run asks which database it is on.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from buyers.models import CapReservation, Contract, ReservationStatus
from buyers.services import cap_commit
from config.rows import (
    from_row,
    insert_values,
    inserted,
    json_ready_fields,
    json_rows,
    one_statement,
    quoted,
    select_list,
    storable_text,
    stored_fields,
)
from leads.models import Lead, LeadStatus, Source, Vertical
from routing.breaker import BreakerStatus
from routing.engine.run import Run
from routing.health import HEALTH_JSON_SQL, health_states_from_json
from routing.models import Attempt, Auction, AuctionStatus, ContractHealth, Sale


def _on_postgres() -> bool:
    return connection.vendor == "postgresql"


# --- The claim --------------------------------------------------------------------------------

# Claim an accepted lead, open its auction, read the lead with its vertical and source and the
# vertical's breakers that are not closed, in one statement: one round trip, atomic on its own,
# where the ORM needs a transaction around the claim and a query for each read.
_CLAIM_SQL = """
WITH claimed AS (
    UPDATE {lead} SET status = %s, updated_at = %s WHERE id = %s AND status = %s RETURNING *
), opened AS (
    INSERT INTO {auction} (lead_id, status, started_at, eligible_count, explanation, note)
    SELECT id, %s, %s, 0, '[]', '' FROM claimed
    RETURNING id
)
SELECT opened.id,
    (SELECT json_agg(h)::text FROM {health} h JOIN {contract} c ON c.id = h.contract_id
     WHERE c.vertical_id = claimed.vertical_id AND h.status <> %s),
    {lead_columns}, {vertical_columns}, {source_columns}
FROM opened CROSS JOIN claimed
LEFT JOIN {vertical} v ON v.{vertical_pk} = claimed.vertical_id
JOIN {source} s ON s.{source_pk} = claimed.source_id
"""


@functools.cache
def _claim_sql() -> str:
    return _CLAIM_SQL.format(
        lead=quoted(Lead._meta.db_table),
        auction=quoted(Auction._meta.db_table),
        health=quoted(ContractHealth._meta.db_table),
        contract=quoted(Contract._meta.db_table),
        vertical=quoted(Vertical._meta.db_table),
        source=quoted(Source._meta.db_table),
        vertical_pk=quoted(Vertical._meta.pk.column),
        source_pk=quoted(Source._meta.pk.column),
        lead_columns=select_list(Lead, "claimed"),
        vertical_columns=select_list(Vertical, "v"),
        source_columns=select_list(Source, "s"),
    )


def _claimed_lead(row: tuple) -> Lead:
    """The lead, its vertical and its source from a row of _CLAIM_SQL (after the auction id and
    the breakers)."""
    widths = [len(model._meta.concrete_fields) for model in (Lead, Vertical, Source)]
    lead_values = row[: widths[0]]
    vertical_values = row[widths[0] : widths[0] + widths[1]]
    source_values = row[widths[0] + widths[1] :]
    lead = from_row(Lead, lead_values)
    lead.vertical = from_row(Vertical, vertical_values) if vertical_values[0] is not None else None
    lead.source = from_row(Source, source_values)
    return lead


def claim_accepted(lead_id: str, now: datetime) -> Run | None:
    """Claim an accepted lead (accepted -> routing) and open its auction, atomically; return
    the run, or None when the lead is not accepted. On PostgreSQL the run also knows the
    vertical's breakers that are not closed."""
    if _on_postgres():
        return _claim_accepted_postgres(lead_id, now)
    return _claim_accepted_orm(lead_id, now)


def _claim_accepted_postgres(lead_id: str, now: datetime) -> Run | None:
    with connection.cursor() as cursor:
        cursor.execute(
            _claim_sql(),
            [
                LeadStatus.ROUTING,
                now,
                lead_id,
                LeadStatus.ACCEPTED,
                AuctionStatus.RUNNING,
                now,
                BreakerStatus.CLOSED,
            ],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    lead = _claimed_lead(row[2:])
    auction = inserted(
        Auction(lead=lead, status=AuctionStatus.RUNNING, started_at=now, explanation=[]),
        row[0],
    )
    return Run(lead=lead, auction=auction, health=health_states_from_json(row[1]))


def _claim_accepted_orm(lead_id: str, now: datetime) -> Run | None:
    with transaction.atomic():
        claimed = Lead.objects.filter(pk=lead_id, status=LeadStatus.ACCEPTED).update(
            status=LeadStatus.ROUTING, updated_at=now
        )
        if not claimed:
            return None
        lead = Lead.objects.select_related("vertical", "source").get(pk=lead_id)
        return Run(lead=lead, auction=Auction.objects.create(lead=lead))


# --- Attempts ---------------------------------------------------------------------------------

# Every column but the id, in model order, of each kind of attempt row (a run's Attempt, or an
# inbound ping's exchange.PingAttempt: both made by the engine's ping and post code).
_attempt_fields: dict[type[models.Model], tuple[list[models.Field], list[models.Field]]] = {}


def _fields_of(model: type[models.Model]) -> tuple[list[models.Field], list[models.Field]]:
    """The model's stored fields, and its text fields among them."""
    if model not in _attempt_fields:
        fields = list(json_ready_fields(stored_fields(model)))
        text = [f for f in fields if isinstance(f, models.CharField | models.TextField)]
        _attempt_fields[model] = (fields, text)
    return _attempt_fields[model]


def _scrub_unstorable(attempts: Sequence[models.Model], model: type[models.Model]) -> None:
    # A buyer's answer may hold NUL bytes or (parsed from JSON) lone surrogates, which
    # PostgreSQL cannot store: the attempt is stored with U+FFFD in their place rather than the
    # whole run failing to settle (and the lead going to that buyer again after it).
    for attempt in attempts:
        for field in _fields_of(model)[1]:
            value = getattr(attempt, field.attname)
            if value:
                setattr(attempt, field.attname, storable_text(value))


def attempts_insert_sql(
    attempts: Sequence[models.Model], *, model: type[models.Model] = Attempt
) -> tuple[str, list[str]]:
    """The INSERT that stores new attempts (PostgreSQL), and its one parameter: the rows as JSON.

    A routing run writes one attempt per buyer pinged and posted. From JSON, PostgreSQL reads
    each value with its column's own input, so Python builds one string instead of a row of
    parameters per attempt, and the statement can ride in another (the settlement's). The rows
    get no ids back; nothing of a run needs them.
    """
    _scrub_unstorable(attempts, model)
    fields = _fields_of(model)[0]
    table = quoted(model._meta.db_table)
    columns = ", ".join(quoted(f.column) for f in fields)
    sql = (
        f"INSERT INTO {table} ({columns}) SELECT {columns} "  # noqa: S608 - names of the model
        f"FROM jsonb_populate_recordset(NULL::{table}, %s::jsonb)"
    )
    return sql, [json_rows(attempts, fields)]


def attempts_insert(
    attempts: Sequence[models.Model], *, model: type[models.Model] = Attempt
) -> None:
    """Store new attempts (rows of `model`: a run's, or an inbound ping's)."""
    if not _on_postgres():
        _scrub_unstorable(attempts, model)
        model.objects.bulk_create(attempts)
        return
    sql, params = attempts_insert_sql(attempts, model=model)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _save_attempts(run: Run) -> None:
    """Store the attempts the run has not stored yet."""
    attempts, run.attempts = run.attempts, []
    if attempts:
        attempts_insert(attempts)


# --- Sales ------------------------------------------------------------------------------------


def cap_commit_sql(
    *, reservations: Sequence[tuple[CapReservation, Decimal]]
) -> tuple[str, list] | None:
    """The UPDATE that commits held reservations, each at the price it reserved, with its
    params, for a statement of the run's (a CTE: the sales and their charges in one round
    trip). It returns the ids of those that were held. None when a price moved: the counters
    must then be adjusted, by buyers.services.cap_commit."""
    if any(price != reservation.price for reservation, price in reservations):
        return None
    table = quoted(CapReservation._meta.db_table)
    sql = f"UPDATE {table} SET status = %s, updated_at = %s WHERE id = ANY(%s) AND status = %s"  # noqa: S608
    return f"{sql} RETURNING id", [
        ReservationStatus.COMMITTED,
        timezone.now(),
        [reservation.pk for reservation, _ in reservations],
        ReservationStatus.HELD,
    ]


def sale_waits(sale: Sale, reservation: CapReservation) -> bool:
    """Whether an accepted sale may wait for the run's next write and ride in its statement:
    on PostgreSQL, when the buyer paid the price reserved. Otherwise it is stored at once."""
    return _on_postgres() and sale.price == reservation.price


def sale_store(sale: Sale, *, reservation: CapReservation) -> None:
    """Store the sale and commit its cap reservation, both or neither.

    On PostgreSQL, when the buyer paid the price reserved, one statement does both, atomic on
    its own: no transaction to open and commit around them.
    """
    commit = cap_commit_sql(reservations=[(reservation, sale.price)]) if _on_postgres() else None
    if commit is None:
        with transaction.atomic():
            cap_commit(reservation=reservation, price=sale.price)
            sale.save(force_insert=True)
        return
    sql, params = _sales_sql([(sale, reservation)], commit)
    with one_statement(), connection.cursor() as cursor:
        cursor.execute(f"WITH {sql} SELECT {_SALES_STORED}", params)
        _sales_stored([(sale, reservation)], cursor.fetchone())


def _sales_sql(
    sales: list[tuple[Sale, CapReservation]], commit: tuple[str, list]
) -> tuple[str, list]:
    """CTEs that commit the sales' reservations and insert the sales, with their params; the
    statement that holds them selects _SALES_STORED for _sales_stored."""
    commit_sql, params = commit
    rows = []
    for sale, _ in sales:
        columns, placeholders, sale_params = insert_values(sale, stored_fields(Sale))
        rows.append(f"({placeholders})")
        params = [*params, *sale_params]
    sql = (
        f"committed AS ({commit_sql}), "  # noqa: S608 - names of the models
        f"sold AS (INSERT INTO {quoted(Sale._meta.db_table)} ({columns}) "
        f"VALUES {', '.join(rows)} RETURNING id, buyer_id)"
    )
    return sql, params


_SALES_STORED = (
    "(SELECT array_agg(ARRAY[id, buyer_id]) FROM sold), (SELECT array_agg(id) FROM committed)"
)


def _sales_stored(sales: list[tuple[Sale, CapReservation]], row) -> None:
    """Mark the sales stored and their reservations committed, from _SALES_STORED's values."""
    ids, committed = row
    by_buyer = {buyer_id: pk for pk, buyer_id in ids}
    for sale, reservation in sales:
        inserted(sale, by_buyer[sale.buyer_id])
        if reservation.pk in (committed or []):
            reservation.status = ReservationStatus.COMMITTED


# --- The settlement ---------------------------------------------------------------------------


def run_settle(run: Run, *, changes: dict, ending: dict) -> int:
    """Settle the lead with `changes` (if still routing), end the auction with `ending`, and
    store the run's attempts and its sales left for the settlement, all or nothing. Return 1
    when the lead was settled.

    On PostgreSQL one statement does it all and reads the health rows of the contracts the run
    heard from (run.health_after).
    """
    if _on_postgres():
        with one_statement():
            return _settle_in_one_statement(run, changes=changes, ending=ending)
    with transaction.atomic():
        _save_attempts(run)
        settled = Lead.objects.filter(pk=run.lead.pk, status=LeadStatus.ROUTING).update(**changes)
        Auction.objects.filter(pk=run.auction.pk).update(**ending)
    return settled


def _assignments(model, values: dict) -> tuple[str, list]:
    """`column = %s, ...` and the params that set these fields, prepared as the ORM would."""
    fields = [model._meta.get_field(name) for name in values]
    sql = ", ".join(f"{quoted(f.column)} = %s" for f in fields)
    return sql, [f.get_db_prep_save(values[f.name], connection) for f in fields]


def _settle_in_one_statement(run: Run, *, changes: dict, ending: dict) -> int:
    """Store the run's unstored sales (committing their reservations), settle the lead (if
    still routing), end the auction and store the run's attempts, in one statement, atomic on its
    own. Return 1 when the lead was settled."""
    lead_sets, lead_params = _assignments(Lead, changes)
    auction_sets, auction_params = _assignments(Auction, ending)
    sql = (
        f"WITH settled AS (UPDATE {quoted(Lead._meta.db_table)} SET {lead_sets} "  # noqa: S608
        "WHERE id = %s AND status = %s RETURNING id), "
        f"ended AS (UPDATE {quoted(Auction._meta.db_table)} SET {auction_sets} WHERE id = %s)"
    )
    params = [*lead_params, run.lead.pk, LeadStatus.ROUTING, *auction_params, run.auction.pk]
    # Taken off the run before the statement runs: if it fails for their sake (a value the
    # database refuses), the run is abandoned without them rather than failing again on them.
    attempts, run.attempts = run.attempts, []
    if attempts:
        insert, insert_params = attempts_insert_sql(attempts)
        sql += f", recorded AS ({insert})"
        params += insert_params
    unstored = run.unstored
    stored = "NULL, NULL"
    if unstored:
        commit = cap_commit_sql(reservations=[(r, sale.price) for sale, r in unstored])
        sales_sql, sales_params = _sales_sql(unstored, commit)
        sql += f", {sales_sql}"
        params += sales_params
        stored = _SALES_STORED
    # The breakers the run's answers count towards, for _record_health (settlement.py) to read
    # no more.
    heard = sorted({o.contract.pk for o in run.observations})
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                f"{sql} SELECT (SELECT count(*) FROM settled), {HEALTH_JSON_SQL}, {stored}",  # noqa: S608
                [*params, heard],
            )
            settled, health, *sales_stored = cursor.fetchone()
    except IntegrityError:
        if unstored:  # a sale refused: the attempts go with the settlement that follows
            run.attempts = attempts
        raise
    run.unstored = []
    if unstored:
        _sales_stored(unstored, sales_stored)
    run.health_after = health_states_from_json(health)
    return settled
