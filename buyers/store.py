"""Cap reservation's persistence on its hot path: the PostgreSQL statements, with what the ORM
does in their place beside them.

A routing run reserves cap room before every post (buyers.services.cap_reserve). On PostgreSQL
most reservations are one statement (a contract and buyer without caps); on SQLite, the
embedded default, the reservation's ORM transaction does the same work. `_on_postgres()` is the
one place the caps ask which database they are on; tests/routing/test_engine_statements.py holds
both paths to the same rows.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal

from django.db import connection

from buyers.caps import CapLimitSpec
from buyers.models import BuyerCap, CapReservation, Contract, ContractCap
from buyers.selectors import BUYER_SCOPE, CONTRACT_SCOPE
from config.rows import insert_values, inserted, one_statement, quoted, stored_fields
from leads.models import Lead


def _on_postgres() -> bool:
    return connection.vendor == "postgresql"


# The reservation of a lead with a contract whose contract and buyer have no cap, in one
# statement that also reads the caps: when there are some, nothing is inserted, and the caller
# charges them in a transaction of its own with the caps it was given here.
_RESERVE_UNCAPPED_SQL = """
WITH caps AS (
    SELECT 'contract' AS scope, id, period, max_leads, max_budget
    FROM {contract_cap} WHERE contract_id = %s
    UNION ALL
    SELECT 'buyer', id, period, max_leads, max_budget FROM {buyer_cap} WHERE buyer_id = %s
), reserved AS (
    INSERT INTO {reservation} ({columns}) SELECT {placeholders}
    WHERE NOT EXISTS (SELECT 1 FROM caps)
    RETURNING id
)
SELECT (SELECT id FROM reserved), caps.* FROM (SELECT 1) AS one LEFT JOIN caps ON true
"""


def reservation_uncapped(
    *, lead: Lead, contract: Contract, price: Decimal, now: datetime
) -> tuple[CapReservation | None, list[CapLimitSpec] | None]:
    """Reserve in one round trip when no cap applies; else return the caps that do.

    Most contracts have no cap: their reservation is one INSERT, which needs neither a
    transaction (BEGIN and COMMIT are two more round trips) nor the two queries for caps. On
    PostgreSQL only: elsewhere nothing is done and (None, None) says so; the caller's
    transaction then reads the caps itself. Raise IntegrityError when the lead already holds
    room with this contract.
    """
    if not _on_postgres():
        return None, None
    reservation = CapReservation(lead=lead, contract=contract, price=price, created_at=now)
    columns, placeholders, params = insert_values(reservation, stored_fields(CapReservation))
    sql = _RESERVE_UNCAPPED_SQL.format(
        contract_cap=quoted(ContractCap._meta.db_table),
        buyer_cap=quoted(BuyerCap._meta.db_table),
        reservation=quoted(CapReservation._meta.db_table),
        columns=columns,
        placeholders=placeholders,
    )
    with one_statement(), connection.cursor() as cursor:
        cursor.execute(sql, [contract.pk, contract.buyer_id, *params])
        rows = cursor.fetchall()
    if rows[0][0] is not None:
        return inserted(reservation, rows[0][0]), []
    specs = [
        CapLimitSpec(
            scope=CONTRACT_SCOPE if scope == "contract" else BUYER_SCOPE,
            owner_id=contract.pk if scope == "contract" else contract.buyer_id,
            period=period,
            max_leads=max_leads,
            max_budget=max_budget,
        )
        for _, scope, _, period, max_leads, max_budget in rows
    ]
    return None, specs


def _advisory_lock_key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


def consumer_purchases_lock(*, buyer_id: int, identities: list[str]) -> None:
    """Inside a transaction: serialise, until it ends, the checks of one buyer's repeat-purchase
    rule for these emails and phones and the reservations that follow them.

    On PostgreSQL, a transaction-scoped advisory lock per buyer and email/phone. SQLite needs
    none: the reservation row is written before the check, and a writing transaction holds
    the database's one write lock until it ends.
    """
    if not _on_postgres():
        return
    keys = sorted(_advisory_lock_key(f"bought:{buyer_id}:{value}") for value in identities)
    with connection.cursor() as cursor:
        for key in keys:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
