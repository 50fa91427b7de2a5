"""Lead scoring: each rule kind, the order of application, clamping and tiers (pure), the rules'
and tier bounds' validation (models and the vertical's admin page), and intake storing and
showing the score (API, admin) without an extra query."""

from __future__ import annotations

import itertools
import json
import random
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from hypothesis import given, settings
from hypothesis import strategies as st

from buyers.forms import FieldCriterionForm
from leads.models import (
    FieldType,
    Lead,
    LeadStatus,
    ScoringRule,
    Source,
    Vertical,
    VerticalField,
)
from leads.scoring import (
    TIERS,
    KnownField,
    LeadScore,
    RuleKind,
    Scorecard,
    Tier,
    TierBounds,
    compile_rule,
    known_fields,
    rule_errors,
    score_lead,
    tier_bounds_errors,
)
from leads.selectors import clear_field_specs_cache, vertical_scorecard
from tests.leads.factories import (
    SourceFactory,
    VerticalFactory,
    VerticalFieldFactory,
    api_key_for,
)
from tests.test_admin import change_form_data

D = Decimal
PROPERTY_SETTINGS = settings(deadline=None, derandomize=True, database=None, max_examples=300)
LEADS = "/api/v1/leads/"


def rule(name: str = "rule", kind: str = RuleKind.MATCH, points: int = 10, **options):
    """A compiled rule; field_name defaults to credit_rating."""
    options.setdefault("field_name", "credit_rating" if kind != RuleKind.BOOST else "")
    return compile_rule(name=name, kind=kind, points=points, **options)


def card(*rules, bounds: TierBounds | None = None) -> Scorecard:
    return Scorecard(rules=tuple(rules), bounds=bounds or TierBounds())


def scored(*rules, fields=None, source_id: int | None = 7, bounds=None) -> LeadScore:
    result = score_lead(card(*rules, bounds=bounds), fields or {}, source_id=source_id)
    assert result is not None
    return result


def fired(result: LeadScore) -> list[str]:
    return [f.rule for f in result.fired]


# --- Each kind of rule ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fires"),
    [(699, False), (700, True), (780, True), (850, True), (851, False), ("720", True)],
)
def test_a_range_rule_holds_between_its_bounds_both_included(value, fires):
    credit = rule(
        "Prime credit", RuleKind.RANGE, 20, field_name="credit_score", min_value=D(700),
        max_value=D(850),
    )  # fmt: skip

    result = scored(credit, fields={"credit_score": value})

    assert (result.score, fired(result)) == ((20, ["Prime credit"]) if fires else (0, []))


def test_a_range_rule_may_leave_either_bound_open_and_says_which_held():
    at_least = rule("Big bill", RuleKind.RANGE, 15, field_name="bill", min_value=D(150))
    at_most = rule("Few accidents", RuleKind.RANGE, 10, field_name="accidents", max_value=D(1))

    result = scored(at_least, at_most, fields={"bill": 212.5, "accidents": 0})

    assert result.score == 25
    assert [f.why for f in result.fired] == [
        "bill 212.5 is at least 150",
        "accidents 0 is at most 1",
    ]


@pytest.mark.parametrize("value", [None, "", "n/a", True, [1]])
def test_a_range_rule_ignores_a_missing_or_non_numeric_value(value):
    credit = rule(kind=RuleKind.RANGE, field_name="credit_score", min_value=D(0))

    assert scored(credit, fields={"credit_score": value}).score == 0


@pytest.mark.parametrize(
    ("values", "value", "fires"),
    [
        ("excellent, good", "Good", True),  # case-insensitive
        ("excellent, good", "fair", False),
        ("700, 750", 750.0, True),  # numbers compare as numbers
        ("700", "0700", True),
        ("true", True, True),
        ("yes", True, True),
        ("no", False, True),
        ("true", False, False),
        ("good", None, False),
    ],
)
def test_a_match_rule_holds_when_the_value_is_one_of_its_values(values, value, fires):
    credit = rule("Good credit", RuleKind.MATCH, 20, field_name="credit", values=values)

    assert scored(credit, fields={"credit": value}).score == (20 if fires else 0)


@pytest.mark.parametrize(("value", "fires"), [("x", True), (0, True), (False, True), ("", False)])
def test_an_exists_rule_holds_when_the_field_is_present(value, fires):
    has_phone = rule("Has a phone", RuleKind.EXISTS, 5, field_name="phone")

    assert scored(has_phone, fields={"phone": value}).score == (5 if fires else 0)
    assert scored(has_phone, fields={}).score == 0


def test_a_boost_of_a_source_applies_to_that_sources_leads_only():
    base = rule("Good credit", values="good", points=50)
    boost = rule(
        "Call-centre verified", RuleKind.BOOST, 10, multiplier=D("1.5"), source_id=3,
        source_name="Keystone",
    )  # fmt: skip

    theirs = scored(base, boost, fields={"credit_rating": "good"}, source_id=3)
    others = scored(base, boost, fields={"credit_rating": "good"}, source_id=4)

    assert theirs.score == 90  # (50 + 10) x 1.5
    assert theirs.fired[1].why == "source Keystone"
    assert others.score == 50


def test_a_boost_on_a_field_needs_its_value_and_every_condition_it_names():
    boost = rule(
        "Homeowner from Keystone", RuleKind.BOOST, 0, field_name="homeowner", values="true",
        multiplier=D(2), source_id=3, source_name="Keystone",
    )  # fmt: skip
    base = rule("Base", RuleKind.EXISTS, 30, field_name="zip_code")
    lead = {"zip_code": "60601", "homeowner": True}

    assert scored(base, boost, fields=lead, source_id=3).score == 60
    assert scored(base, boost, fields={**lead, "homeowner": False}, source_id=3).score == 30
    assert scored(base, boost, fields=lead, source_id=4).score == 30
    assert scored(base, boost, fields=lead, source_id=3).fired[1].why == (
        "source Keystone, homeowner is 'true'"
    )


def test_a_boost_without_a_condition_applies_to_every_lead():
    result = scored(rule("Base", RuleKind.BOOST, 40), fields={})

    assert (result.score, result.fired[0].why) == (40, "every lead")


def test_a_rule_on_a_personal_field_never_shows_its_value():
    by_domain = rule("Work e-mail", field_name="email", values="mary@acme.example", private=True)
    by_age = rule("Age", RuleKind.RANGE, 5, field_name="age", min_value=D(30), private=True)

    result = scored(by_domain, by_age, fields={"email": "mary@acme.example", "age": 44})

    assert [f.why for f in result.fired] == [
        "email is one of the rule's values",
        "age is at least 30",
    ]
    assert "mary" not in json.dumps(result.breakdown())
    assert "44" not in json.dumps(result.breakdown()["rules"])


# --- Order of application, clamping, rounding ---------------------------------------------------


def test_points_are_summed_first_then_multiplied_by_every_boost_whatever_the_positions():
    rules = [
        rule("x1.5", RuleKind.BOOST, 0, multiplier=D("1.5")),
        rule("Good credit", values="good", points=20),
        rule("x0.8", RuleKind.BOOST, 0, multiplier=D("0.8")),
        rule("Bonus", RuleKind.BOOST, 10),
    ]
    lead = {"credit_rating": "good"}

    result = scored(*rules, fields=lead)

    # (20 + 10) x 1.5 x 0.8 = 36, not ((0 x 1.5) + 20) x 0.8 + 10 = 26.
    assert (result.points, result.multiplier, result.score) == (30, D("1.20"), 36)
    for _ in range(5):
        random.Random(1).shuffle(rules)
        assert scored(*rules, fields=lead).score == 36


@pytest.mark.parametrize(
    ("points", "multiplier", "score"),
    [
        (150, None, 100),  # clamped to 100
        (-40, None, 0),  # and to 0
        (-40, D(2), 0),  # a multiplier does not lift a negative sum
        (45, D("1.01"), 45),  # 45.45
        (50, D("1.01"), 51),  # 50.50, half up
        (90, D("10"), 100),
    ],
)
def test_the_result_is_clamped_to_0_100_and_rounded_half_up(points, multiplier, score):
    rules = [rule("Points", RuleKind.BOOST, points)]
    if multiplier is not None:
        rules.append(rule("Times", RuleKind.BOOST, 0, multiplier=multiplier))

    assert scored(*rules).score == score


def test_many_large_multipliers_are_clamped_not_overflowed():
    rules = [rule("Points", RuleKind.BOOST, 100)]
    rules += [rule(f"x{n}", RuleKind.BOOST, 0, multiplier=D(10)) for n in range(60)]

    assert scored(*rules).score == 100


def test_a_vertical_without_rules_scores_nothing():
    assert score_lead(None, {"credit_rating": "good"}) is None
    assert score_lead(Scorecard(rules=()), {"credit_rating": "good"}) is None


def test_the_breakdown_keeps_the_fired_rules_the_arithmetic_and_the_bounds_used():
    result = scored(
        rule("Good credit", values="good", points=40, rule_id=11),
        rule("Homeowner", field_name="homeowner", values="true", points=30, rule_id=12),
        rule("Verified", RuleKind.BOOST, 0, multiplier=D("1.25"), source_id=7, rule_id=13),
        fields={"credit_rating": "good", "homeowner": False},
        bounds=TierBounds(hot=90, warm=50, qualified=20),
    )

    assert result.breakdown() == {
        "points": 40,
        "multiplier": "1.25",
        "raw": "50",
        "score": 50,
        "tier": "warm",
        "bounds": {"hot": 90, "warm": 50, "qualified": 20},
        "rules": [
            {
                "rule_id": 11,
                "rule": "Good credit",
                "kind": "match",
                "points": 40,
                "multiplier": None,
                "why": "credit_rating is 'good'",
            },
            {
                "rule_id": 13,
                "rule": "Verified",
                "kind": "boost",
                "points": 0,
                "multiplier": "1.25",
                "why": "source 7",
            },
        ],
    }


# --- Tiers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "tier"),
    [
        (100, Tier.HOT),
        (80, Tier.HOT),
        (79, Tier.WARM),
        (60, Tier.WARM),
        (59, Tier.QUALIFIED),
        (40, Tier.QUALIFIED),
        (39, Tier.COLD),
        (0, Tier.COLD),
    ],
)
def test_the_default_tiers_are_hot_80_warm_60_qualified_40_cold_below(score, tier):
    assert TierBounds().tier_of(score) == tier


def test_a_verticals_own_bounds_move_the_tiers():
    bounds = TierBounds(hot=95, warm=70, qualified=30)

    assert [bounds.tier_of(s) for s in (95, 94, 70, 69, 30, 29)] == [
        "hot", "warm", "warm", "qualified", "qualified", "cold",
    ]  # fmt: skip
    assert bounds.describe(Tier.WARM) == "Warm 70-94"
    assert scored(rule("All", RuleKind.BOOST, 72), bounds=bounds).tier == Tier.WARM


@pytest.mark.parametrize(
    ("hot", "warm", "qualified", "errors"),
    [
        (80, 60, 40, {}),
        (100, 2, 1, {}),
        (80, 60, 0, {"qualified": "Qualified must start above 0: Cold needs room below it."}),
        (80, 40, 40, {"warm": "Warm must start above Qualified's 40."}),
        (60, 60, 40, {"hot": "Hot must start above Warm's 60."}),
        (101, 60, 40, {"hot": "Hot must start at 100 at most."}),
    ],
)
def test_tier_bounds_must_be_ordered_inside_0_100(hot, warm, qualified, errors):
    assert tier_bounds_errors(hot=hot, warm=warm, qualified=qualified) == errors


# --- Properties --------------------------------------------------------------------------------

FIELDS = ("a", "b", "c")


@st.composite
def bounds_strategy(draw) -> TierBounds:
    qualified = draw(st.integers(1, 98))
    warm = draw(st.integers(qualified + 1, 99))
    hot = draw(st.integers(warm + 1, 100))
    return TierBounds(hot=hot, warm=warm, qualified=qualified)


@st.composite
def rule_strategy(draw, *, index: int):
    kind = draw(st.sampled_from(RuleKind.values))
    name = f"r{index}"
    field_name = draw(st.sampled_from(FIELDS))
    points = draw(st.integers(-100, 100))
    if kind == RuleKind.RANGE:
        low = draw(st.none() | st.integers(-50, 50))
        high = draw(st.none() | st.integers(low if low is not None else -50, 100))
        return compile_rule(
            name=name,
            kind=kind,
            field_name=field_name,
            min_value=None if low is None else D(low),
            max_value=None if high is None else D(high),
            points=points,
        )
    if kind == RuleKind.MATCH:
        values = draw(st.lists(st.sampled_from(["x", "y", "1", "true"]), min_size=1, max_size=3))
        return compile_rule(
            name=name, kind=kind, field_name=field_name, values=", ".join(values), points=points
        )
    if kind == RuleKind.EXISTS:
        return compile_rule(name=name, kind=kind, field_name=field_name, points=points)
    multiplier = draw(st.none() | st.decimals(0, 10, places=2))
    return compile_rule(
        name=name,
        kind=kind,
        field_name=draw(st.sampled_from(("", *FIELDS))),
        points=points,
        multiplier=multiplier,
        source_id=draw(st.none() | st.integers(1, 3)),
    )


@st.composite
def rules_strategy(draw, max_size: int = 8) -> list:
    size = draw(st.integers(1, max_size))
    return [draw(rule_strategy(index=i)) for i in range(size)]


lead_values = st.one_of(
    st.none(),
    st.integers(-100, 200),
    st.sampled_from(["x", "y", "1", "", "n/a"]),
    st.booleans(),
    st.floats(-1e6, 1e6, allow_nan=False),
)
leads = st.fixed_dictionaries(dict.fromkeys(FIELDS, lead_values))


@PROPERTY_SETTINGS
@given(rules=rules_strategy(), lead=leads, source_id=st.integers(1, 3), bounds=bounds_strategy())
def test_every_score_is_within_0_100_and_in_the_tier_its_bounds_give(
    rules, lead, source_id, bounds
):
    result = score_lead(card(*rules, bounds=bounds), lead, source_id=source_id)

    assert result is not None
    assert 0 <= result.score <= 100
    low, high = bounds.span(result.tier)
    assert low <= result.score <= high
    assert result.tier == bounds.tier_of(result.score)


@PROPERTY_SETTINGS
@given(bounds=bounds_strategy())
def test_the_tiers_partition_0_100_and_never_get_colder_as_the_score_rises(bounds):
    spans = sorted(bounds.span(tier) for tier in TIERS)
    assert spans[0][0] == 0
    assert spans[-1][1] == 100
    for (_, high), (low, _) in itertools.pairwise(spans):
        assert low == high + 1
    order = {tier: rank for rank, tier in enumerate(reversed(TIERS))}
    ranks = [order[bounds.tier_of(score)] for score in range(101)]
    assert ranks == sorted(ranks)


@PROPERTY_SETTINGS
@given(rules=rules_strategy(), lead=leads, source_id=st.integers(1, 3), seed=st.integers(0, 99))
def test_the_score_does_not_depend_on_the_rules_positions(rules, lead, source_id, seed):
    shuffled = list(rules)
    random.Random(seed).shuffle(shuffled)

    first = score_lead(card(*rules), lead, source_id=source_id)
    second = score_lead(card(*shuffled), lead, source_id=source_id)

    assert first is not None
    assert second is not None
    assert first.score == second.score
    assert sorted(fired(first)) == sorted(fired(second))


@PROPERTY_SETTINGS
@given(
    rules=rules_strategy(),
    lead=leads,
    source_id=st.integers(1, 3),
    bonus=st.integers(0, 100),
    multiplier=st.decimals(1, 10, places=2),
)
def test_a_rule_that_adds_points_or_multiplies_by_at_least_1_never_lowers_a_score(
    rules, lead, source_id, bonus, multiplier
):
    before = score_lead(card(*rules), lead, source_id=source_id)
    plus = rule("plus", RuleKind.BOOST, bonus)
    times = rule("times", RuleKind.BOOST, 0, multiplier=multiplier)

    with_bonus = score_lead(card(*rules, plus), lead, source_id=source_id)
    with_multiplier = score_lead(card(*rules, times), lead, source_id=source_id)

    assert before is not None
    assert with_bonus is not None
    assert with_multiplier is not None
    if before.multiplier >= 0:
        assert with_bonus.score >= before.score
    if before.points >= 0:
        assert with_multiplier.score >= before.score


@PROPERTY_SETTINGS
@given(value=st.integers(-1000, 1000), lower=st.integers(-1000, 1000))
def test_a_higher_value_never_scores_less_under_an_open_ended_range(value, lower):
    above = rule("Above", RuleKind.RANGE, 30, field_name="a", min_value=D(lower))

    less = scored(above, fields={"a": value}).score
    more = scored(above, fields={"a": value + 1}).score

    assert more >= less


# --- Validation of a rule (pure) ---------------------------------------------------------------

AUTO_FIELDS = known_fields(
    [
        ("credit_rating", FieldType.CHOICE, ["excellent", "good", "fair", "poor"]),
        ("vehicle_year", FieldType.INTEGER, []),
        ("homeowner", FieldType.BOOLEAN, []),
        ("vehicle_make", FieldType.STRING, []),
    ]
)


def errors_of(**overrides) -> dict[str, str]:
    values = {
        "kind": RuleKind.MATCH,
        "field_name": "credit_rating",
        "min_value": None,
        "max_value": None,
        "values": "good",
        "points": 10,
        "multiplier": None,
        "has_source": False,
        "fields": AUTO_FIELDS,
    }
    return rule_errors(**values | overrides)


def test_a_sound_rule_of_each_kind_has_no_errors():
    assert errors_of() == {}
    assert (
        errors_of(kind=RuleKind.RANGE, field_name="vehicle_year", values="", min_value=D(2018))
        == {}
    )
    assert errors_of(kind=RuleKind.EXISTS, field_name="homeowner", values="") == {}
    assert errors_of(kind=RuleKind.BOOST, field_name="", values="", has_source=True) == {}
    assert errors_of(kind=RuleKind.MATCH, field_name="county", values="Cook") == {}  # enrichment


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"field_name": "credit_score"}, "field", "'credit_score' is not a field of this vertical"),
        ({"field_name": ""}, "field", "Name the field this rule reads."),
        (
            {"kind": RuleKind.RANGE, "field_name": "vehicle_year", "values": "", "min_value": D(9),
             "max_value": D(1)},
            "max_value",
            "The highest value is below the lowest (9).",
        ),
        (
            {"kind": RuleKind.RANGE, "field_name": "vehicle_year", "values": ""},
            "min_value",
            "Give the lowest value, the highest, or both.",
        ),
        (
            {"kind": RuleKind.RANGE, "field_name": "vehicle_make", "values": "", "min_value": D(1)},
            "field",
            "A range reads a number; vehicle_make is not a number field.",
        ),
        ({"values": ""}, "values", "Give the values that match, separated by commas."),
        ({"values": "good, platinum"}, "values", "platinum: not a choice of credit_rating"),
        (
            {"field_name": "homeowner", "values": "maybe"},
            "values",
            "maybe: homeowner is yes/no; give true or false.",
        ),
        (
            {"kind": RuleKind.BOOST, "field_name": "", "values": "", "points": 0},
            "points",
            "A boost adds points, multiplies the score, or both: give one.",
        ),
        (
            {"kind": RuleKind.BOOST, "field_name": "", "values": "", "points": 0,
             "multiplier": D(1)},
            "points",
            "A boost adds points, multiplies the score, or both: give one.",
        ),
        ({"multiplier": D("1.5")}, "multiplier", "Only a boost multiplies the score"),
        ({"has_source": True}, "source", "Only a boost is limited to a source."),
        ({"points": 0}, "points", "Give the points the rule adds (negative to take some away)."),
        ({"points": 101}, "points", "Between -100 and 100."),
        (
            {"kind": RuleKind.EXISTS, "values": "good"},
            "values",
            "Only match rules and boosts have values.",
        ),
        ({"min_value": D(1)}, "min_value", "Only range rules have bounds."),
    ],
)  # fmt: skip
def test_a_rule_that_cannot_work_as_meant_says_why(overrides, field, message):
    errors = errors_of(**overrides)

    assert message in errors.get(field, ""), errors


# --- Models and the admin ------------------------------------------------------------------------


@pytest.fixture
def auto(db) -> Vertical:
    vertical = VerticalFactory(slug="auto", name="Auto insurance", duplicate_fields=["email"])
    for name, field_type, options in (
        ("email", FieldType.EMAIL, {"is_pii": True}),
        ("zip_code", FieldType.ZIP, {}),
        ("credit_rating", FieldType.CHOICE, {"choices": ["excellent", "good", "fair", "poor"]}),
        ("vehicle_year", FieldType.INTEGER, {}),
        ("homeowner", FieldType.BOOLEAN, {}),
    ):
        VerticalFieldFactory(vertical=vertical, name=name, field_type=field_type, **options)
    return vertical


def test_a_rules_model_checks_name_its_verticals_fields(auto):
    rule_row = ScoringRule(
        vertical=auto, name="Prime", kind=RuleKind.RANGE, field="credit_score", min_value=D(9),
        max_value=D(1), points=10,
    )  # fmt: skip

    with pytest.raises(ValidationError) as raised:
        rule_row.full_clean()

    assert set(raised.value.message_dict) == {"field", "max_value"}
    assert "is not a field of this vertical" in raised.value.message_dict["field"][0]


def test_the_database_refuses_what_the_model_refuses(auto):
    with pytest.raises(IntegrityError), transaction.atomic():
        ScoringRule.objects.create(
            vertical=auto, name="x", kind=RuleKind.BOOST, multiplier=D("11"), points=0
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        Vertical.objects.filter(pk=auto.pk).update(tier_warm_from=85)


def test_a_verticals_tier_bounds_are_checked_by_its_model(auto):
    auto.tier_warm_from = 90

    with pytest.raises(ValidationError) as raised:
        auto.full_clean()

    assert raised.value.message_dict == {"tier_hot_from": ["Hot must start above Warm's 90."]}


def test_a_vertical_field_may_not_take_the_name_criteria_give_the_score(auto):
    field = VerticalField(vertical=auto, name="tier", field_type=FieldType.STRING)

    with pytest.raises(ValidationError) as raised:
        field.full_clean()

    assert "lead's own tier" in raised.value.message_dict["name"][0]


def vertical_page_data(client: Client, vertical: Vertical) -> dict:
    page = client.get(reverse("admin:leads_vertical_change", args=[vertical.pk]))
    assert page.status_code == 200
    return change_form_data(page)


def add_row(data: dict, prefix: str, **fields) -> None:
    index = int(data[f"{prefix}-TOTAL_FORMS"])
    data[f"{prefix}-TOTAL_FORMS"] = str(index + 1)
    data.update({f"{prefix}-{index}-{name}": value for name, value in fields.items()})


def test_the_vertical_page_refuses_a_rule_on_an_unknown_field_and_an_inverted_range(
    admin_client, auto
):
    data = vertical_page_data(admin_client, auto)
    add_row(data, "scoring_rules", name="Prime", kind="range", field="credit_score",
            min_value="850", max_value="700", points="20", position="0", active="on")  # fmt: skip
    add_row(data, "scoring_rules", name="Bonus", kind="boost", points="0", position="1")

    response = admin_client.post(reverse("admin:leads_vertical_change", args=[auto.pk]), data)

    assert response.status_code == 200
    html = response.content.decode()
    assert "&#x27;credit_score&#x27; is not a field of this vertical" in html
    assert "The highest value is below the lowest (850)." in html
    assert "A boost adds points, multiplies the score, or both: give one." in html
    assert not ScoringRule.objects.exists()


def test_a_rule_may_name_a_field_added_on_the_same_page_but_not_one_removed_there(
    admin_client, auto
):
    url = reverse("admin:leads_vertical_change", args=[auto.pk])
    data = vertical_page_data(admin_client, auto)
    add_row(data, "fields", name="credit_score", field_type="integer", position="99",
            choices="[]")  # fmt: skip
    add_row(data, "scoring_rules", name="Prime", kind="range", field="credit_score",
            min_value="700", max_value="850", points="20", position="0", active="on")  # fmt: skip

    saved = admin_client.post(url, data)

    assert saved.status_code == 302
    assert ScoringRule.objects.get().field == "credit_score"

    data = vertical_page_data(admin_client, auto)
    (name_key,) = [k for k, v in data.items() if k.startswith("fields-") and v == "credit_score"]
    data[name_key.replace("-name", "-DELETE")] = "on"
    refused = admin_client.post(url, data)

    assert refused.status_code == 200
    assert "&#x27;credit_score&#x27; is not a field of this vertical" in refused.content.decode()
    assert VerticalField.objects.filter(vertical=auto, name="credit_score").exists()


def test_the_vertical_page_saves_tier_bounds_and_floors_and_refuses_disordered_bounds(
    admin_client, auto
):
    url = reverse("admin:leads_vertical_change", args=[auto.pk])
    data = vertical_page_data(admin_client, auto)

    refused = admin_client.post(url, {**data, "tier_warm_from": "85"})
    assert refused.status_code == 200
    assert "Hot must start above Warm&#x27;s 85." in refused.content.decode()

    saved = admin_client.post(
        url, {**data, "tier_hot_from": "90", "floor_hot": "30.00", "floor_cold": ""}
    )
    assert saved.status_code == 302
    auto.refresh_from_db()
    assert (auto.tier_hot_from, auto.floor_hot, auto.floor_cold) == (90, D("30.00"), None)
    assert auto.tier_floor(Tier.HOT) == D("30.00")
    assert auto.tier_floor(Tier.COLD) is None


def test_a_rule_change_is_kept_in_history_with_who_made_it(admin_client, admin_user, auto):
    data = vertical_page_data(admin_client, auto)
    add_row(data, "scoring_rules", name="Good credit", kind="match", field="credit_rating",
            values="good, excellent", points="20", position="0", active="on")  # fmt: skip
    admin_client.post(reverse("admin:leads_vertical_change", args=[auto.pk]), data)

    record = ScoringRule.history.get()

    assert (record.name, record.history_type, record.history_user) == (
        "Good credit",
        "+",
        admin_user,
    )
    history = admin_client.get(
        reverse("admin:leads_scoringrule_history", args=[ScoringRule.objects.get().pk])
    )
    assert history.status_code == 200


# --- The scorecard cache and intake --------------------------------------------------------------


def test_the_compiled_rules_follow_every_change_of_a_rule_or_the_bounds(auto):
    clear_field_specs_cache()
    assert vertical_scorecard(auto) is None
    ScoringRule.objects.create(
        vertical=auto, name="Good credit", kind=RuleKind.MATCH, field="credit_rating",
        values="good", points=70,
    )  # fmt: skip

    auto.refresh_from_db()  # a rule saved anywhere touches its vertical
    first = vertical_scorecard(auto)
    assert first is not None
    assert [r.name for r in first.rules] == ["Good credit"]
    assert vertical_scorecard(auto) is first  # cached while the vertical is unchanged

    auto.tier_hot_from = 65
    auto.save()
    assert vertical_scorecard(auto).bounds.hot == 65

    ScoringRule.objects.get().delete()
    auto.refresh_from_db()
    assert vertical_scorecard(auto) is None


@pytest.fixture
def scored_vertical(auto) -> Vertical:
    match, in_range = RuleKind.MATCH, RuleKind.RANGE
    rules = [
        ("Good credit", match, 30, {"field": "credit_rating", "values": "good, excellent"}),
        ("Recent car", in_range, 20, {"field": "vehicle_year", "min_value": D(2018)}),
        ("Cook County", match, 10, {"field": "county", "values": "Cook County"}),
        ("Work e-mail", match, 5, {"field": "email", "values": "mary@acme.example"}),
        ("Homeowner", match, 15, {"field": "homeowner", "values": "true"}),
    ]
    for position, (name, kind, points, options) in enumerate(rules):
        ScoringRule.objects.create(
            vertical=auto, position=position, name=name, kind=kind, points=points, **options
        )
    auto.refresh_from_db()
    return auto


@pytest.fixture
def partner_key(scored_vertical) -> str:
    return api_key_for(SourceFactory(verticals=[scored_vertical]))


def submit(client: Client, key: str, **fields) -> dict:
    body = {
        "vertical": "auto",
        "fields": {
            "email": "mary@acme.example",
            "zip_code": "60601",
            "credit_rating": "Good",
            "vehicle_year": 2019,
            **fields,
        },
    }
    response = client.post(
        LEADS, json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    assert response.status_code in {202, 400}, response.content
    return response.json()


def test_intake_stores_the_score_its_tier_and_which_rules_fired(client, partner_key):
    answer = submit(client, partner_key)

    lead = Lead.objects.get(pk=answer["id"])
    # 30 + 20 + 10 (Chicago's county, from the ZIP) + 5 = 65.
    assert (lead.status, lead.score, lead.tier) == (LeadStatus.ACCEPTED, 65, Tier.WARM)
    assert [r["rule"] for r in lead.score_breakdown["rules"]] == [
        "Good credit",
        "Recent car",
        "Cook County",
        "Work e-mail",
    ]
    assert lead.score_breakdown["rules"][2]["why"] == "county is 'Cook County'"
    # The e-mail is personal data: named in the breakdown, never shown.
    assert "mary" not in json.dumps(lead.score_breakdown)


def test_an_email_field_nobody_flagged_personal_is_still_never_quoted(client, partner_key):
    VerticalField.objects.filter(name="email").update(is_pii=False)
    clear_field_specs_cache()

    answer = submit(client, partner_key)

    lead = Lead.objects.get(pk=answer["id"])
    assert "Work e-mail" in [r["rule"] for r in lead.score_breakdown["rules"]]
    # An e-mail is personal by its type: the lead page shows the breakdown to Sales too.
    assert "mary" not in json.dumps(lead.score_breakdown)


def test_the_partner_status_shows_the_score_and_tier(client, partner_key):
    answer = submit(client, partner_key, homeowner=True)

    status = client.get(
        f"{LEADS}{answer['id']}/", HTTP_AUTHORIZATION=f"Bearer {partner_key}"
    ).json()

    assert (status["score"], status["tier"]) == (80, "hot")
    assert "score_breakdown" not in status  # the rules are the platform's own business


def test_an_invalid_lead_gets_no_score(client, partner_key):
    answer = submit(client, partner_key, vehicle_year="soon")

    lead = Lead.objects.get(pk=answer["id"])
    assert (lead.status, lead.score, lead.tier, lead.score_breakdown) == (
        LeadStatus.INVALID, None, "", {},
    )  # fmt: skip
    status = client.get(f"{LEADS}{lead.pk}/", HTTP_AUTHORIZATION=f"Bearer {partner_key}").json()
    assert (status["score"], status["tier"]) == (None, None)


def test_a_lead_of_a_vertical_without_rules_is_not_scored(client, auto):
    key = api_key_for(SourceFactory(verticals=[auto]))

    answer = submit(client, key)

    assert Lead.objects.get(pk=answer["id"]).score is None


def test_scoring_adds_no_query_to_intake(client, partner_key):
    submit(client, partner_key)  # compiles the vertical's rules once
    with CaptureQueriesContext(connection) as scored:
        submit(client, partner_key, email="second@example.com")
    ScoringRule.objects.all().delete()
    submit(client, partner_key, email="third@example.com")  # compiles: nothing to score with
    with CaptureQueriesContext(connection) as unscored:
        submit(client, partner_key, email="fourth@example.com")

    assert Lead.objects.get(email="second@example.com").score is not None
    assert Lead.objects.get(email="fourth@example.com").score is None
    assert len(scored.captured_queries) == len(unscored.captured_queries)
    assert not [q for q in scored.captured_queries if "scoringrule" in q["sql"]]


def test_the_lead_page_shows_the_score_and_each_rule_that_fired(admin_client, client, partner_key):
    answer = submit(client, partner_key)

    html = admin_client.get(
        reverse("admin:leads_lead_change", args=[answer["id"]])
    ).content.decode()

    assert "<strong>65</strong> · Warm (Warm 60-79)" in html
    assert "Good credit" in html
    assert "credit_rating is &#x27;good&#x27;" in html
    assert "+20 points" in html
    assert "65 points × 1 = 65" in html


def test_the_lead_list_shows_and_filters_by_tier(admin_client, client, partner_key):
    submit(client, partner_key)
    submit(client, partner_key, email="cold@example.com", credit_rating="poor", vehicle_year=2001)

    listing = admin_client.get(reverse("admin:leads_lead_changelist"), {"tier": "warm"})

    assert listing.status_code == 200
    assert [lead.tier for lead in listing.context["cl"].result_list] == [Tier.WARM]
    assert "65 Warm" in listing.content.decode()


def test_the_demo_verticals_come_with_scoring_rules(db):
    from simulator.demo import demo_load

    demo_load(simulator_url="http://127.0.0.1:9555", password="pw-for-tests-only-1234")

    auto, solar = Vertical.objects.get(slug="auto-insurance"), Vertical.objects.get(slug="solar")
    assert auto.scoring_rules.count() >= 5
    assert solar.scoring_rules.filter(kind=RuleKind.BOOST, source__isnull=False).exists()
    for vertical in (auto, solar):
        for row in vertical.scoring_rules.all():
            row.full_clean()
    assert auto.floor_hot == D("25.00")
    # The README's example: 25 + 20 + 10 = 55 points, x 1.15 from the call centre = 63.25.
    lead = {"homeowner": True, "monthly_electric_bill": 180, "roof_shade": "partial_shade"}
    keystone = Source.objects.get(name="Keystone Contact Center")
    result = score_lead(vertical_scorecard(solar), lead, source_id=keystone.pk)
    assert result is not None
    assert (result.points, result.score, result.tier) == (55, 63, Tier.WARM)


def test_rules_may_name_the_zip_enrichment_and_a_verticals_own_field_wins():
    fields = known_fields([("state", FieldType.STRING, [])])

    assert fields["state"] == KnownField(FieldType.STRING)  # the vertical's own type wins
    assert fields["county"] == KnownField("string")


# --- Contract criteria on the score and tier -----------------------------------------------------


@pytest.mark.parametrize(
    ("field", "operator", "value", "error"),
    [
        ("tier", "in", "hot, warm", None),
        ("tier", "eq", "Hot", None),
        ("tier", "in", "hot, boiling", ("value", "boiling: not a tier")),
        ("tier", "gte", "warm", ("operator", "A tier is a word")),
        ("score", "gte", "70", None),
        ("score", "between", "40, 79", None),
        ("score", "gte", "170", ("value", "170: a score is from 0 to 100.")),
        ("score", "regex", "^9", ("operator", "A score is a number from 0 to 100")),
        ("credit_rating", "gte", "good", ("value", "Give a number.")),
    ],
)
def test_a_contract_criterion_on_the_score_or_tier_is_checked_as_such(
    field, operator, value, error
):
    form = FieldCriterionForm(data={"field": field, "operator": operator, "value": value})

    if error is None:
        assert form.is_valid(), form.errors
    else:
        assert not form.is_valid()
        name, message = error
        assert message in " ".join(form.errors[name]), form.errors
