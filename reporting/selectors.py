"""Report figures: headline KPIs, the time series, the buyers and sources tables, lead exports.

Counts and money come from the rollups (reporting.rollup): daily rows for periods of whole days,
hourly rows otherwise, a handful of indexed aggregate queries per report whatever its size.
The rollups lag their periodic run: the hours that changed since it (`rollup_stale_hours`) are
recounted from the raw rows and take the place of their rolled-up rows (`Tail`), so every
figure is exact at any moment and nothing is counted twice; nothing is written on read.
Percentiles cannot be added up: for periods of up to two days they are exact, read from the
period's sales and pings (reporting/store.py: PostgreSQL's percentile_cont, or in Python on
SQLite); for longer periods they are estimated from the rollups' histograms (the right bucket,
interpolated in it).
Every figure is about the leads *received* in the period; test leads are left out.

The buyer filter narrows what belongs to a buyer (sales, revenue, returns, pings and posts);
lead counts (received, accepted, invalid, duplicate, unsold) are the same for every buyer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import wraps
from typing import Any, TypeVar

from django.db.models import F, Q, QuerySet, Sum
from django.db.models.functions import TruncDay

from buyers.models import Buyer, Contract
from buyers.selectors import cap_usage_for_contracts
from leads.models import Lead, Source
from leads.scoring import TIERS, Tier
from reporting import store
from reporting.filters import ReportQuery
from reporting.models import PING_MS_BOUNDS, SALE_SECONDS_BOUNDS, RollupState, bucket_names
from reporting.rollup import ROLLUPS, range_chunks, rollup_recount, rollup_stale_hours
from routing.models import ContractHealth, HealthStatus

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
TOP_REASONS = 3
LEAD_FIELDS = ("received", "accepted", "invalid", "duplicate", "sold", "unsold")
SALE_FIELDS = ("sales", "returns", "gross_revenue", "revenue", "payout")
ATTEMPT_FIELDS = ("pings", "bids", "posts", "posts_accepted", "posts_rejected", "posts_failed")
HEALTH_ORDER = {HealthStatus.OPEN: 2, HealthStatus.HALF_OPEN: 1, HealthStatus.CLOSED: 0}


def ratio(part: int | Decimal, whole: int | Decimal) -> float | None:
    """part / whole rounded to four places, None when there is nothing to divide by."""
    return round(float(part) / float(whole), 4) if whole else None


def money(total: Decimal | None, count: int = 1) -> Decimal | None:
    if not count:
        return None
    return (Decimal(total or 0) / count).quantize(CENT)


# --- Rollup querysets ------------------------------------------------------------------------


HOURLY = {kind: hourly for kind, (hourly, _) in ROLLUPS.items()}
DAILY = {kind: daily for kind, (_, daily) in ROLLUPS.items()}
PING_FIELDS = ("pings", "bids", "posted")
ROW_KEYS = ("id", "hour", "vertical_id", "source_id", "buyer_id", "tier", "reason")


def whole_days(q: ReportQuery) -> bool:
    return q.start.hour == 0 and q.end.hour == 0


def _rows(kind: str, q: ReportQuery, *, by_buyer: bool, daily: bool | None = None) -> QuerySet:
    """The rollup rows of the period: daily ones for whole days, else hourly ones."""
    daily = whole_days(q) if daily is None else daily
    field = "day" if daily else "hour"
    rows = (DAILY if daily else HOURLY)[kind].objects.filter(
        **{f"{field}__gte": q.start, f"{field}__lt": q.end}
    )
    if q.vertical_id:
        rows = rows.filter(vertical_id=q.vertical_id)
    if q.source_id:
        rows = rows.filter(source_id=q.source_id)
    if by_buyer and q.buyer_id:
        rows = rows.filter(buyer_id=q.buyer_id)
    return rows.order_by()


def _hours_in(ranges: Sequence[tuple[datetime, datetime]]) -> Q:
    condition = Q(pk__in=[])
    for start, end in ranges:
        condition |= Q(hour__gte=start, hour__lt=end)
    return condition


@dataclass(frozen=True)
class Tail:
    """What the rollups have not counted yet, as corrections to add to their sums.

    For each stale hour of a period: its rows recounted from the raw rows, plus its rolled-up
    rows negated (they are in the daily rows too, which are sums of the hourly ones). The stale
    hours are those changed since the last run, so the recount covers at most that time's
    changes: a few indexed queries per report, recounted once per kind and period.
    """

    hours: frozenset[datetime]
    _recounts: dict = field(default_factory=dict, compare=False, repr=False)

    def rows(self, kind: str, q: ReportQuery, *, by_buyer: bool) -> list[dict[str, Any]]:
        """The corrections (rollup-shaped dicts, signed) of the query's period and filters."""
        hours = tuple(sorted(h for h in self.hours if q.start <= h < q.end))
        if not hours:
            return []
        if (kind, hours) not in self._recounts:
            counted = [
                row
                for ranges in range_chunks(hours)
                for row in HOURLY[kind].objects.filter(_hours_in(ranges)).values()
            ]
            self._recounts[kind, hours] = [
                *rollup_recount(kind=kind, hours=hours),
                *(_negated(row) for row in counted),
            ]
        return [row for row in self._recounts[kind, hours] if _matches(row, q, by_buyer=by_buyer)]


def live_tail() -> Tail:
    return Tail(hours=frozenset(rollup_stale_hours()))


# A report reads the rolled-up rows and the recount's rows in separate statements: a rollup run
# that commits between them would have it sum the old rows and take out the new ones (or the
# reverse). Every run moves the watermark in the transaction that writes its rows, so a report
# that sees it move reads again. More than a few runs during one report is not expected.
READS_PER_REPORT = 3
R = TypeVar("R")


def _run_stamp() -> tuple[datetime | None, datetime | None] | None:
    return RollupState.objects.filter(pk=1).values_list("watermark", "last_run_at").first()


def _between_runs(report: Callable[[ReportQuery], R]) -> Callable[[ReportQuery], R]:
    """Have the report read again when a rollup run committed while it read."""

    @wraps(report)
    def read(q: ReportQuery) -> R:
        for _ in range(READS_PER_REPORT):
            stamp = _run_stamp()
            result = report(q)
            if _run_stamp() == stamp:
                break
        return result

    return read


def _negated(row: dict[str, Any]) -> dict[str, Any]:
    return {name: value if name in ROW_KEYS else -value for name, value in row.items()}


def _matches(row: dict[str, Any], q: ReportQuery, *, by_buyer: bool) -> bool:
    return (
        (not q.vertical_id or row["vertical_id"] == q.vertical_id)
        and (not q.source_id or row["source_id"] == q.source_id)
        and (not (by_buyer and q.buyer_id) or row["buyer_id"] == q.buyer_id)
    )


def _sums(
    kind: str, q: ReportQuery, tail: Tail, fields: Sequence[str], *, by_buyer: bool
) -> dict[str, Any]:
    totals = _rows(kind, q, by_buyer=by_buyer).aggregate(**{name: Sum(name) for name in fields})
    sums = {name: totals[name] or 0 for name in fields}
    for row in tail.rows(kind, q, by_buyer=by_buyer):
        for name in fields:
            sums[name] += row[name]
    return sums


def _merge(
    grouped: dict[Any, dict[str, Any]],
    corrections: Iterator[tuple[Any, dict[str, Any]]],
    fields: Sequence[str],
) -> dict[Any, dict[str, Any]]:
    """Add the corrections to the groups; a group they leave all zero is gone from the raw rows."""
    touched = set()
    for key, row in corrections:
        group = grouped.setdefault(key, dict.fromkeys(fields, 0))
        for name in fields:
            group[name] = (group[name] or 0) + row[name]
        touched.add(key)
    for key in touched:
        if not any(grouped[key][name] for name in fields):
            del grouped[key]
    return grouped


def _sums_by(
    kind: str, q: ReportQuery, tail: Tail, key: str, fields: Sequence[str], *, by_buyer: bool
) -> dict[Any, dict[str, Any]]:
    """Return the sums of `fields` per value of `key`, keyed by that value (absent sums: None)."""
    grouped = (
        _rows(kind, q, by_buyer=by_buyer)
        .values(key)
        .annotate(**{name: Sum(name) for name in fields})
    )
    corrections = ((row[key], row) for row in tail.rows(kind, q, by_buyer=by_buyer))
    return _merge({row[key]: row for row in grouped}, corrections, fields)


# --- Percentiles -------------------------------------------------------------------------------


def _pair(row: Sequence[Any] | None) -> tuple[float | None, float | None]:
    if not row or row[0] is None:
        return None, None
    return round(float(row[0]), 1), round(float(row[1]), 1)


def histogram_percentile(
    counts: Sequence[int], bounds: Sequence[int], fraction: float
) -> float | None:
    """Estimate a percentile from bucket counts: the right bucket, interpolated within it."""
    total = sum(counts)
    if not total:
        return None
    rank = fraction * (total - 1)
    seen = 0
    for index, count in enumerate(counts):
        if count and rank < seen + count:
            low = bounds[index - 1] if index else 0
            high = bounds[index] if index < len(bounds) else bounds[-1] * 2
            return low + (high - low) * (rank - seen + 0.5) / count
        seen += count
    return float(bounds[-1])


def _exact(q: ReportQuery) -> bool:
    # Up to two days the values are few enough to sort; longer periods read the histograms.
    return q.granularity == "hour"


def _estimates(counts: Sequence[int], bounds: Sequence[int]) -> tuple[float | None, ...]:
    return _pair(
        (histogram_percentile(counts, bounds, 0.5), histogram_percentile(counts, bounds, 0.95))
    )


def submit_to_sold_seconds(q: ReportQuery, tail: Tail) -> tuple[float | None, float | None]:
    """Return the p50 and p95, in seconds, of the time from a lead's receipt to each sale."""
    if not _exact(q):
        names = bucket_names("sale_s", SALE_SECONDS_BOUNDS)
        totals = _sums("sale", q, tail, names, by_buyer=True)
        return _estimates([totals[name] for name in names], SALE_SECONDS_BOUNDS)
    return _pair(store.sale_seconds_percentiles(q))


def ping_latency_by_buyer(
    q: ReportQuery, tail: Tail
) -> dict[int, tuple[float | None, float | None]]:
    """Return per buyer id the p50 and p95 latency (ms) of the pings for the period's leads."""
    if not _exact(q):
        names = bucket_names("ping_ms", PING_MS_BOUNDS)
        sums = _sums_by("attempt", q, tail, "buyer_id", names, by_buyer=True)
        return {
            buyer_id: _estimates([row[name] or 0 for name in names], PING_MS_BOUNDS)
            for buyer_id, row in sums.items()
        }
    return {
        buyer_id: _pair(pair)
        for buyer_id, pair in store.ping_latency_percentiles_by_buyer(q).items()
    }


# --- Headline figures --------------------------------------------------------------------------


def _figures(q: ReportQuery, tail: Tail) -> dict[str, Any]:
    leads = _sums("lead", q, tail, LEAD_FIELDS, by_buyer=False)
    sales = _sums("sale", q, tail, SALE_FIELDS, by_buyer=True)
    sold = sales["sales"] if q.buyer_id else leads["sold"]
    revenue, payout = Decimal(sales["revenue"]), Decimal(sales["payout"])
    kept = sales["sales"] - sales["returns"]
    p50, p95 = submit_to_sold_seconds(q, tail)
    return {
        "received": leads["received"],
        "accepted": leads["accepted"],
        "invalid": leads["invalid"],
        "duplicate": leads["duplicate"],
        "sold": sold,
        "unsold": leads["unsold"],
        "returned": sales["returns"],
        "sell_through": ratio(sold, leads["accepted"]),
        "revenue": revenue.quantize(CENT),
        "payout": payout.quantize(CENT),
        "margin": (revenue - payout).quantize(CENT),
        "average_sale_price": money(revenue, kept),
        "revenue_per_accepted_lead": money(revenue, leads["accepted"]),
        "submit_to_sold_p50_seconds": p50,
        "submit_to_sold_p95_seconds": p95,
    }


@_between_runs
def report_summary(q: ReportQuery) -> dict[str, Any]:
    """Return the headline figures of the period and of the one before it."""
    previous = q.previous
    tail = live_tail()
    return {
        "start": q.start,
        "end": q.end,
        "previous_start": previous.start,
        "previous_end": previous.end,
        "current": _figures(q, tail),
        "previous": _figures(previous, tail),
    }


# --- Time series -------------------------------------------------------------------------------


def _buckets(q: ReportQuery) -> Iterator[datetime]:
    step = timedelta(hours=1) if q.granularity == "hour" else timedelta(days=1)
    moment = q.start
    if q.granularity == "day":
        moment = moment.replace(hour=0)
    while moment < q.end:
        yield moment
        moment += step


def _bucket_of(hour: datetime, q: ReportQuery) -> datetime:
    return hour.replace(hour=0) if q.granularity == "day" else hour


def _by_bucket(
    kind: str, q: ReportQuery, tail: Tail, fields: Sequence[str], *, by_buyer: bool
) -> dict[datetime, dict]:
    daily = q.granularity == "day" and whole_days(q)
    rows = _rows(kind, q, by_buyer=by_buyer, daily=daily)
    if daily:
        bucket = F("day")
    else:
        bucket = TruncDay("hour", tzinfo=UTC) if q.granularity == "day" else F("hour")
    grouped = rows.annotate(t=bucket).values("t").annotate(**{f: Sum(f) for f in fields}).order_by()
    corrections = (
        (_bucket_of(row["hour"].astimezone(UTC), q), row)
        for row in tail.rows(kind, q, by_buyer=by_buyer)
    )
    return _merge({row["t"].astimezone(UTC): row for row in grouped}, corrections, fields)


@_between_runs
def report_timeseries(q: ReportQuery) -> dict[str, Any]:
    """Return received, sold and revenue per hour (periods up to two days) or per day."""
    tail = live_tail()
    leads = _by_bucket("lead", q, tail, ("received", "sold"), by_buyer=False)
    sales = _by_bucket("sale", q, tail, ("sales", "revenue"), by_buyer=True)
    points = []
    for moment in _buckets(q):
        lead_row, sale_row = leads.get(moment, {}), sales.get(moment, {})
        sold = sale_row.get("sales") or 0 if q.buyer_id else lead_row.get("sold") or 0
        points.append(
            {
                "t": moment,
                "received": lead_row.get("received") or 0,
                "sold": sold,
                "revenue": Decimal(sale_row.get("revenue") or 0).quantize(CENT),
            }
        )
    return {"start": q.start, "end": q.end, "granularity": q.granularity, "points": points}


# --- Buyers ------------------------------------------------------------------------------------


def _cap_usage(buyer_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    contracts = list(
        Contract.objects.filter(buyer_id__in=buyer_ids)
        .select_related("buyer")
        .prefetch_related("caps", "buyer__caps")
    )
    usage: dict[int, list[dict[str, Any]]] = defaultdict(list)
    seen: set[tuple] = set()
    current = cap_usage_for_contracts(contracts=contracts)  # one query for them all
    for contract in contracts:
        for cap in current.get(contract.pk, []):
            key = (cap.limit.scope, cap.limit.owner_id, cap.limit.period)
            if key in seen:
                continue
            seen.add(key)
            owner = contract.buyer.company if cap.limit.scope == "buyer" else contract.name
            usage[contract.buyer_id].append(
                {
                    "scope": owner,
                    "period": cap.limit.period,
                    "leads": cap.leads,
                    "max_leads": cap.limit.max_leads,
                    "spend": cap.spend,
                    "max_budget": cap.limit.max_budget,
                }
            )
    return usage


def _health(buyer_ids: Sequence[int]) -> dict[int, str]:
    worst: dict[int, str] = {}
    rows = ContractHealth.objects.filter(contract__buyer_id__in=buyer_ids).values_list(
        "contract__buyer_id", "status"
    )
    for buyer_id, status in rows:
        if HEALTH_ORDER.get(status, 0) >= HEALTH_ORDER.get(worst.get(buyer_id, ""), 0):
            worst[buyer_id] = status
    return worst


@_between_runs
def report_buyers(q: ReportQuery) -> list[dict[str, Any]]:
    """Return one row per buyer with attempts or sales in the period, by revenue."""
    tail = live_tail()
    attempts = _sums_by("attempt", q, tail, "buyer_id", ATTEMPT_FIELDS, by_buyer=True)
    sales = _sums_by("sale", q, tail, "buyer_id", SALE_FIELDS, by_buyer=True)
    counts = _merge(
        {
            (row["buyer_id"], row["reason"]): row
            for row in _rows("rejection", q, by_buyer=True)
            .values("buyer_id", "reason")
            .annotate(count=Sum("count"))
        },
        (
            ((row["buyer_id"], row["reason"]), row)
            for row in tail.rows("rejection", q, by_buyer=True)
        ),
        ("count",),
    )
    reasons: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for (buyer_id, reason), row in sorted(
        counts.items(), key=lambda item: (item[0][0], -item[1]["count"], item[0][1])
    ):
        if len(reasons[buyer_id]) < TOP_REASONS:
            reasons[buyer_id].append({"reason": reason, "count": row["count"]})
    ids = sorted(set(attempts) | set(sales))
    names = dict(Buyer.objects.filter(pk__in=ids).values_list("pk", "company"))
    latency = ping_latency_by_buyer(q, tail)
    caps = _cap_usage(ids)
    health = _health(ids)
    rows = []
    for buyer_id in ids:
        a = dict.fromkeys(ATTEMPT_FIELDS, 0) | attempts.get(buyer_id, {})
        s = dict.fromkeys(SALE_FIELDS, 0) | sales.get(buyer_id, {})
        revenue = Decimal(s["revenue"])
        kept = s["sales"] - s["returns"]
        p50, p95 = latency.get(buyer_id, (None, None))
        rows.append(
            {
                "buyer_id": buyer_id,
                "buyer": names.get(buyer_id, str(buyer_id)),
                "pings": a["pings"],
                "bids": a["bids"],
                "bid_rate": ratio(a["bids"], a["pings"]),
                "wins": s["sales"],
                "win_rate": ratio(s["sales"], a["bids"]),
                "posts_accepted": a["posts_accepted"],
                "posts_rejected": a["posts_rejected"],
                "posts_failed": a["posts_failed"],
                "rejection_rate": ratio(a["posts_rejected"], a["posts"]),
                "top_rejection_reasons": reasons.get(buyer_id, []),
                "returns": s["returns"],
                "revenue": revenue.quantize(CENT),
                "average_price": money(revenue, kept),
                "ping_latency_p50_ms": p50,
                "ping_latency_p95_ms": p95,
                "cap_usage": caps.get(buyer_id, []),
                "health": health.get(buyer_id, HealthStatus.CLOSED),
            }
        )
    rows.sort(key=lambda row: (-row["revenue"], row["buyer"]))
    return rows


# --- Sources -----------------------------------------------------------------------------------


@_between_runs
def report_sources(q: ReportQuery) -> list[dict[str, Any]]:
    """Return one row per source with leads in the period, by revenue."""
    tail = live_tail()
    leads = _sums_by(
        "lead",
        q,
        tail,
        "source_id",
        (*LEAD_FIELDS, "missing_sub_id", "missing_consent"),
        by_buyer=False,
    )
    sales = _sums_by("sale", q, tail, "source_id", SALE_FIELDS, by_buyer=True)
    pings = _sums_by("ping", q, tail, "source_id", PING_FIELDS, by_buyer=False)
    ids = sorted(set(leads) | set(sales) | set(pings))
    names = dict(Source.objects.filter(pk__in=ids).values_list("pk", "name"))
    rows = []
    for source_id in ids:
        lead = leads.get(source_id, {})
        sale = sales.get(source_id, {})
        ping = dict.fromkeys(PING_FIELDS, 0) | pings.get(source_id, {})
        accepted = lead.get("accepted") or 0
        sold = (sale.get("sales") or 0) if q.buyer_id else (lead.get("sold") or 0)
        revenue = Decimal(sale.get("revenue") or 0).quantize(CENT)
        payout = Decimal(sale.get("payout") or 0).quantize(CENT)
        rows.append(
            {
                "source_id": source_id,
                "source": names.get(source_id, str(source_id)),
                "submitted": lead.get("received") or 0,
                "invalid": lead.get("invalid") or 0,
                "duplicate": lead.get("duplicate") or 0,
                "accepted": accepted,
                "sold": sold,
                "sell_through": ratio(sold, accepted),
                "revenue": revenue,
                "payout": payout,
                "margin": revenue - payout,
                "returns": sale.get("returns") or 0,
                "missing_sub_id": lead.get("missing_sub_id") or 0,
                "missing_consent": lead.get("missing_consent") or 0,
                # Inbound pings (exchange/): how many, how many got a price, and of those how
                # many the seller posted.
                "pings": ping["pings"],
                "ping_bid_rate": ratio(ping["bids"], ping["pings"]),
                "ping_to_post": ratio(ping["posted"], ping["bids"]),
            }
        )
    rows.sort(key=lambda row: (-row["revenue"], row["source"]))
    return rows


# --- Score tiers -------------------------------------------------------------------------------

UNSCORED = "unscored"


@_between_runs
def report_tiers(q: ReportQuery) -> list[dict[str, Any]]:
    """Return one row per score tier, hottest first, then the unscored leads if there were any.

    Received, accepted and sold count every buyer's leads (sold: the buyer's sales under the buyer
    filter); revenue is of the sales not returned.
    """
    tail = live_tail()
    leads = _sums_by("lead", q, tail, "tier", ("received", "accepted", "sold"), by_buyer=False)
    sales = _sums_by("sale", q, tail, "tier", ("sales", "returns", "revenue"), by_buyer=True)
    tiers: list[str] = list(TIERS)
    if "" in leads or "" in sales:
        tiers.append("")
    rows = []
    for tier in tiers:
        lead, sale = leads.get(tier, {}), sales.get(tier, {})
        accepted = lead.get("accepted") or 0
        sold = (sale.get("sales") or 0) if q.buyer_id else (lead.get("sold") or 0)
        revenue = Decimal(sale.get("revenue") or 0).quantize(CENT)
        kept = (sale.get("sales") or 0) - (sale.get("returns") or 0)
        rows.append(
            {
                "tier": tier or UNSCORED,
                "label": Tier(tier).label if tier else "Not scored",
                "received": lead.get("received") or 0,
                "accepted": accepted,
                "sold": sold,
                "sell_through": ratio(sold, accepted),
                "revenue": revenue,
                "average_sale_price": money(revenue, kept),
                "revenue_per_accepted_lead": money(revenue, accepted),
            }
        )
    return rows


# --- Lead-level export ---------------------------------------------------------------------------

LEAD_EXPORT_FIELDS = (
    "id",
    "received_at",
    "vertical__slug",
    "source__name",
    "sub_id",
    "status",
    "email",
    "phone",
    "state",
    "zip_code",
    "score",
    "tier",
    "sold_at",
    "sale_price",
    "payout",
)


def leads_for_export(q: ReportQuery) -> Iterator[tuple]:
    """Yield the period's leads (not test ones), oldest first, as LEAD_EXPORT_FIELDS tuples."""
    leads = Lead.objects.filter(received_at__gte=q.start, received_at__lt=q.end, is_test=False)
    if q.vertical_id:
        leads = leads.filter(vertical_id=q.vertical_id)
    if q.source_id:
        leads = leads.filter(source_id=q.source_id)
    if q.buyer_id:
        leads = leads.filter(Q(sales__buyer_id=q.buyer_id))
    # Bound now to the database this is called under (the replica, in a report): the rows are
    # read later, as a CSV streams, after the caller's `reading_from_replica` has ended.
    leads = leads.using(leads.db)
    return leads.order_by("received_at").values_list(*LEAD_EXPORT_FIELDS).iterator(chunk_size=2000)


def rollup_freshness() -> datetime | None:
    """When the rollups last looked for changes."""
    state = RollupState.objects.filter(pk=1).first()
    return state.watermark if state else None
