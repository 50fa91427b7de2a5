"""Reads for routing: compiled contract rules, lead facts, and eligibility explanations."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from django.conf import settings
from django.db.models import Count, Max
from django.utils import timezone

from buyers.models import (
    Contract,
    ContractStatus,
    PriceModel,
    SourceFilter,
    TerritoryKind,
    TerritoryMode,
)
from buyers.selectors import (
    CapPlan,
    cap_usage_for_plans,
    consumer_purchases,
    contract_cap_plan,
    contract_schedule,
)
from leads.geo import zip_lookup
from leads.models import Lead, Vertical, VerticalField
from leads.scoring import SCORE_FIELD, TIER_FIELD
from routing.eligibility import (
    ContractRules,
    LeadFacts,
    PastSale,
    RadiusArea,
    Verdict,
    apply_caps,
    compile_criterion,
    evaluate_all,
)

logger = logging.getLogger(__name__)

MIN_PRICE_HINT = Decimal("0.01")


def compile_contract(contract: Contract) -> ContractRules:
    """Compile a contract (with its parts prefetched) into plain rules for the engine."""
    if contract.status == ContractStatus.PAUSED:
        inactive = f"contract paused: {contract.paused_reason or 'no reason given'}"
    elif not contract.buyer.active:
        inactive = "buyer inactive"
    else:
        inactive = ""

    states_in: set[str] = set()
    states_out: set[str] = set()
    zips_in: set[str] = set()
    zips_out: set[str] = set()
    radius_in: list[RadiusArea] = []
    radius_out: list[RadiusArea] = []
    for rule in contract.territory.all():
        include = rule.mode == TerritoryMode.INCLUDE
        values = rule.value_list
        if rule.kind == TerritoryKind.STATES:
            (states_in if include else states_out).update(values)
        elif rule.kind == TerritoryKind.ZIPS:
            (zips_in if include else zips_out).update(values)
        else:
            areas = radius_in if include else radius_out
            for zip_code in values:
                info = zip_lookup(zip_code)
                if info is None:
                    # Model validation refuses unknown centres; an old row must not crash routing.
                    logger.warning(
                        "radius centre %s of contract %s is not a known ZIP", zip_code, contract.pk
                    )
                    continue
                areas.append(RadiusArea(zip_code, info.lat, info.lon, rule.radius_miles or 0))

    schedule = contract_schedule(contract)

    if contract.price_model == PriceModel.FIXED and contract.fixed_price is not None:
        price_hint = contract.fixed_price
    else:
        price_hint = contract.floor_price
    return ContractRules(
        contract_id=contract.pk,
        name=contract.name,
        buyer_id=contract.buyer_id,
        buyer_name=contract.buyer.company,
        inactive_reason=inactive,
        accepts_test_leads=contract.accepts_test_leads,
        source_filter=contract.source_filter,
        source_ids=frozenset(s.pk for s in contract.sources.all())
        if contract.source_filter != SourceFilter.ALL
        else frozenset(),
        # An always-open schedule without closed dates need not be checked at all.
        schedule=None if schedule.always_open and not schedule.closed_dates else schedule,
        min_age=timedelta(minutes=contract.min_lead_age_minutes)
        if contract.min_lead_age_minutes is not None
        else None,
        max_age=timedelta(minutes=contract.max_lead_age_minutes)
        if contract.max_lead_age_minutes is not None
        else None,
        states_in=frozenset(states_in),
        states_out=frozenset(states_out),
        zips_in=frozenset(zips_in),
        zips_out=frozenset(zips_out),
        radius_in=tuple(radius_in),
        radius_out=tuple(radius_out),
        criteria=tuple(
            compile_criterion(c.field, c.operator, c.value) for c in contract.criteria.all()
        ),
        consent_names=tuple(n.casefold() for n in contract.buyer.names_for_consent)
        if contract.consent_must_name_buyer
        else (),
        requires_certificate=contract.requires_consent_certificate,
        bought_within=timedelta(days=contract.refuse_bought_within_days)
        if contract.refuse_bought_within_days
        else None,
        bought_scope=contract.refuse_bought_scope,
        price_hint=max(price_hint, MIN_PRICE_HINT),
    )


@dataclass(frozen=True)
class VerticalRules:
    rules: list[ContractRules]
    cap_plans: dict[int, CapPlan]


_T = TypeVar("_T")

# A vertical's entry of a per-process cache: until when it may be used, and the version it was
# loaded at.
_Cache = dict[int, tuple[float, tuple[Any, ...], _T]]

_cache: _Cache[VerticalRules] = {}
_cache_lock = threading.Lock()


# A process trusts the version it last read for ELIGIBILITY_VERSION_RECHECK_MS before asking
# again: a routing run asks twice (rules, then delivery set-up) and a busy worker routes dozens of
# leads a second, each of which would otherwise run the aggregate twice.
_versions: dict[int, tuple[float, tuple[Any, ...]]] = {}


def rules_version(vertical_id: int) -> tuple[Any, ...]:
    """Return what changes whenever a contract of the vertical or its buyer is saved.

    Every admin save of a contract, a buyer or one of their parts touches the contract's or the
    buyer's updated_at (see buyers.admin), and so do the pause and activation services.
    Read at most once per ELIGIBILITY_VERSION_RECHECK_MS per vertical and process.
    """
    now = time.monotonic()
    recheck_s = settings.ELIGIBILITY_VERSION_RECHECK_MS / 1000
    with _cache_lock:
        known = _versions.get(vertical_id)
    if known is not None and known[0] > now and recheck_s > 0:
        return known[1]
    aggregate = Contract.objects.filter(vertical_id=vertical_id).aggregate(
        contracts=Count("pk"), changed=Max("updated_at"), buyers_changed=Max("buyer__updated_at")
    )
    version = (aggregate["contracts"], aggregate["changed"], aggregate["buyers_changed"])
    with _cache_lock:
        _versions[vertical_id] = (now + recheck_s, version)
    return version


# One lock per cache and vertical: of the threads that find an entry missing or stale together
# (a web worker's first requests, each entry's expiry under load), one loads it and the others
# wait for its result instead of each loading it again, all on the one GIL.
_load_locks: dict[tuple[str, int], threading.Lock] = {}


def _loading(cache_name: str, vertical_id: int) -> threading.Lock:
    with _cache_lock:
        return _load_locks.setdefault((cache_name, vertical_id), threading.Lock())


def _cached_load(
    cache: _Cache[_T],
    cache_name: str,
    vertical_id: int,
    *,
    version: tuple[Any, ...],
    ttl: float,
    load: Callable[[], _T],
) -> _T:
    """Return the vertical's entry of the cache while it is younger than ttl seconds and was
    loaded at this version; else load it, once for all the threads that ask meanwhile."""

    def cached() -> _T | None:
        with _cache_lock:
            entry = cache.get(vertical_id)
        if entry is not None and entry[0] > time.monotonic() and entry[1] == version:
            return entry[2]
        return None

    if (value := cached()) is not None:
        return value
    with _loading(cache_name, vertical_id):
        if (value := cached()) is not None:  # loaded by the thread this one waited for
            return value
        value = load()
        with _cache_lock:
            cache[vertical_id] = (time.monotonic() + ttl, version, value)
        return value


def vertical_rules(vertical_id: int) -> VerticalRules:
    """Return every contract of a vertical, compiled.

    Compiling a vertical of 1,000 contracts takes a second or more (10,000-ZIP sets), so each
    process keeps the result while the vertical's version (one small query) is unchanged, for at
    most ELIGIBILITY_RULES_TTL seconds: the limit catches changes made outside the admin.
    """
    ttl = settings.ELIGIBILITY_RULES_TTL
    if ttl <= 0:
        return _compiled_rules(vertical_id)
    return _cached_load(
        _cache,
        "rules",
        vertical_id,
        version=rules_version(vertical_id),
        ttl=ttl,
        load=lambda: _compiled_rules(vertical_id),
    )


def _compiled_rules(vertical_id: int) -> VerticalRules:
    contracts = list(
        Contract.objects.filter(vertical_id=vertical_id)
        .select_related("buyer")
        .prefetch_related(
            "caps",
            "buyer__caps",
            "schedule",
            "closed_dates",
            "territory",
            "criteria",
            "sources",
        )
        .order_by("priority", "pk")
    )
    return VerticalRules(
        rules=[compile_contract(c) for c in contracts],
        cap_plans={c.pk: contract_cap_plan(c) for c in contracts},
    )


def clear_rules_cache() -> None:
    with _cache_lock:
        _cache.clear()
        _delivery_cache.clear()
        _versions.clear()


def lead_facts(lead: Lead, *, pending: frozenset[str] | None = None) -> LeadFacts:
    """Reduce a lead to what the rules look at, enriched from its ZIP code.

    `pending`, for an inbound ping, names the fields not sent yet: their criteria and the
    consent rule wait for the post.
    """
    fields = dict(lead.data or {})
    zip_code = lead.zip_code or str(fields.get("zip_code") or "")
    info = zip_lookup(zip_code) if zip_code else None
    state = lead.state or str(fields.get("state") or "") or (info.state if info else "")
    if info is not None:
        # Enrichment the criteria may name; the lead's own values win.
        fields.setdefault("city", info.city)
        fields.setdefault("county", info.county)
        fields.setdefault("time_zone", info.time_zone)
    fields.setdefault("state", state)
    fields.setdefault("zip_code", zip_code)
    # Criteria may name the lead's score and tier like fields ("tier in hot, warm").
    if lead.score is not None:
        fields.setdefault(SCORE_FIELD, lead.score)
    if lead.tier:
        fields.setdefault(TIER_FIELD, lead.tier)
    return LeadFacts(
        source_id=lead.source_id,
        source_name=lead.source.name,
        received_at=lead.received_at,
        fields=fields,
        is_test=lead.is_test,
        state=state.upper(),
        zip_code=zip_code,
        lat=info.lat if info else None,
        lon=info.lon if info else None,
        consent=lead.consent or {},
        pending_fields=pending or frozenset(),
        consent_pending=pending is not None,
    )


def past_sales_of_consumer(
    lead: Lead, rules: list[ContractRules], *, now: datetime
) -> list[PastSale]:
    """Earlier purchases of the lead's consumer that an already-bought rule could care about.

    The consumer is the lead's email or phone, or an inbound ping's hashes of them
    (leads.selectors.same_consumer): a ping is checked as its post will be."""
    windows = [r.bought_within for r in rules if r.bought_within is not None]
    if not windows:
        return []
    return [
        PastSale(contract_id, buyer_id, at)
        for contract_id, buyer_id, at in consumer_purchases(lead=lead, since=now - max(windows))
    ]


def explain(
    lead: Lead, *, now: datetime | None = None, pending: frozenset[str] | None = None
) -> list[Verdict]:
    """Return, for every contract of the lead's vertical, eligible or the rule that excluded it.

    `pending` (an inbound ping) names the fields the seller has not sent yet (lead_facts).

    A fixed number of queries whatever the number of contracts: the vertical's version (and its
    compiled rules when they changed), the consumer's earlier purchases, and the current cap
    counters. Caps are the last rule, so their usage is read only for the contracts that passed
    every other one.
    """
    now = now or timezone.now()
    loaded = vertical_rules(lead.vertical_id)
    verdicts = evaluate_all(
        loaded.rules,
        lead_facts(lead, pending=pending),
        now=now,
        past_sales=past_sales_of_consumer(lead, loaded.rules, now=now),
    )
    capped = {
        verdict.contract_id: loaded.cap_plans[verdict.contract_id]
        for verdict in verdicts
        if verdict.eligible and loaded.cap_plans.get(verdict.contract_id)
    }
    if not capped:
        return verdicts
    usage = cap_usage_for_plans(plans=capped, now=now)
    return [
        apply_caps(rules, verdict, usage[verdict.contract_id])
        if verdict.contract_id in usage
        else verdict
        for rules, verdict in zip(loaded.rules, verdicts, strict=True)
    ]


def eligible_contracts(lead: Lead, *, now: datetime | None = None) -> list[Verdict]:
    """Return the verdicts of the contracts that may receive the lead."""
    return [verdict for verdict in explain(lead, now=now) if verdict.eligible]


# Delivery set-up of a vertical's contracts (endpoints with their decrypted credentials,
# mappings, response rules) and its ping fields, kept per process like the compiled rules: they
# change when ops edit a contract, not per lead, and loading them (queries, decryption) would
# otherwise be a large part of every routing run's CPU.
_delivery_cache: _Cache[tuple[dict[int, Contract], frozenset[str]]] = {}


def _load_delivery(vertical_id: int, ids: Iterable[int] | None) -> dict[int, Contract]:
    contracts = Contract.objects.filter(vertical_id=vertical_id)
    if ids is not None:
        contracts = contracts.filter(pk__in=list(ids))
    return {
        c.pk: c
        for c in contracts.select_related("buyer").prefetch_related(
            "endpoints", "mappings", "response_rules", "secrets"
        )
    }


def vertical_ping_fields(vertical_id: int) -> frozenset[str]:
    """Return the names of the vertical's fields that its pings carry."""
    return frozenset(
        VerticalField.objects.filter(vertical_id=vertical_id, in_ping=True).values_list(
            "name", flat=True
        )
    )


def delivery_setup(
    vertical: Vertical, contract_ids: Iterable[int]
) -> tuple[dict[int, Contract], frozenset[str]]:
    """Return the contracts (with endpoints, mappings and response rules) and ping fields.

    Kept per process while the vertical's contracts and fields are unchanged, for at most
    ELIGIBILITY_RULES_TTL seconds; with a TTL of 0 everything is read afresh.
    """
    ids = list(contract_ids)
    ttl = settings.ELIGIBILITY_RULES_TTL
    if ttl <= 0:
        return _load_delivery(vertical.pk, ids), vertical_ping_fields(vertical.pk)
    contracts, ping_fields = _cached_load(
        _delivery_cache,
        "delivery",
        vertical.pk,
        version=(*rules_version(vertical.pk), vertical.updated_at),
        ttl=ttl,
        load=lambda: (_load_delivery(vertical.pk, None), vertical_ping_fields(vertical.pk)),
    )
    return {i: contracts[i] for i in ids if i in contracts}, ping_fields


@dataclass(frozen=True)
class StatusStep:
    """One step of a lead's status history: when, which status, and what happened."""

    at: datetime
    status: str
    detail: str


def lead_status_history(lead: Lead) -> list[StatusStep]:
    """Return the lead's status changes, oldest first, from the rows that record them.

    Leads keep no history table: intake's verdict, each routing run's start and end, each sale
    and return, and the admin's log of hand re-routes say when the status changed, and why.
    """
    from django.contrib.admin.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    from leads.models import LeadStatus
    from routing.models import Auction, Sale

    rejected = {LeadStatus.INVALID, LeadStatus.DUPLICATE, LeadStatus.SUPPRESSED}
    intake = lead.status if lead.status in rejected else LeadStatus.ACCEPTED
    steps = [
        StatusStep(
            lead.received_at,
            intake,
            lead.reason if intake in rejected else "received and validated",
        )
    ]
    for auction in Auction.objects.filter(lead=lead).order_by("started_at", "id"):
        steps.append(StatusStep(auction.started_at, LeadStatus.ROUTING, f"run {auction.pk}"))
        if auction.finished_at is not None:
            steps.append(
                StatusStep(auction.finished_at, auction.status, auction.note or "run ended")
            )
    for sale in Sale.objects.filter(lead=lead).select_related("buyer").order_by("sold_at"):
        steps.append(StatusStep(sale.sold_at, "sale", f"bought by {sale.buyer} at ${sale.price}"))
        if sale.returned_at is not None:
            steps.append(
                StatusStep(
                    sale.returned_at,
                    LeadStatus.RETURNED,
                    f"returned by {sale.buyer}: {sale.return_reason or 'no reason given'}",
                )
            )
    entries = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Lead), object_id=str(lead.pk)
    ).select_related("user")
    for entry in entries:
        steps.append(
            StatusStep(entry.action_time, "ops", f"{entry.get_change_message()} ({entry.user})")
        )
    return sorted(steps, key=lambda step: step.at)
