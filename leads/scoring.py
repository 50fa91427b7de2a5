"""Lead scoring (pure): a vertical's rules, compiled once, applied to a normalised lead.

A vertical's active scoring rules and tier bounds are compiled into a `Scorecard` (plain frozen
data, kept per process by leads.selectors.vertical_scorecard); `score_lead` applies it to a
lead's normalised and enriched fields (city, county, state and time zone from the ZIP code) and
its source, without touching the database or the network.

The rule kinds:

- range: the field is a number between the bounds, both included (either may be left open);
- match: the field is one of the values (case-insensitive; numbers compare as numbers; true,
  yes, 1 and false, no, 0 for yes/no fields);
- exists: the field is present;
- boost: a bonus (points) and/or a multiplier for leads of one source, or with a field present
  or matching values, or both; a boost with no condition applies to every lead.

Order of application, whatever the rules' positions (which only order the page and the
breakdown):

1. every active rule is checked against the lead; those that hold *fire*;
2. the points of every fired rule are summed (range, match and exists rules, and boosts' bonuses);
3. the sum is multiplied by the multiplier of every fired boost;
4. the result is clamped to 0-100 and rounded to a whole number (half up);
5. the tier is the one whose bounds hold the score: Hot from `hot` (80) to 100, Warm from `warm`
   (60), Qualified from `qualified` (40), Cold below.

A vertical without active rules scores nothing: its leads have no score and no tier (reports call
them unscored) rather than all being Cold.

Model field types are named by their values here ("integer", "choice", ...): leads.models
imports this module, so this one cannot import leads.models.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.db import models

MIN_SCORE = 0
MAX_SCORE = 100
MAX_POINTS = 100
MAX_MULTIPLIER = Decimal("10")
ONE = Decimal(1)
TRUE_WORDS = frozenset({"true", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "no", "n", "0"})
NUMBER_TYPES = frozenset({"integer", "decimal"})
# What intake adds to every lead from its ZIP code (leads.intake.normalise_fields): rules may name
# these although no vertical lists them. A vertical's own field of the same name wins.
ENRICHMENT_TYPES = {"city": "string", "county": "string", "state": "state", "time_zone": "string"}
# Contract criteria name the score and tier like fields (routing.selectors.lead_facts).
SCORE_FIELD = "score"
TIER_FIELD = "tier"


class Tier(models.TextChoices):
    HOT = "hot", "Hot"
    WARM = "warm", "Warm"
    QUALIFIED = "qualified", "Qualified"
    COLD = "cold", "Cold"


# Hottest first: the order of the dashboards' and the admin's tables.
TIERS = (Tier.HOT, Tier.WARM, Tier.QUALIFIED, Tier.COLD)


class RuleKind(models.TextChoices):
    RANGE = "range", "Range: a number between bounds"
    MATCH = "match", "Match: one of the values"
    EXISTS = "exists", "Exists: the field is present"
    BOOST = "boost", "Boost: bonus and/or multiplier"


# --- Tiers -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TierBounds:
    """The lowest score of each tier but Cold, which takes everything below Qualified."""

    hot: int = 80
    warm: int = 60
    qualified: int = 40

    def tier_of(self, score: int) -> str:
        """Return the tier of a score (0-100)."""
        if score >= self.hot:
            return Tier.HOT
        if score >= self.warm:
            return Tier.WARM
        if score >= self.qualified:
            return Tier.QUALIFIED
        return Tier.COLD

    def span(self, tier: str) -> tuple[int, int]:
        """Return the lowest and highest score of a tier."""
        bounds: dict[str, tuple[int, int]] = {
            Tier.HOT: (self.hot, MAX_SCORE),
            Tier.WARM: (self.warm, self.hot - 1),
            Tier.QUALIFIED: (self.qualified, self.warm - 1),
            Tier.COLD: (MIN_SCORE, self.qualified - 1),
        }
        return bounds[tier]

    def describe(self, tier: str) -> str:
        low, high = self.span(tier)
        return f"{Tier(tier).label} {low}-{high}"

    def as_dict(self) -> dict[str, int]:
        return {"hot": self.hot, "warm": self.warm, "qualified": self.qualified}


def tier_bounds_errors(*, hot: Any, warm: Any, qualified: Any) -> dict[str, str]:
    """Return what is wrong with tier bounds, by bound; every tier must hold at least one score."""
    errors: dict[str, str] = {}
    if not all(isinstance(b, int) and not isinstance(b, bool) for b in (hot, warm, qualified)):
        return errors  # the form's own field validation reports the missing or malformed value
    if qualified <= MIN_SCORE:
        errors["qualified"] = "Qualified must start above 0: Cold needs room below it."
    if not qualified < warm:
        errors["warm"] = f"Warm must start above Qualified's {qualified}."
    if not warm < hot:
        errors["hot"] = f"Hot must start above Warm's {warm}."
    elif hot > MAX_SCORE:
        errors["hot"] = f"Hot must start at {MAX_SCORE} at most."
    return errors


# --- Values ------------------------------------------------------------------------------------


def split_values(text: str) -> tuple[str, ...]:
    """Return a rule's comma-separated values, trimmed, without empty ones."""
    return tuple(v.strip() for v in (text or "").split(",") if v.strip())


def as_number(value: Any) -> Decimal | None:
    """Read a lead's value as a finite number (a yes/no is not one), or None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _words(value: Any) -> frozenset[str]:
    """Return every spelling a match rule's value may use for a lead's value."""
    if isinstance(value, bool):
        return TRUE_WORDS if value else FALSE_WORDS
    words = {str(value).strip().casefold()}
    number = as_number(value)
    if number is not None:
        words.add(f"{number.normalize():f}")
    return frozenset(words)


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


def _shown(value: Any) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _plain(number: Decimal) -> str:
    return f"{number.normalize():f}"


# --- Validation ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KnownField:
    """What validation needs to know of a field a rule may name."""

    field_type: str
    choices: tuple[str, ...] = ()


def known_fields(
    vertical_fields: Iterable[tuple[str, str, Iterable[str]]],
) -> dict[str, KnownField]:
    """Return the fields rules may name: the vertical's (name, type, choices) and enrichment."""
    known = {name: KnownField(field_type) for name, field_type in ENRICHMENT_TYPES.items()}
    for name, field_type, choices in vertical_fields:
        known[name] = KnownField(field_type, tuple(choices or ()))
    return known


def rule_errors(  # noqa: PLR0912 - one check per line, in the order a form shows them
    *,
    kind: str,
    field_name: str,
    min_value: Decimal | None,
    max_value: Decimal | None,
    values: str,
    points: int | None,
    multiplier: Decimal | None,
    has_source: bool,
    fields: Mapping[str, KnownField] | None,
) -> dict[str, str]:
    """Return what is wrong with a scoring rule, by model field (empty when it is sound).

    `fields` are the fields the rule may name (see known_fields); None skips that check.
    """
    errors: dict[str, str] = {}
    listed = split_values(values)
    points = points or 0
    boost = kind == RuleKind.BOOST
    if kind not in RuleKind.values:
        return {"kind": "Choose a kind of rule."}
    if not field_name and not boost:
        errors["field"] = "Name the field this rule reads."
    known = fields.get(field_name) if fields is not None and field_name else None
    if field_name and fields is not None and known is None:
        names = ", ".join(sorted(fields))
        errors["field"] = f"{field_name!r} is not a field of this vertical; it has {names}."
    if kind == RuleKind.RANGE:
        if known is not None and known.field_type not in NUMBER_TYPES:
            errors["field"] = f"A range reads a number; {field_name} is not a number field."
        if min_value is None and max_value is None:
            errors["min_value"] = "Give the lowest value, the highest, or both."
        elif min_value is not None and max_value is not None and min_value > max_value:
            errors["max_value"] = f"The highest value is below the lowest ({_plain(min_value)})."
    elif min_value is not None or max_value is not None:
        errors["min_value"] = "Only range rules have bounds."
    if kind == RuleKind.MATCH and not listed:
        errors["values"] = "Give the values that match, separated by commas."
    elif kind in {RuleKind.RANGE, RuleKind.EXISTS} and listed:
        errors["values"] = "Only match rules and boosts have values."
    elif boost and listed and not field_name:
        errors["field"] = "Name the field whose values the boost matches."
    if listed and known is not None and "values" not in errors:
        problem = _values_problem(field_name, known, listed)
        if problem:
            errors["values"] = problem
    if boost:
        if not points and (multiplier is None or multiplier == ONE):
            errors["points"] = "A boost adds points, multiplies the score, or both: give one."
    else:
        if multiplier is not None:
            errors["multiplier"] = "Only a boost multiplies the score; give points instead."
        if has_source:
            errors["source"] = "Only a boost is limited to a source."
        if not points:
            errors["points"] = "Give the points the rule adds (negative to take some away)."
    if not -MAX_POINTS <= points <= MAX_POINTS:
        errors["points"] = f"Between -{MAX_POINTS} and {MAX_POINTS}."
    if multiplier is not None and not Decimal(0) <= multiplier <= MAX_MULTIPLIER:
        errors["multiplier"] = f"Between 0 and {MAX_MULTIPLIER}."
    return errors


def _values_problem(field_name: str, known: KnownField, listed: tuple[str, ...]) -> str:
    if known.field_type == "choice" and known.choices:
        choices = {c.casefold() for c in known.choices}
        unknown = [v for v in listed if v.casefold() not in choices]
        if unknown:
            return (
                f"{', '.join(unknown)}: not a choice of {field_name} ({', '.join(known.choices)})."
            )
    elif known.field_type == "boolean":
        unknown = [v for v in listed if v.casefold() not in TRUE_WORDS | FALSE_WORDS]
        if unknown:
            return f"{', '.join(unknown)}: {field_name} is yes/no; give true or false."
    elif known.field_type in NUMBER_TYPES:
        unknown = [v for v in listed if as_number(v) is None]
        if unknown:
            return f"{', '.join(unknown)}: {field_name} is a number field."
    return ""


# --- Compiling and scoring ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    """One scoring rule, compiled for fast evaluation."""

    name: str
    kind: str
    field: str = ""
    low: Decimal | None = None
    high: Decimal | None = None
    values: tuple[str, ...] = ()  # as typed, for the breakdown
    words: frozenset[str] = frozenset()  # what they match, see _words
    points: int = 0
    multiplier: Decimal | None = None
    source_id: int | None = None
    source_name: str = ""
    rule_id: int | None = None
    # A personal-data field: the breakdown names it but never shows its value.
    private: bool = False


def compile_rule(
    *,
    name: str,
    kind: str,
    field_name: str = "",
    min_value: Decimal | None = None,
    max_value: Decimal | None = None,
    values: str = "",
    points: int = 0,
    multiplier: Decimal | None = None,
    source_id: int | None = None,
    source_name: str = "",
    rule_id: int | None = None,
    private: bool = False,
) -> Rule:
    """Compile one rule (validated by the model: see rule_errors)."""
    listed = split_values(values)
    words: set[str] = set()
    for value in listed:
        words |= _words(value)
    return Rule(
        name=name,
        kind=kind,
        field=field_name,
        low=min_value,
        high=max_value,
        values=listed,
        words=frozenset(words),
        points=points or 0,
        multiplier=multiplier,
        source_id=source_id,
        source_name=source_name,
        rule_id=rule_id,
        private=private,
    )


@dataclass(frozen=True)
class Scorecard:
    """A vertical's active rules, in position order, and its tier bounds."""

    rules: tuple[Rule, ...]
    bounds: TierBounds = TierBounds()


@dataclass(frozen=True, slots=True)
class Fired:
    """A rule that held for a lead, what it did and why."""

    rule: str
    kind: str
    points: int
    multiplier: Decimal | None
    why: str
    rule_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "rule": self.rule,
            "kind": self.kind,
            "points": self.points,
            "multiplier": None if self.multiplier is None else _plain(self.multiplier),
            "why": self.why,
        }


@dataclass(frozen=True)
class LeadScore:
    score: int
    tier: str
    points: int
    multiplier: Decimal
    raw: Decimal  # points x multiplier, before clamping and rounding
    fired: tuple[Fired, ...]
    bounds: TierBounds

    def breakdown(self) -> dict[str, Any]:
        """Return what is stored on the lead: the arithmetic, the bounds used, the fired rules."""
        return {
            "points": self.points,
            "multiplier": _plain(self.multiplier),
            "raw": _plain(self.raw),
            "score": self.score,
            "tier": self.tier,
            "bounds": self.bounds.as_dict(),
            "rules": [fired.as_dict() for fired in self.fired],
        }


def _in_range(rule: Rule, value: Any) -> str | None:
    number = as_number(value)
    if number is None:
        return None
    if (rule.low is not None and number < rule.low) or (
        rule.high is not None and number > rule.high
    ):
        return None
    if rule.low is not None and rule.high is not None:
        span = f"in {_plain(rule.low)}-{_plain(rule.high)}"
    elif rule.low is not None:
        span = f"at least {_plain(rule.low)}"
    else:
        span = f"at most {_plain(rule.high or Decimal(0))}"
    shown = "" if rule.private else f" {_plain(number)}"
    return f"{rule.field}{shown} is {span}"


def _field_holds(rule: Rule, fields: Mapping[str, Any]) -> str | None:
    """Return why the rule's field condition holds, or None when it does not."""
    value = fields.get(rule.field)
    if _is_blank(value):
        return None
    if rule.kind == RuleKind.RANGE:
        return _in_range(rule, value)
    if not rule.values:
        return f"{rule.field} present"
    if not _words(value) & rule.words:
        return None
    shown = "one of the rule's values" if rule.private else _shown(value)
    return f"{rule.field} is {shown}"


def check_rule(rule: Rule, fields: Mapping[str, Any], *, source_id: int | None) -> str | None:
    """Return why the rule fires for this lead, or None when it does not."""
    if rule.kind != RuleKind.BOOST:
        return _field_holds(rule, fields)
    reasons = []
    if rule.source_id is not None:
        if source_id != rule.source_id:
            return None
        reasons.append(f"source {rule.source_name or rule.source_id}")
    if rule.field:
        why = _field_holds(rule, fields)
        if why is None:
            return None
        reasons.append(why)
    return ", ".join(reasons) or "every lead"


def score_lead(
    card: Scorecard | None, fields: Mapping[str, Any], *, source_id: int | None = None
) -> LeadScore | None:
    """Score a lead's normalised, enriched fields (see the module's order of application).

    Return None when there is nothing to score with (no card, or a card without rules).
    """
    if card is None or not card.rules:
        return None
    fired: list[Fired] = []
    points = 0
    multiplier = ONE
    for rule in card.rules:
        why = check_rule(rule, fields, source_id=source_id)
        if why is None:
            continue
        fired.append(Fired(rule.name, rule.kind, rule.points, rule.multiplier, why, rule.rule_id))
        points += rule.points
        if rule.multiplier is not None:
            multiplier *= rule.multiplier
    raw = points * multiplier
    # Clamped before rounding: a product of many multipliers may have more digits than
    # Decimal's context can round.
    clamped = min(max(raw, Decimal(MIN_SCORE)), Decimal(MAX_SCORE))
    score = int(clamped.quantize(ONE, rounding=ROUND_HALF_UP))
    return LeadScore(
        score=score,
        tier=card.bounds.tier_of(score),
        points=points,
        multiplier=multiplier,
        raw=raw,
        fired=tuple(fired),
        bounds=card.bounds,
    )
