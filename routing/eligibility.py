"""Which contracts may receive a lead, and why each other one may not (pure, no database).

Contract rules are compiled once into plain frozen data (`ContractRules`); a lead is reduced to
`LeadFacts`; `evaluate` checks one against the other, rule by rule, and returns the first rule that
excludes the contract in plain words. Loading from the database lives in routing.selectors.

Order of the rules: cheap and static first, usage last — status, test leads, source lists,
schedule, lead age, territory, field criteria, consent, already bought, caps.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from buyers.caps import CapUsage
from buyers.models import NUMERIC_OPERATORS, BoughtScope, CriterionOperator, SourceFilter
from buyers.schedule import Schedule, describe_closed, is_open
from leads.geo import distance_miles
from leads.scoring import SCORE_FIELD, TIER_FIELD, as_number

MISSING_WORDS = "is missing"


@dataclass(frozen=True, slots=True)
class Criterion:
    field: str
    operator: str
    values: tuple[str, ...] = ()
    numbers: tuple[Decimal, ...] = ()
    pattern: re.Pattern[str] | None = None
    text: str = ""  # how the rule reads, for explanations


@dataclass(frozen=True, slots=True)
class RadiusArea:
    zip_code: str
    lat: float
    lon: float
    miles: int


@dataclass(frozen=True)
class ContractRules:
    """Everything the engine needs to know of one contract, compiled for fast evaluation."""

    contract_id: int
    name: str
    buyer_id: int
    buyer_name: str
    inactive_reason: str = ""
    accepts_test_leads: bool = False
    source_filter: str = SourceFilter.ALL
    source_ids: frozenset[int] = frozenset()
    schedule: Schedule | None = None
    min_age: timedelta | None = None
    max_age: timedelta | None = None
    states_in: frozenset[str] = frozenset()
    states_out: frozenset[str] = frozenset()
    zips_in: frozenset[str] = frozenset()
    zips_out: frozenset[str] = frozenset()
    radius_in: tuple[RadiusArea, ...] = ()
    radius_out: tuple[RadiusArea, ...] = ()
    criteria: tuple[Criterion, ...] = ()
    consent_names: tuple[str, ...] = ()  # casefolded; empty when consent need not name the buyer
    requires_certificate: bool = False
    bought_within: timedelta | None = None
    bought_scope: str = BoughtScope.BUYER
    # The least this contract pays per lead: what a budget cap must still have room for.
    price_hint: Decimal = Decimal("0.01")

    @property
    def has_territory(self) -> bool:
        return bool(self.states_in or self.zips_in or self.radius_in)


@dataclass(frozen=True)
class LeadFacts:
    """What the rules look at in a lead: its fields plus enrichment, and where it came from."""

    source_id: int
    source_name: str
    received_at: datetime
    fields: Mapping[str, Any] = field(default_factory=dict)
    is_test: bool = False
    state: str = ""
    zip_code: str = ""
    lat: float | None = None
    lon: float | None = None
    consent: Mapping[str, Any] = field(default_factory=dict)
    # An inbound ping (exchange/): the fields and consent the seller has not sent yet. Their
    # rules are left to the post, where the full lead is checked again.
    pending_fields: frozenset[str] = frozenset()
    consent_pending: bool = False


@dataclass(frozen=True)
class PastSale:
    """An earlier sale of the same consumer (by email or phone), for the already-bought rule."""

    contract_id: int
    buyer_id: int
    sold_at: datetime


@dataclass(frozen=True, slots=True)
class Verdict:
    contract_id: int
    contract_name: str
    buyer_name: str
    eligible: bool
    rule: str = ""
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "contract_id": self.contract_id,
            "contract": self.contract_name,
            "buyer": self.buyer_name,
            "eligible": self.eligible,
            "rule": self.rule,
            "reason": self.reason,
        }


# --- Compiling criteria ---


def compile_criterion(field_name: str, operator: str, value: str) -> Criterion:
    """Turn a FieldCriterion's text into what evaluation needs (validated by the model)."""
    values = tuple(v.strip() for v in value.split(",") if v.strip())
    numbers: tuple[Decimal, ...] = ()
    pattern = None
    if operator in NUMERIC_OPERATORS:
        numbers = tuple(Decimal(v) for v in values)
    elif operator == CriterionOperator.REGEX:
        pattern = re.compile(value)
    texts: dict[str, str] = {
        CriterionOperator.EQ: f"{field_name} = {value}",
        CriterionOperator.NE: f"{field_name} ≠ {value}",
        CriterionOperator.IN: f"{field_name} in {', '.join(values)}",
        CriterionOperator.NOT_IN: f"{field_name} not in {', '.join(values)}",
        CriterionOperator.GT: f"{field_name} > {value}",
        CriterionOperator.GTE: f"{field_name} ≥ {value}",
        CriterionOperator.LT: f"{field_name} < {value}",
        CriterionOperator.LTE: f"{field_name} ≤ {value}",
        CriterionOperator.BETWEEN: f"{field_name} between {' and '.join(values)}",
        CriterionOperator.EXISTS: f"{field_name} present",
        CriterionOperator.MISSING: f"{field_name} missing",
        CriterionOperator.REGEX: f"{field_name} matching /{value}/",
    }
    text = texts.get(operator, f"{field_name} {operator} {value}")
    return Criterion(
        field=field_name,
        operator=operator,
        values=values,
        numbers=numbers,
        pattern=pattern,
        text=text,
    )


# --- Evaluating ---


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


def _same(value: Any, wanted: str) -> bool:
    """Compare a lead value with a criterion's text: as numbers when both are, else as words."""
    if isinstance(value, bool):
        return wanted.casefold() in (
            {"true", "yes", "1", "y"} if value else {"false", "no", "0", "n"}
        )
    number, wanted_number = as_number(value), as_number(wanted)
    if number is not None and wanted_number is not None:
        return number == wanted_number
    return str(value).strip().casefold() == wanted.casefold()


def _shown(value: Any) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def check_criterion(criterion: Criterion, fields: Mapping[str, Any]) -> str:
    """Return '' when the criterion holds, else why not."""
    op = criterion.operator
    value = fields.get(criterion.field)
    blank = _is_blank(value)
    if op == CriterionOperator.EXISTS:
        return f"{criterion.field} {MISSING_WORDS}" if blank else ""
    if op == CriterionOperator.MISSING:
        return "" if blank else f"{criterion.field} is {_shown(value)}, must be missing"
    if blank:
        if op in {CriterionOperator.NE, CriterionOperator.NOT_IN}:
            return ""
        if criterion.field in {SCORE_FIELD, TIER_FIELD}:
            return f"the lead has no score (needs {criterion.text})"
        return f"{criterion.field} {MISSING_WORDS} (needs {criterion.text})"
    if op == CriterionOperator.EQ:
        ok = _same(value, criterion.values[0] if criterion.values else "")
    elif op == CriterionOperator.NE:
        ok = not _same(value, criterion.values[0] if criterion.values else "")
    elif op == CriterionOperator.IN:
        ok = any(_same(value, wanted) for wanted in criterion.values)
    elif op == CriterionOperator.NOT_IN:
        ok = not any(_same(value, wanted) for wanted in criterion.values)
    elif op == CriterionOperator.REGEX:
        ok = criterion.pattern is not None and criterion.pattern.search(str(value)) is not None
    else:
        number = as_number(value)
        if number is None:
            return f"{criterion.field} is {_shown(value)}, not a number (needs {criterion.text})"
        bounds = criterion.numbers
        compare: dict[str, Callable[[], bool]] = {
            CriterionOperator.GT: lambda: number > bounds[0],
            CriterionOperator.GTE: lambda: number >= bounds[0],
            CriterionOperator.LT: lambda: number < bounds[0],
            CriterionOperator.LTE: lambda: number <= bounds[0],
            CriterionOperator.BETWEEN: lambda: bounds[0] <= number <= bounds[1],
        }
        ok = compare[op]()
    return "" if ok else f"{criterion.field} is {_shown(value)}, needs {criterion.text}"


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    if minutes < 2 * 24 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} days"


def check_territory(rules: ContractRules, lead: LeadFacts) -> str:
    """Return '' when the lead is in the territory, else why not.

    Include rules are alternatives (a lead in any of them is inside); exclude rules always win.
    """
    if lead.state and lead.state in rules.states_out:
        return f"state {lead.state} is excluded"
    if lead.zip_code and lead.zip_code in rules.zips_out:
        return f"ZIP {lead.zip_code} is excluded"
    if rules.radius_out and lead.lat is not None and lead.lon is not None:
        for area in rules.radius_out:
            miles = distance_miles(lead.lat, lead.lon, area.lat, area.lon)
            if miles <= area.miles:
                return f"{miles:.0f} mi from {area.zip_code}, inside the excluded {area.miles} mi"
    if not rules.has_territory:
        return ""
    if lead.state and lead.state in rules.states_in:
        return ""
    if lead.zip_code and lead.zip_code in rules.zips_in:
        return ""
    nearest: tuple[float, RadiusArea] | None = None
    if lead.lat is not None and lead.lon is not None:
        for area in rules.radius_in:
            miles = distance_miles(lead.lat, lead.lon, area.lat, area.lon)
            if miles <= area.miles:
                return ""
            if nearest is None or miles - area.miles < nearest[0] - nearest[1].miles:
                nearest = (miles, area)
    parts = []
    if rules.states_in:
        listed = sorted(rules.states_in)
        shown = ", ".join(listed[:8]) + (" …" if len(listed) > 8 else "")
        parts.append(f"state {lead.state or '(none)'} not in {shown}")
    if rules.zips_in:
        parts.append(f"ZIP {lead.zip_code or '(none)'} not in its {len(rules.zips_in)} ZIPs")
    if nearest is not None:
        miles, area = nearest
        parts.append(f"{miles:.0f} mi from {area.zip_code}, beyond {area.miles} mi")
    elif rules.radius_in:
        parts.append("no known location for a radius check")
    return "outside territory: " + "; ".join(parts)


def check_consent(rules: ContractRules, lead: LeadFacts) -> str:
    consent = lead.consent or {}
    if rules.requires_certificate and not (
        str(consent.get("trustedform_cert_url") or "").strip()
        or str(consent.get("jornaya_leadid") or "").strip()
    ):
        return "no consent certificate (TrustedForm or Jornaya)"
    if rules.consent_names:
        named = {str(s).strip().casefold() for s in consent.get("sellers") or [] if s}
        text = str(consent.get("text") or "").casefold()
        # Whole words only: buyer "Ace" is not named by "Solar Place Inc.".
        if not any(
            name in named or re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text)
            for name in rules.consent_names
        ):
            return f"consent does not name {rules.buyer_name}"
    return ""


def check_bought(rules: ContractRules, past_sales: Sequence[PastSale], now: datetime) -> str:
    if rules.bought_within is None:
        return ""
    since = now - rules.bought_within
    for sale in past_sales:
        if sale.sold_at < since:
            continue
        if rules.bought_scope == BoughtScope.CONTRACT and sale.contract_id != rules.contract_id:
            continue
        if rules.bought_scope == BoughtScope.BUYER and sale.buyer_id != rules.buyer_id:
            continue
        ago = _minutes(now - sale.sold_at)
        days = rules.bought_within.days
        who = "this contract" if rules.bought_scope == BoughtScope.CONTRACT else "this buyer"
        return f"already bought by {who} {ago} ago (refuses repeats within {days} days)"
    return ""


def evaluate(
    rules: ContractRules,
    lead: LeadFacts,
    *,
    now: datetime,
    usage: Iterable[CapUsage] = (),
    past_sales: Sequence[PastSale] = (),
) -> Verdict:
    """Return whether the contract may receive the lead, or the first rule that excludes it."""

    def no(rule: str, reason: str) -> Verdict:
        return Verdict(rules.contract_id, rules.name, rules.buyer_name, False, rule, reason)

    if rules.inactive_reason:
        return no("status", rules.inactive_reason)
    if lead.is_test and not rules.accepts_test_leads:
        return no("test", "does not accept test leads")
    if rules.source_filter == SourceFilter.ALLOW and lead.source_id not in rules.source_ids:
        return no("source", f"source {lead.source_name} is not on the allow list")
    if rules.source_filter == SourceFilter.BLOCK and lead.source_id in rules.source_ids:
        return no("source", f"source {lead.source_name} is blocked")
    if rules.schedule is not None and not is_open(rules.schedule, now):
        return no("schedule", describe_closed(rules.schedule, now))
    if rules.min_age is not None or rules.max_age is not None:
        age = now - lead.received_at
        if rules.min_age is not None and age < rules.min_age:
            return no(
                "age",
                f"lead is {_minutes(age)} old; buys leads at least {_minutes(rules.min_age)} old",
            )
        if rules.max_age is not None and age >= rules.max_age:
            return no(
                "age",
                f"lead is {_minutes(age)} old; buys leads younger than {_minutes(rules.max_age)}",
            )
    reason = check_territory(rules, lead)
    if reason:
        return no("territory", reason)
    for criterion in rules.criteria:
        if criterion.field in lead.pending_fields:
            continue
        reason = check_criterion(criterion, lead.fields)
        if reason:
            return no("criteria", reason)
    reason = "" if lead.consent_pending else check_consent(rules, lead)
    if reason:
        return no("consent", reason)
    reason = check_bought(rules, past_sales, now)
    if reason:
        return no("bought", reason)
    reason = check_caps(rules, usage)
    if reason:
        return no("cap", reason)
    return Verdict(rules.contract_id, rules.name, rules.buyer_name, True)


def check_caps(rules: ContractRules, usage: Iterable[CapUsage]) -> str:
    """Return '' when every cap has room for one more lead at the contract's price."""
    for cap in usage:
        if cap.blocks(rules.price_hint):
            return cap.describe()
    return ""


def apply_caps(rules: ContractRules, verdict: Verdict, usage: Iterable[CapUsage]) -> Verdict:
    """Check the caps of a contract that passed every other rule (caps are the last rule)."""
    if not verdict.eligible:
        return verdict
    reason = check_caps(rules, usage)
    if not reason:
        return verdict
    return Verdict(rules.contract_id, rules.name, rules.buyer_name, False, "cap", reason)


def evaluate_all(
    contracts: Sequence[ContractRules],
    lead: LeadFacts,
    *,
    now: datetime,
    usage: Mapping[int, Sequence[CapUsage]] | None = None,
    past_sales: Sequence[PastSale] = (),
) -> list[Verdict]:
    """Evaluate every contract for one lead, in the order given."""
    usage = usage or {}
    return [
        evaluate(
            rules, lead, now=now, usage=usage.get(rules.contract_id, ()), past_sales=past_sales
        )
        for rules in contracts
    ]
