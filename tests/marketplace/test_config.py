"""Configuration as code through its command: `manage.py config export` and `config import`."""

from __future__ import annotations

import io
import json
import re
import tempfile
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase as HypothesisTestCase

from buyers.models import (
    AuthType,
    BuyerCap,
    CapPeriod,
    ClosedDate,
    Contract,
    ContractCap,
    ContractSecret,
    ContractStatus,
    DeliveryMethod,
    EndpointKind,
    FieldCriterion,
    FieldMapping,
    PriceModel,
    ResponseRule,
    ScheduleWindow,
    SourceFilter,
    TerritoryKind,
    TerritoryMode,
    TerritoryRule,
)
from leads.models import (
    FieldType,
    KeyLocation,
    Lead,
    PostingFormat,
    ScoringRule,
    Source,
    SuppressionList,
    Vertical,
)
from leads.scoring import RuleKind, score_lead
from leads.selectors import clear_field_specs_cache, vertical_scorecard
from marketplace.kinds import SECTIONS
from notifications.models import NotificationChannel, NotificationKind, NotificationSubscription
from routing.selectors import explain
from teams.models import Team
from tests.buyers.factories import (
    BuyerFactory,
    ContractCapFactory,
    ContractFactory,
    DeliveryEndpointFactory,
)
from tests.leads.factories import (
    LeadFactory,
    PostingProfileFactory,
    SourceFactory,
    VerticalFactory,
    VerticalFieldFactory,
)
from tests.teams.factories import TeamFactory, TeamMemberFactory

pytestmark = pytest.mark.django_db

PLACEHOLDER = re.compile(r"\$\{(LEADSWITCH_SECRET_[A-Z0-9_]+)\}")
SLACK_URL = "https://hooks.slack.com/services/T000/B000/team-webhook-secret-0001"
OPS_SLACK_URL = "https://hooks.slack.com/services/T000/B000/ops-webhook-secret-0002"
AUTH_SECRET = "post-password-secret-0003"
API_KEY_SECRET = "api-key-secret-0004"


def export(*args: str) -> str:
    out = io.StringIO()
    call_command("config", "export", *args, stdout=out)
    return out.getvalue()


def config_import(tmp_path: Path, text: str, *args: str, name: str = "marketplace.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    out = io.StringIO()
    call_command("config", "import", str(path), *args, stdout=out)
    return out.getvalue()


def load_demo() -> None:
    call_command(
        "load_demo", "--simulator-url", "http://127.0.0.1:9555", stdout=io.StringIO(),
        stderr=io.StringIO(),
    )  # fmt: skip


def wipe_configuration() -> None:
    """Leave the database as a new installation's: no configuration (users stay)."""
    ScoringRule.objects.all().delete()  # they may name a source, which protects them
    for kind in reversed(SECTIONS):
        kind.model.objects.all().delete()


def fill_placeholders(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    # Slack's webhook URLs are checked as such; any other secret takes any text.
    for variable in set(PLACEHOLDER.findall(text)):
        monkeypatch.setenv(variable, f"https://hooks.slack.com/services/T1/B1/{variable[-12:]}")


def row_counts() -> dict[str, int]:
    counts = {}
    for kind in SECTIONS:
        for k in (kind, *kind.children):
            counts[k.model.__name__] = k.model.objects.count()
            history = getattr(k.model, "history", None)
            if history is not None:
                counts[f"{k.model.__name__} history"] = history.count()
    return counts


def every_kind_of_part() -> None:
    """A marketplace with one of everything the file carries."""
    ops = User.objects.create_user("ana", email="ana@leadswitch.example", is_staff=True)
    vertical = VerticalFactory(slug="auto", name="Auto", duplicate_fields=["email"])
    VerticalFieldFactory(vertical=vertical, name="email", field_type=FieldType.EMAIL, is_pii=True)
    VerticalFieldFactory(
        vertical=vertical,
        name="credit",
        field_type=FieldType.CHOICE,
        choices=["good", "poor"],
        in_ping=True,
    )
    VerticalFieldFactory(
        vertical=vertical,
        name="age",
        field_type=FieldType.INTEGER,
        min_value=Decimal("18"),
        max_value=Decimal("99"),
    )
    source = SourceFactory(name="Acme Media", verticals=[vertical])
    PostingProfileFactory(
        source=source,
        format=PostingFormat.FLAT_JSON,
        default_vertical=vertical,
        key_location=KeyLocation.HEADER,
        key_name="X-API-Key",
        aliases={"Mail": "email", "Credit": "credit"},
        value_maps={"credit": {"G": "good", "P": "poor"}},
    )
    ScoringRule.objects.create(
        vertical=vertical, name="Good credit", kind=RuleKind.MATCH, field="credit", values="good",
        points=20,
    )  # fmt: skip
    ScoringRule.objects.create(
        vertical=vertical, name="Acme boost", kind=RuleKind.BOOST, multiplier=Decimal("1.10"),
        source=source,
    )  # fmt: skip
    SuppressionList.objects.create(name="Do not call", description="Litigators")
    buyer = BuyerFactory(company="Summit Mutual", consent_names="Summit, SMI")
    BuyerCap.objects.create(buyer=buyer, period=CapPeriod.MONTH, max_budget=Decimal("9000"))
    team = TeamFactory(name="Inside sales", slack_webhook_url=SLACK_URL)
    TeamMemberFactory(team=team, user=ops, name="", email="", slack_user_id="U012AB3CD")
    TeamMemberFactory(team=team, name="Bo", working_hours="Mon-Fri 09:00-17:00", capacity=2)
    contract = ContractFactory(
        buyer=buyer,
        vertical=vertical,
        name="Exclusive",
        source_filter=SourceFilter.ALLOW,
        refuse_bought_within_days=30,
        max_return_rate=Decimal("12.5"),
        status=ContractStatus.PAUSED,
        paused_reason="Waiting for the buyer's go",
    )
    contract.sources.add(source)
    ContractCapFactory(contract=contract, period=CapPeriod.DAY, max_leads=50)
    ContractCapFactory(contract=contract, period=CapPeriod.WEEK, max_budget=Decimal("2500.5"))
    ScheduleWindow.objects.create(
        contract=contract, weekday=0, opens_at=time(9), closes_at=time(17, 30)
    )
    ClosedDate.objects.create(contract=contract, date=date(2026, 12, 25), note="Christmas")
    TerritoryRule.objects.create(
        contract=contract, mode=TerritoryMode.INCLUDE, kind=TerritoryKind.STATES, values="IL\nWI"
    )
    TerritoryRule.objects.create(
        contract=contract, mode=TerritoryMode.EXCLUDE, kind=TerritoryKind.ZIPS, values="60601"
    )
    FieldCriterion.objects.create(contract=contract, field="age", operator="gte", value="21")
    FieldCriterion.objects.create(contract=contract, field="tier", operator="in", value="hot")
    ContractSecret.objects.create(contract=contract, name="api_key", value=API_KEY_SECRET)
    DeliveryEndpointFactory(
        contract=contract,
        kind=EndpointKind.PING,
        url="http://127.0.0.1:9100/ping",
        headers={"X-Api-Key": "{{ secrets.api_key }}", "X-Partner": "ls"},
        query={"src": "leadswitch"},
    )
    DeliveryEndpointFactory(
        contract=contract,
        auth_type=AuthType.BASIC,
        auth_username="leadswitch",
        auth_secret=AUTH_SECRET,
        read_timeout_ms=2500,
    )
    FieldMapping.objects.create(
        contract=contract, position=1, source_field="credit", target_field="Credit",
        value_map={"good": "G", "poor": "P"},
    )  # fmt: skip
    FieldMapping.objects.create(
        contract=contract, position=2, static_value="LS-1", target_field="Vendor"
    )
    ResponseRule.objects.create(contract=contract, kind=EndpointKind.PING, captures={"bid": "id"})
    ContractFactory(
        buyer=buyer,
        vertical=vertical,
        name="To the team",
        price_model=PriceModel.FIXED,
        fixed_price=Decimal("0"),
        delivery_method=DeliveryMethod.TEAM,
        team=team,
    )
    NotificationSubscription.objects.create(
        name="Ops Slack",
        channel=NotificationChannel.SLACK,
        slack_webhook_url=OPS_SLACK_URL,
        kinds=[NotificationKind.BUYER_PAUSED, NotificationKind.CAP_REACHED],
        contract=contract,
        buyer=buyer,
    )
    NotificationSubscription.objects.create(
        name="Ana: sources",
        channel=NotificationChannel.EMAIL,
        user=ops,
        kinds=[NotificationKind.SOURCE_ERROR_RATE],
        source=source,
        rate_window_minutes=30,
        dedup_minutes=120,
    )


def round_trip(tmp_path, monkeypatch, fmt: str) -> tuple[str, str]:
    first = export("--format", fmt)
    fill_placeholders(monkeypatch, first)
    wipe_configuration()
    config_import(tmp_path, first, "--reason", "round trip", name=f"marketplace.{fmt}")
    return first, export("--format", fmt)


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_the_demo_marketplace_round_trips_byte_for_byte(tmp_path, monkeypatch, fmt):
    load_demo()
    first, second = round_trip(tmp_path, monkeypatch, fmt)
    assert second == first
    assert Contract.objects.count() == first.count('"buyer":' if fmt == "json" else "- buyer:")


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_a_marketplace_with_every_kind_of_part_round_trips(tmp_path, monkeypatch, fmt):
    every_kind_of_part()
    first, second = round_trip(tmp_path, monkeypatch, fmt)
    assert second == first
    document = json.loads(first) if fmt == "json" else yaml.safe_load(first)
    (contract,) = [c for c in document["contracts"] if c["name"] == "Exclusive"]
    assert {key: len(contract[key]) for key in ("caps", "schedule", "territory", "criteria")} == {
        "caps": 2, "schedule": 1, "territory": 2, "criteria": 2,
    }  # fmt: skip
    assert contract["sources"] == ["Acme Media"]
    assert contract["status"] == "paused"
    assert Contract.objects.get(name="Exclusive").paused_at is not None  # as contract_pause
    members = document["teams"][0]["members"]
    assert [(m["user"], m["name"]) for m in members] == [("ana", ""), (None, "Bo")]
    assert document["sources"][0]["posting_profile"]["default_vertical"] == "auto"
    assert document["notification_subscriptions"][1]["contract"] == {
        "buyer": "Summit Mutual", "vertical": "auto", "name": "Exclusive",
    }  # fmt: skip


def test_secrets_are_never_exported_and_placeholders_are_filled_from_the_environment(
    tmp_path, monkeypatch
):
    every_kind_of_part()
    text = export()
    for secret in (SLACK_URL, OPS_SLACK_URL, AUTH_SECRET, API_KEY_SECRET, "webhook-secret"):
        assert secret not in text
    assert export("--format", "json").count("${LEADSWITCH_SECRET_") == 4
    variable = "LEADSWITCH_SECRET_CONTRACT_SUMMIT_MUTUAL_AUTO_EXCLUSIVE_API_KEY_VALUE"
    assert f"${{{variable}}}" in text

    # Unset, or set but empty (a deploy that lost it): the stored secret stays.
    out = config_import(tmp_path, text, "--reason", "no change")
    assert "0 changed" in out
    assert ContractSecret.objects.get().value == API_KEY_SECRET
    monkeypatch.setenv(variable, "")
    assert "0 changed" in config_import(tmp_path, text, "--reason", "no change")
    assert ContractSecret.objects.get().value == API_KEY_SECRET

    monkeypatch.setenv(variable, "rotated-key")
    out = config_import(tmp_path, text, "--reason", "rotate the key", "--dry-run")
    assert f"value: •••• -> ${{{variable}}}" in out
    assert "rotated-key" not in out
    assert ContractSecret.objects.get().value == API_KEY_SECRET
    config_import(tmp_path, text, "--reason", "rotate the key")
    assert ContractSecret.objects.get().value == "rotated-key"


def test_a_new_secret_without_its_variable_is_a_clear_error(tmp_path):
    every_kind_of_part()
    text = export()
    wipe_configuration()
    with pytest.raises(CommandError) as error:
        config_import(tmp_path, text, "--reason", "new installation")
    message = str(error.value)
    assert (
        "contracts[0].secrets[0].value: set the environment variable "
        "LEADSWITCH_SECRET_CONTRACT_SUMMIT_MUTUAL_AUTO_EXCLUSIVE_API_KEY_VALUE" in message
    )
    assert "nothing was changed" in message
    assert Vertical.objects.count() == 0


def test_a_literal_secret_in_the_file_is_refused(tmp_path):
    every_kind_of_part()
    text = export().replace(
        "${LEADSWITCH_SECRET_TEAM_INSIDE_SALES_SLACK_WEBHOOK_URL}", "https://hooks.slack.com/x"
    )
    with pytest.raises(CommandError, match=r"teams\[0\]\.slack_webhook_url: secrets are never"):
        config_import(tmp_path, text, "--reason", "literal")


def edited_demo() -> dict:
    document = yaml.safe_load(export())
    contracts = {c["name"]: c for c in document["contracts"]}
    midwest = contracts["Auto - Midwest exclusive"]
    midwest["floor_price"] = "20.00"
    midwest["caps"] = [c for c in midwest["caps"] if c["period"] != "week"]
    midwest["caps"].append({"period": "month", "max_leads": 900, "max_budget": None})
    midwest["territory"][0]["values"] = "IL\nIN"
    document["contracts"] = [
        c for c in document["contracts"] if c["name"] != "Solar - Denver metro direct post"
    ]
    document["suppression_lists"].append({"name": "Litigators", "description": "", "active": True})
    return document


def dump(document: dict) -> str:
    return yaml.safe_dump(document, sort_keys=False)


def test_a_dry_run_shows_the_diff_and_changes_nothing(tmp_path, monkeypatch):
    load_demo()
    before = row_counts()
    out = config_import(tmp_path, dump(edited_demo()), "--reason", "try", "--dry-run")
    midwest = "contracts[5] Summit Mutual Insurance / auto-insurance / Auto - Midwest exclusive"
    assert f"~ {midwest}: changed\n    floor_price: 15.00 -> 20.00\n" in out
    assert "+ contracts[5].caps[1] month: created" in out
    assert "= contracts[5].caps week: left alone (not in the file)" in out
    assert (
        "~ contracts[5].territory 1 territory rules: changed\n    territory: "
        'mode="include" kind="states" values="IL\\nIN\\nWI\\nMI\\nOH\\nMN\\nIA\\nMO" '
        'radius_miles=null -> mode="include" kind="states" values="IL\\nIN" radius_miles=null\n'
    ) in out
    assert "+ suppression_lists[0] Litigators: created" in out
    assert (
        "= contracts Rocky Mountain Solar Co. / solar / Solar - Denver metro direct post: "
        "left alone (not in the file)" in out
    )
    assert "= verticals[0] auto-insurance: left alone (unchanged)" in out
    assert out.endswith(
        "Dry run, nothing changed: 2 created, 2 changed, 0 deleted, 18 unchanged, "
        "2 not in the file and left alone.\n"
    )
    assert row_counts() == before
    assert Contract.objects.get(name="Auto - Midwest exclusive").floor_price == Decimal("15.00")


def test_prune_deletes_what_the_file_leaves_out(tmp_path):
    load_demo()
    out = config_import(tmp_path, dump(edited_demo()), "--reason", "tidy", "--prune")
    assert (
        "- contracts Rocky Mountain Solar Co. / solar / Solar - Denver metro direct post: deleted"
        in out
    )
    assert "- contracts[5].caps week: deleted" in out
    assert not Contract.objects.filter(name="Solar - Denver metro direct post").exists()
    midwest = Contract.objects.get(name="Auto - Midwest exclusive")
    assert sorted(midwest.caps.values_list("period", flat=True)) == ["day", "month"]
    assert midwest.floor_price == Decimal("20.00")
    assert list(midwest.territory.values_list("values", flat=True)) == ["IL\nIN"]
    assert SuppressionList.objects.get().name == "Litigators"


def test_a_contract_paused_or_resumed_by_a_file_is_as_its_services_leave_it(tmp_path):
    load_demo()
    document = yaml.safe_load(export())
    (paused,) = [c for c in document["contracts"] if c["status"] == "paused"]
    paused |= {"status": "active", "paused_reason": ""}
    config_import(tmp_path, dump(document), "--reason", "resume")
    contract = Contract.objects.get(name=paused["name"])
    assert (contract.status, contract.paused_reason, contract.paused_at) == ("active", "", None)

    paused["status"] = "paused"
    with pytest.raises(CommandError, match=r"contracts\[\d\]\.paused_reason: Say why"):
        config_import(tmp_path, dump(document), "--reason", "pause")


def test_history_carries_the_reason_and_the_user(tmp_path):
    load_demo()
    admin = User.objects.get(username="admin")
    config_import(
        tmp_path, dump(edited_demo()), "--reason", "Q1 prices", "--as", "admin", "--prune"
    )
    contract = Contract.objects.get(name="Auto - Midwest exclusive")
    latest = contract.history.latest()
    assert (latest.history_change_reason, latest.history_user) == ("Q1 prices", admin)
    cap = ContractCap.history.filter(contract_id=contract.pk, period="month").get()
    assert cap.history_change_reason == "Q1 prices"
    deleted = ContractCap.history.filter(contract_id=contract.pk, period="week", history_type="-")
    assert deleted.get().history_change_reason == "Q1 prices"


def test_an_error_in_the_last_object_leaves_the_database_untouched(tmp_path):
    load_demo()
    before = row_counts()
    document = edited_demo()
    document["suppression_lists"][-1]["name"] = ""
    with pytest.raises(
        CommandError, match=r"suppression_lists\[0\]\.name: This field cannot be blank"
    ):
        config_import(tmp_path, dump(document), "--reason", "bad", "--prune")
    assert row_counts() == before


def test_every_problem_is_reported_at_once_with_its_path(tmp_path):
    load_demo()
    document = yaml.safe_load(export())
    document["contracts"][3]["caps"][0]["period"] = "fortnight"
    document["contracts"][4]["buyer"] = "Nobody Inc"
    document["contracts"][5]["colour"] = "blue"
    document["contracts"][6]["floor_price"] = "cheap"
    document["contracts"][7]["territory"][0]["values"] = "XX"
    document["verticals"][0]["fields"][0]["name"] = "Bad Name"
    document["sources"].append(dict(document["sources"][0]))
    with pytest.raises(CommandError) as error:
        config_import(tmp_path, dump(document), "--reason", "bad")
    message = str(error.value)
    for expected in (
        "contracts[3].caps[0].period: Value 'fortnight' is not a valid choice.",
        "contracts[4].buyer: no buyer 'Nobody Inc', stored or in the file.",
        "contracts[5].colour: unknown key",
        "contracts[6].floor_price: “cheap” value must be a decimal number.",
        "contracts[7].territory[0].values: Not US states (codes or names): XX",
        "verticals[0].fields[0].name: Use lower-case letters",
        "sources[3]: the same source as sources[0].",
    ):
        assert expected in message
    assert message.startswith("7 problem(s); nothing was changed:")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("verticals: [", "Not valid YAML"),
        ("- a list", "The file must hold a mapping of sections"),
        ("leadswitch: 2\n", "first key must be `leadswitch: 1`"),
        ("leadswitch: 1\nbuyerz: []\n", "buyerz: unknown section"),
        ("leadswitch: 1\nbuyers: {company: x}\n", "buyers: give a list of buyers."),
    ],
)
def test_a_bad_file_is_a_clear_error(tmp_path, text, expected):
    with pytest.raises(CommandError, match=re.escape(expected)):
        config_import(tmp_path, text, "--reason", "bad")


def test_a_bad_command_line_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("config", "import", str(tmp_path / "missing.yaml"), "--reason", "x")
    with pytest.raises(CommandError, match="No user 'ghost'"):
        config_import(tmp_path, "leadswitch: 1\n", "--reason", "x", "--as", "ghost")
    with pytest.raises(CommandError, match="invalid choice: 'xml'"):
        export("--format", "xml")
    with pytest.raises(CommandError, match="No vertical nope"):
        export("--vertical", "nope")


def test_an_export_of_some_verticals_cannot_be_pruned(tmp_path):
    load_demo()
    text = export("--vertical", "solar")
    document = yaml.safe_load(text)
    assert [v["slug"] for v in document["verticals"]] == ["solar"]
    assert {c["vertical"] for c in document["contracts"]} == {"solar"}
    assert "Applied: 0 created, 0 changed, 0 deleted" in config_import(
        tmp_path, text, "--reason", "same"
    )
    with pytest.raises(CommandError, match="scope: this file holds only some verticals"):
        config_import(tmp_path, text, "--reason", "prune", "--prune")


def test_an_ambiguous_name_is_an_error_not_a_guess(tmp_path):
    every_kind_of_part()
    NotificationSubscription.objects.create(
        name="Ops Slack", channel=NotificationChannel.EMAIL, email="ops@leadswitch.example",
        kinds=[NotificationKind.LEADS_STUCK],
    )  # fmt: skip
    with pytest.raises(CommandError, match="two notification subscriptions are both named"):
        export()


def test_members_without_an_account_who_share_a_name_are_an_error_on_import(tmp_path):
    every_kind_of_part()
    text = export()
    TeamMemberFactory(team=Team.objects.get(), name="Bo")
    with pytest.raises(CommandError, match=r"teams\[0\]\.members\[1\]: 2 stored team members"):
        config_import(tmp_path, text, "--reason", "which Bo?")


def test_routing_sees_an_imported_change_at_once(tmp_path, settings):
    # Compiled rules kept per process as in production; the version asked at every lead.
    settings.ELIGIBILITY_RULES_TTL = 60
    vertical = VerticalFactory(slug="home")
    contract = ContractFactory(vertical=vertical, name="Everywhere", deliverable=True)
    lead = LeadFactory(vertical=vertical, state="IL")
    assert [v.eligible for v in explain(lead)] == [True]
    document = yaml.safe_load(export())
    document["contracts"][0]["territory"] = [
        {"mode": "include", "kind": "states", "values": "WI", "radius_miles": None}
    ]
    config_import(tmp_path, dump(document), "--reason", "Wisconsin only")
    (verdict,) = explain(lead)
    assert not verdict.eligible
    assert contract.territory.get().values == "WI"


class TestGeneratedMarketplacesRoundTrip(HypothesisTestCase):
    """A generated marketplace (verticals with fields, buyers with caps and contracts) exports,
    imports into an empty database and exports again to the same text."""

    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(list(FieldType.values)),
                st.booleans(),
                st.integers(min_value=0, max_value=500),
            ),
            min_size=1,
            max_size=4,
        ),
        st.lists(
            st.tuples(
                st.sampled_from(list(CapPeriod.values)),
                st.one_of(st.none(), st.integers(min_value=0, max_value=10**6)),
                st.decimals(min_value=0, max_value=10**6, places=2),
            ),
            max_size=5,
            unique_by=lambda cap: cap[0],
        ),
        st.text(
            alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]),
            min_size=1,
            max_size=30,
        ),
    )
    def test_it_round_trips(self, fields, caps, company):
        vertical = VerticalFactory(duplicate_fields=[])
        for index, (field_type, required, length) in enumerate(fields):
            VerticalFieldFactory(
                vertical=vertical,
                name=f"f{index}",
                field_type=field_type,
                required=required,
                max_length=length or None,
                choices=["a", "b"] if field_type == FieldType.CHOICE else [],
            )
        buyer = BuyerFactory(company=company.strip() or "x", notes=company)
        contract = ContractFactory(
            buyer=buyer, vertical=vertical, status=ContractStatus.PAUSED, paused_reason=company
        )
        for period, leads, budget in caps:
            ContractCap.objects.create(
                contract=contract, period=period, max_leads=leads, max_budget=budget
            )
            BuyerCap.objects.create(buyer=buyer, period=period, max_leads=leads, max_budget=budget)
        first = export()
        wipe_configuration()
        with tempfile.TemporaryDirectory() as directory:
            config_import(Path(directory), first, "--reason", "generated")
        assert export() == first


# Leads of the demo's verticals, sources, states and consumers, each the exception to one
# contract's rule or another: (vertical, source, zip code, state, fields, minutes old, test).
DEMO_AUTO = {
    "date_of_birth": "1984-07-09", "gender": "female", "marital_status": "married",
    "homeowner": True, "currently_insured": True, "current_insurer": "geico",
    "continuous_coverage_months": 36, "vehicle_year": 2019, "vehicle_make": "Toyota",
    "vehicle_model": "Camry", "annual_mileage": 12000, "credit_rating": "excellent",
    "accidents_last_3_years": 0, "dui": False, "coverage_type": "standard",
}  # fmt: skip
DEMO_SOLAR = {
    "homeowner": True, "monthly_electric_bill": "220", "utility_provider": "APS",
    "roof_type": "asphalt_shingle", "roof_shade": "no_shade", "property_type": "single_family",
    "credit_score_range": "720_plus", "purchase_timeline": "within_3_months",
}  # fmt: skip
DEMO_LEADS = [
    ("auto-insurance", "BrightPath Media", "60614", "IL", DEMO_AUTO, 2, False),
    ("auto-insurance", "BrightPath Media", "60614", "IL", DEMO_AUTO, 40, False),
    (
        "auto-insurance",
        "ClickRiver Affiliates",
        "60614",
        "IL",
        {**DEMO_AUTO, "vehicle_year": 2003},
        2,
        False,
    ),
    ("auto-insurance", "ClickRiver Affiliates", "90012", "CA", DEMO_AUTO, 2, False),
    (
        "auto-insurance",
        "BrightPath Media",
        "90012",
        "CA",
        {**DEMO_AUTO, "credit_rating": "poor", "dui": True},
        2,
        False,
    ),
    ("auto-insurance", "BrightPath Media", "75201", "TX", DEMO_AUTO, 2, False),
    ("auto-insurance", "BrightPath Media", "77001", "TX", DEMO_AUTO, 2, True),
    ("auto-insurance", "ClickRiver Affiliates", "10001", "NY", DEMO_AUTO, 2, False),
    (
        "auto-insurance",
        "BrightPath Media",
        "48201",
        "MI",
        {**DEMO_AUTO, "homeowner": False},
        2,
        False,
    ),
    ("solar", "Keystone Contact Center", "85004", "AZ", DEMO_SOLAR, 2, False),
    (
        "solar",
        "BrightPath Media",
        "85004",
        "AZ",
        {**DEMO_SOLAR, "monthly_electric_bill": "80"},
        2,
        False,
    ),
    ("solar", "Keystone Contact Center", "80202", "CO", DEMO_SOLAR, 2, False),
    ("solar", "BrightPath Media", "80521", "CO", {**DEMO_SOLAR, "homeowner": False}, 2, False),
    ("solar", "Keystone Contact Center", "07102", "NJ", DEMO_SOLAR, 2, False),
    (
        "solar",
        "BrightPath Media",
        "07102",
        "NJ",
        {**DEMO_SOLAR, "credit_score_range": "below_620"},
        2,
        False,
    ),
    (
        "solar",
        "Keystone Contact Center",
        "73102",
        "OK",
        {**DEMO_SOLAR, "roof_shade": "full_shade"},
        2,
        True,
    ),
]
# A weekday's office hours, a Saturday morning, the small hours of a Sunday, Christmas Day.
DEMO_MOMENTS = [
    datetime(2026, 12, 7, 16, 0, tzinfo=UTC),
    datetime(2026, 12, 12, 17, 0, tzinfo=UTC),
    datetime(2026, 12, 13, 9, 0, tzinfo=UTC),
    datetime(2026, 12, 25, 18, 0, tzinfo=UTC),
]


def demo_eligibility_tables() -> list[tuple[Any, ...]]:
    """Score each demo lead and explain its routing at each moment, with the stored configuration:
    every verdict named by its buyer and contract (ids differ after an import)."""
    clear_field_specs_cache()
    tables = []
    for slug, source_name, zip_code, state, fields, minutes_old, is_test in DEMO_LEADS:
        vertical = Vertical.objects.get(slug=slug)
        source = Source.objects.get(name=source_name)
        data = {
            "first_name": "Ana", "last_name": "Lopez", "email": "ana@example.com",
            "phone": "+13125550147", "street_address": "1 Main St", **fields,
            "zip_code": zip_code, "state": state,
        }  # fmt: skip
        scored = score_lead(vertical_scorecard(vertical), data, source_id=source.pk)
        assert scored is not None
        score = (
            scored.score,
            scored.tier,
            [(f.rule, f.points, f.multiplier, f.why) for f in scored.fired],
        )
        for now in DEMO_MOMENTS:
            # Not saved: a lead is no configuration, and its vertical and source are replaced.
            lead = Lead(
                vertical=vertical, source=source, data=data, zip_code=zip_code, state=state,
                email=data["email"], phone=data["phone"], is_test=is_test,
                score=scored.score, tier=scored.tier,
                received_at=now - timedelta(minutes=minutes_old),
            )  # fmt: skip
            verdicts = sorted(
                (v.buyer_name, v.contract_name, v.eligible, v.rule, v.reason)
                for v in explain(lead, now=now)
            )
            tables.append((slug, source_name, zip_code, fields, is_test, now, score, verdicts))
    return tables


def test_the_demo_imported_into_an_empty_database_routes_every_lead_as_before(
    tmp_path, monkeypatch
):
    load_demo()
    before = demo_eligibility_tables()
    text = export()
    fill_placeholders(monkeypatch, text)

    wipe_configuration()
    for kind in SECTIONS:
        for k in (kind, *kind.children):
            assert not k.model.objects.exists(), k.model
    config_import(tmp_path, text, "--reason", "a new installation")
    after = demo_eligibility_tables()

    assert after == before
    # Not a table of refusals: the leads are sold and refused for every kind of reason.
    verdicts = [v for *_, table in before for v in table]
    assert all(len(table) == 4 for *_, table in before)  # each vertical's four contracts
    assert sum(eligible for _, _, eligible, _, _ in verdicts) >= 10
    assert {rule for _, _, _, rule, _ in verdicts} >= {
        "status", "test", "schedule", "age", "territory", "criteria",
    }  # fmt: skip
    assert len({score[0] for *_, score, _ in before}) >= 5


def test_schema_versions_and_the_versions_sources_post_in_round_trip(tmp_path, monkeypatch):
    from leads.models import SchemaPin
    from leads.services import schema_version_record

    every_kind_of_part()
    auto = Vertical.objects.get(slug="auto")
    VerticalFieldFactory(vertical=auto, name="zip_code", field_type=FieldType.ZIP, required=True)
    schema_version_record(vertical=auto)  # version 2; Acme Media stays on 1
    SourceFactory(name="Newcomer", verticals=[auto])  # on version 2

    first, second = round_trip(tmp_path, monkeypatch, "yaml")

    assert second == first
    document = yaml.safe_load(first)
    versions = document["verticals"][0]["schema_versions"]
    assert [(v["number"], v["summary"]) for v in versions] == [
        (1, "First version: 3 fields, 0 required."),
        (2, "Added required field zip_code (zip)."),
    ]
    pins = {s["name"]: s["schema_pins"] for s in document["sources"]}
    assert pins["Acme Media"] == [
        {"vertical": "auto", "schema_version": {"vertical": "auto", "number": 1}}
    ]
    assert sorted(SchemaPin.objects.values_list("source__name", "schema_version__number")) == [
        ("Acme Media", 1),
        ("Newcomer", 2),
    ]


def test_an_import_never_changes_a_stored_version(tmp_path):
    from leads.services import schema_version_record

    every_kind_of_part()
    schema_version_record(vertical=Vertical.objects.get(slug="auto"))
    document = yaml.safe_load(export())
    document["verticals"][0]["schema_versions"][0]["fields"].pop()

    with pytest.raises(
        CommandError, match=r"verticals\[0\]\.schema_versions\[0\]\.fields: .*frozen"
    ):
        config_import(tmp_path, yaml.safe_dump(document), "--reason", "rewrite history")

    stored = Vertical.objects.get(slug="auto").schema_versions.get()
    assert len(stored.fields) == 3


def test_a_version_an_import_makes_names_the_importing_user(tmp_path):
    from leads.services import schema_version_record
    from tests.staff import staff_user

    every_kind_of_part()
    schema_version_record(vertical=Vertical.objects.get(slug="auto"))
    zoe = staff_user("Ops", username="zoe")
    document = yaml.safe_load(export())
    document["verticals"][0]["fields"].append(
        {"name": "zip_code", "field_type": "zip", "required": True}
    )

    config_import(tmp_path, yaml.safe_dump(document), "--reason", "zips", "--as", "zoe")

    newest = Vertical.objects.get(slug="auto").schema_versions.order_by("number").last()
    assert (newest.number, newest.created_by) == (2, zoe)
