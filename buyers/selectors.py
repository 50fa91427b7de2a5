"""Reads for buyers and contracts: what each cap has used in its current period."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import reduce
from operator import or_
from zoneinfo import ZoneInfo

from django.db.models import Q
from django.utils import timezone

from buyers.caps import CapLimitSpec, CapUsage, period_bounds
from buyers.models import (
    Buyer,
    BuyerCap,
    CapCounter,
    CapPeriod,
    CapReservation,
    Contract,
    ContractCap,
    ReservationStatus,
)
from buyers.schedule import Schedule
from leads.models import Lead, Vertical
from leads.scoring import SCORE_FIELD, TIER_FIELD
from leads.selectors import same_consumer
from routing.models import Sale, SaleStatus

CONTRACT_SCOPE = "contract"
BUYER_SCOPE = "buyer"

PERIOD_ORDER = {period: position for position, period in enumerate(CapPeriod.values)}

# (scope, owner id, period, period start): the identity of one counter row.
CounterKey = tuple[str, int, str, datetime]


def cap_limit_spec(cap: ContractCap | BuyerCap) -> CapLimitSpec:
    """Return the plain-data view of a contract or buyer cap."""
    if isinstance(cap, ContractCap):
        scope, owner_id = CONTRACT_SCOPE, cap.contract_id
    else:
        scope, owner_id = BUYER_SCOPE, cap.buyer_id
    return CapLimitSpec(
        scope=scope,
        owner_id=owner_id,
        period=cap.period,
        max_leads=cap.max_leads,
        max_budget=cap.max_budget,
    )


def cap_counter_key(spec: CapLimitSpec, period_start: datetime) -> CounterKey:
    return (spec.scope, spec.owner_id, spec.period, period_start)


def cap_counter_key_of(counter: CapCounter) -> CounterKey:
    if counter.contract_id is not None:
        return (CONTRACT_SCOPE, counter.contract_id, counter.period, counter.period_start)
    return (BUYER_SCOPE, counter.buyer_id, counter.period, counter.period_start)


def cap_counters_filter(keys: Iterable[CounterKey]) -> Q:
    """Return a filter matching exactly the counters of these keys.

    Counters of every past period stay in the table (an hourly cap leaves 8,760 a year), so the
    filter names each period start rather than a date range: every term is an equality on a
    unique index, and the query costs the same in the tenth year as in the first.
    """
    owners: dict[tuple[str, str, datetime], set[int]] = defaultdict(set)
    for scope, owner_id, period, period_start in keys:
        owners[(scope, period, period_start)].add(owner_id)
    terms = [
        Q(
            **{f"{scope}_id__in": sorted(ids)},
            period=period,
            period_start=period_start,
        )
        for (scope, period, period_start), ids in owners.items()
    ]
    # An empty OR must match nothing, not everything.
    return reduce(or_, terms) if terms else Q(pk__in=[])


def _usage(
    spec: CapLimitSpec, bounds: tuple[datetime, datetime], counter: CapCounter | None
) -> CapUsage:
    return CapUsage(
        limit=spec,
        period_start=bounds[0],
        period_end=bounds[1],
        leads=counter.leads if counter is not None else 0,
        spend=counter.spend if counter is not None else Decimal("0.00"),
    )


class _Periods:
    """Period bounds per time zone and period, computed once per call."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._bounds: dict[tuple[str, str], tuple[datetime, datetime]] = {}

    def bounds(self, period: str, time_zone: str) -> tuple[datetime, datetime]:
        key = (time_zone, period)
        if key not in self._bounds:
            self._bounds[key] = period_bounds(period, self.now, ZoneInfo(time_zone))
        return self._bounds[key]


def _sorted_caps(caps: Iterable[ContractCap | BuyerCap]) -> list[ContractCap | BuyerCap]:
    return sorted(caps, key=lambda cap: PERIOD_ORDER.get(cap.period, len(PERIOD_ORDER)))


def cap_usage(
    *,
    contract: Contract | None = None,
    buyer: Buyer | None = None,
    now: datetime | None = None,
) -> list[CapUsage]:
    """Return the current-period usage of the contract's caps and/or the buyer's caps.

    A cap with no counter yet for the period has used nothing. Contract caps come first, each
    group from the shortest period to all time.
    """
    if contract is None and buyer is None:
        raise ValueError("say whose caps: a contract, a buyer or both")
    periods = _Periods(now or timezone.now())
    wanted: list[tuple[CapLimitSpec, tuple[datetime, datetime]]] = []
    if contract is not None:
        time_zone = contract.buyer.time_zone
        for cap in _sorted_caps(contract.caps.all()):
            wanted.append((cap_limit_spec(cap), periods.bounds(cap.period, time_zone)))
    if buyer is not None:
        for cap in _sorted_caps(buyer.caps.all()):
            wanted.append((cap_limit_spec(cap), periods.bounds(cap.period, buyer.time_zone)))
    keys = [cap_counter_key(spec, bounds[0]) for spec, bounds in wanted]
    counters: dict[CounterKey, CapCounter] = {}
    if keys:
        counters = {
            cap_counter_key_of(counter): counter
            for counter in CapCounter.objects.filter(cap_counters_filter(keys))
        }
    return [
        _usage(spec, bounds, counters.get(key))
        for (spec, bounds), key in zip(wanted, keys, strict=True)
    ]


# A contract's caps as the engine needs them: each with the time zone it is counted in.
CapPlan = list[tuple[CapLimitSpec, str]]


def contract_cap_plan(contract: Contract) -> CapPlan:
    """Return the contract's own caps, then its buyer's, each with the buyer's time zone.

    Expects `select_related("buyer")` and `prefetch_related("caps", "buyer__caps")`.
    """
    caps = [*_sorted_caps(contract.caps.all()), *_sorted_caps(contract.buyer.caps.all())]
    return [(cap_limit_spec(cap), contract.buyer.time_zone) for cap in caps]


def cap_usage_for_plans(
    *, plans: Mapping[int, CapPlan], now: datetime | None = None
) -> dict[int, list[CapUsage]]:
    """Return, per contract id, the current usage of each cap of its plan, in one query.

    The eligibility engine calls this for every lead, so the query stays small: the owners'
    counters at the current period starts, matched to exact keys here.
    """
    periods = _Periods(now or timezone.now())
    wanted: dict[int, list[tuple[CapLimitSpec, tuple[datetime, datetime]]]] = {}
    keys: set[CounterKey] = set()
    for contract_id, plan in plans.items():
        specs = []
        for spec, time_zone in plan:
            bounds = periods.bounds(spec.period, time_zone)
            specs.append((spec, bounds))
            keys.add(cap_counter_key(spec, bounds[0]))
        wanted[contract_id] = specs
    found: dict[CounterKey, tuple[int, Decimal]] = {}
    if keys:
        buyer_ids = {owner for scope, owner, _, _ in keys if scope == BUYER_SCOPE}
        contract_ids = {owner for scope, owner, _, _ in keys if scope != BUYER_SCOPE}
        rows = (
            CapCounter.objects.filter(
                Q(contract_id__in=contract_ids) | Q(buyer_id__in=buyer_ids),
                period_start__in={start for _, _, _, start in keys},
            )
            .order_by()
            .values_list("contract_id", "buyer_id", "period", "period_start", "leads", "spend")
        )
        for contract_id, buyer_id, period, start, leads, spend in rows:
            key = (
                (CONTRACT_SCOPE, contract_id, period, start)
                if contract_id is not None
                else (BUYER_SCOPE, buyer_id, period, start)
            )
            found[key] = (leads, spend)
    return {
        contract_id: [
            CapUsage(
                spec,
                bounds[0],
                bounds[1],
                *found.get(cap_counter_key(spec, bounds[0]), (0, Decimal("0.00"))),
            )
            for spec, bounds in specs
        ]
        for contract_id, specs in wanted.items()
    }


def cap_usage_for_contracts(
    *, contracts: Iterable[Contract], now: datetime | None = None
) -> dict[int, list[CapUsage]]:
    """Return, per contract id, the usage of its own caps and then of its buyer's caps.

    One query whatever the number of contracts, provided they were fetched with
    `select_related("buyer")` and `prefetch_related("caps", "buyer__caps")`.
    """
    return cap_usage_for_plans(
        plans={contract.pk: contract_cap_plan(contract) for contract in contracts}, now=now
    )


def consumer_purchases(*, lead: Lead, since: datetime) -> list[tuple[int, int, datetime]]:
    """Return (contract id, buyer id, when) of purchases of the lead's consumer since `since`.

    The consumer is the lead's email or phone (an inbound ping's: their hashes); a purchase is
    a sale that stands (not returned) or a reservation still held while its post is in flight.
    The lead itself is left out.
    """
    consumer = same_consumer(lead)
    if consumer is None:
        return []
    # The consumer's other leads first (two indexed lookups), then their sales: an OR across
    # the join would make PostgreSQL scan the sales.
    leads = Lead.objects.filter(consumer).exclude(pk=lead.pk).values("pk")
    sold = (
        Sale.objects.filter(lead_id__in=leads, status=SaleStatus.SOLD, sold_at__gte=since)
        .order_by()
        .values_list("contract_id", "buyer_id", "sold_at")
    )
    in_flight = (
        CapReservation.objects.filter(
            lead_id__in=leads, status=ReservationStatus.HELD, created_at__gte=since
        )
        .order_by()
        .values_list("contract_id", "contract__buyer_id", "created_at")
    )
    return [*sold, *in_flight]


def contract_schedule(contract: Contract) -> Schedule:
    """Return the contract's weekly hours and closed dates in its buyer's time zone."""
    windows = [(w.weekday, w.opens_at, w.closes_at) for w in contract.schedule.all()]
    closed = [(c.date, c.note) for c in contract.closed_dates.all()]
    return Schedule.build(contract.buyer.time_zone, windows, closed)


def mapped_fields(source_fields: Iterable[str]) -> set[str]:
    """Return the lead fields these mappings' source fields read (first_name+last_name: two).

    A dotted source (lead.id, consent.ip) reads the lead's context, every vertical's: left out.
    """
    return {
        part.strip()
        for source_field in source_fields
        for part in source_field.split("+")
        if part.strip() and "." not in part
    }


def fields_unknown_to(vertical: Vertical, names: Iterable[str]) -> list[str]:
    """Return the names, sorted, that the vertical's schema lacks; the lead's score and tier are
    every vertical's."""
    known = set(vertical.fields.values_list("name", flat=True))
    return sorted(set(names) - known - {SCORE_FIELD, TIER_FIELD})


# Every row a contract owns, by the name of its reverse relation: what a clone copies
# (buyers.services) and whose changes the contract's history page lists beside its own.
CONTRACT_PARTS = (
    "caps",
    "schedule",
    "closed_dates",
    "territory",
    "criteria",
    "secrets",
    "endpoints",
    "mappings",
    "response_rules",
)
_ACTIONS = {"+": "Created", "~": "Changed", "-": "Deleted"}


@dataclass(frozen=True)
class PartChange:
    """One recorded change to a part of a contract, with what changed (old -> new)."""

    kind: str
    label: str
    at: datetime
    action: str
    user: object
    fields: list[tuple[str, object, object]]


def contract_part_changes(*, contract_id: int, limit: int = 200) -> list[PartChange]:
    """Return the latest changes to a contract's parts, newest first: one query per kind of part.

    What changed is worked out between consecutive records of each part in memory, so the page
    costs the same few queries however long the history.
    """
    changes: list[PartChange] = []
    for relation in CONTRACT_PARTS:
        model = Contract._meta.get_field(relation).related_model
        records = list(
            model.history.filter(contract_id=contract_id)
            .select_related("history_user")
            .order_by("id", "history_date", "history_id")
        )
        previous: dict[int, object] = {}
        for record in records:
            before = previous.get(record.id)
            fields = []
            if before is not None and record.history_type == "~":
                delta = record.diff_against(before)
                fields = [
                    (model._meta.get_field(c.field).verbose_name, c.old, c.new)
                    for c in delta.changes
                ]
            previous[record.id] = record
            changes.append(
                PartChange(
                    kind=str(model._meta.verbose_name).capitalize(),
                    label=str(record.instance),
                    at=record.history_date,
                    action=_ACTIONS.get(record.history_type, record.history_type),
                    user=record.history_user,
                    fields=fields,
                )
            )
    changes.sort(key=lambda change: change.at, reverse=True)
    return changes[:limit]
