"""Reporting's reads that PostgreSQL does in SQL of its own, with their ORM twins beside them.

Exact percentiles of a short period (up to two days) are read from the period's sales and
pings: PostgreSQL's percentile_cont, or the same interpolation in Python over the rows the ORM
reads (SQLite, the embedded default). `_on_postgres()` is the one place reporting asks which
database it is on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from django.db import connections, router
from django.db.models import Q

from buyers.models import Contract, EndpointKind
from leads.models import Lead
from reporting.filters import ReportQuery
from routing.models import Attempt, Sale

Pair = tuple[float | None, float | None]


def _reads() -> str:
    """The database reads go to here (the replica inside `reading_from_replica`)."""
    return router.db_for_read(Sale)


def _on_postgres() -> bool:
    return connections[_reads()].vendor == "postgresql"


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks, as PostgreSQL's percentile_cont."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _lead_conditions(q: ReportQuery, alias: str) -> tuple[list[str], list[Any]]:
    where = [f"{alias}.received_at >= %s", f"{alias}.received_at < %s", f"NOT {alias}.is_test"]
    params: list[Any] = [q.start, q.end]
    if q.vertical_id:
        where.append(f"{alias}.vertical_id = %s")
        params.append(q.vertical_id)
    if q.source_id:
        where.append(f"{alias}.source_id = %s")
        params.append(q.source_id)
    return where, params


def _lead_filter(q: ReportQuery, *, buyer: str) -> Q:
    """The ORM twin of `_lead_conditions`, for rows of the period's leads (through `lead`), and
    of the query's buyer (through `buyer`)."""
    condition = Q(lead__received_at__gte=q.start, lead__received_at__lt=q.end, lead__is_test=False)
    if q.vertical_id:
        condition &= Q(lead__vertical_id=q.vertical_id)
    if q.source_id:
        condition &= Q(lead__source_id=q.source_id)
    if q.buyer_id:
        condition &= Q(**{buyer: q.buyer_id})
    return condition


def _raw_sql(select: str, where: list[str], params: list[Any], group: str = "") -> list[tuple]:
    with connections[_reads()].cursor() as cursor:
        cursor.execute(f"{select} WHERE {' AND '.join(where)}{group}", params)
        return cursor.fetchall()


def sale_seconds_percentiles(q: ReportQuery) -> Pair:
    """The p50 and p95, in seconds, of the time from a lead's receipt to each of its sales, over
    the period's leads (unrounded; None without a sale)."""
    if _on_postgres():
        where, params = _lead_conditions(q, "l")
        if q.buyer_id:
            where.append("s.buyer_id = %s")
            params.append(q.buyer_id)
        x = "EXTRACT(EPOCH FROM s.sold_at - l.received_at)"
        rows = _raw_sql(
            # Table names come from the models; every value is a bound parameter.
            f"SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY {x}),"  # noqa: S608
            f" percentile_cont(0.95) WITHIN GROUP (ORDER BY {x})"
            f" FROM {Sale._meta.db_table} s JOIN {Lead._meta.db_table} l ON l.id = s.lead_id",
            where,
            params,
        )
        return rows[0]
    sales = Sale.objects.filter(_lead_filter(q, buyer="buyer_id"))
    seconds = [
        (sold - received).total_seconds()
        for sold, received in sales.values_list("sold_at", "lead__received_at")
    ]
    return percentile(seconds, 0.5), percentile(seconds, 0.95)


def ping_latency_percentiles_by_buyer(q: ReportQuery) -> dict[int, Pair]:
    """Per buyer id, the p50 and p95 latency (ms) of the pings for the period's leads
    (unrounded)."""
    if _on_postgres():
        where, params = _lead_conditions(q, "l")
        where += ["a.kind = %s", "a.latency_ms IS NOT NULL"]
        params.append(EndpointKind.PING)
        if q.buyer_id:
            where.append("c.buyer_id = %s")
            params.append(q.buyer_id)
        rows = _raw_sql(
            # Table names come from the models; every value is a bound parameter.
            "SELECT c.buyer_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY a.latency_ms),"  # noqa: S608
            " percentile_cont(0.95) WITHIN GROUP (ORDER BY a.latency_ms)"
            f" FROM {Lead._meta.db_table} l"
            f" JOIN {Attempt._meta.db_table} a ON a.lead_id = l.id"
            f" JOIN {Contract._meta.db_table} c ON c.id = a.contract_id",
            where,
            params,
            " GROUP BY c.buyer_id",
        )
        return {row[0]: (row[1], row[2]) for row in rows}
    pings = Attempt.objects.filter(
        _lead_filter(q, buyer="contract__buyer_id"),
        kind=EndpointKind.PING,
        latency_ms__isnull=False,
    )
    latencies: dict[int, list[float]] = defaultdict(list)
    for buyer_id, latency in pings.values_list("contract__buyer_id", "latency_ms"):
        latencies[buyer_id].append(float(latency))
    return {
        buyer_id: (percentile(values, 0.5), percentile(values, 0.95))
        for buyer_id, values in latencies.items()
    }


def bulk_load_supported() -> bool:
    """Whether the database takes generate_report_data's statements: they are PostgreSQL's own
    (generate_series, hashtextextended, TRUNCATE … CASCADE), and the data set has no ORM twin."""
    return _on_postgres()
