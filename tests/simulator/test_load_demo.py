from __future__ import annotations

import io
import re

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.test import RequestFactory

from buyers.models import (
    AuthType,
    Contract,
    ContractStatus,
    DeliveryEndpoint,
    EndpointKind,
    FieldMapping,
    PriceModel,
    TerritoryKind,
    TerritoryMode,
    TerritoryRule,
)
from leads.models import DistributionMode, FieldType, PayoutModel, Source, Vertical
from leads.services import source_api_key_authenticate
from simulator.demo import AUTO, DEFAULT_PASSWORD, SOLAR

pytestmark = pytest.mark.django_db

SIMULATOR = "http://127.0.0.1:9555"
FULL_KEY = re.compile(r"lsk_[A-Za-z0-9_-]{40,}")


def load_demo(*args: str) -> str:
    out = io.StringIO()
    call_command("load_demo", "--simulator-url", SIMULATOR, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def row_counts() -> dict[str, int]:
    models = [
        model
        for label in ("leads", "buyers", "routing")
        for model in apps.get_app_config(label).get_models()
    ]
    counts = {model._meta.label: model.objects.count() for model in [*models, User, Group]}
    counts["Source.verticals"] = Source.verticals.through.objects.count()
    counts["Group.permissions"] = Group.permissions.through.objects.count()
    counts["User.groups"] = User.groups.through.objects.count()
    return counts


def test_it_creates_both_verticals_with_real_world_schemas():
    load_demo()

    auto = Vertical.objects.get(slug=AUTO)
    solar = Vertical.objects.get(slug=SOLAR)
    auto_fields = {f.name: f for f in auto.fields.all()}
    solar_fields = {f.name: f for f in solar.fields.all()}
    assert 18 <= len(auto_fields) <= 22
    assert len(solar_fields) >= 14
    for fields in (auto_fields, solar_fields):
        for name in ("first_name", "last_name", "email", "phone", "street_address"):
            assert fields[name].is_pii
            assert not fields[name].in_ping
        assert fields["zip_code"].in_ping
        assert fields["zip_code"].field_type == FieldType.ZIP
    vehicle_year = auto_fields["vehicle_year"]
    assert (vehicle_year.field_type, vehicle_year.min_value, vehicle_year.max_value) == (
        FieldType.INTEGER,
        1981,
        2027,
    )
    assert vehicle_year.required
    assert auto_fields["date_of_birth"].is_pii
    assert auto_fields["credit_rating"].choices == ["excellent", "good", "fair", "poor"]
    bill = solar_fields["monthly_electric_bill"]
    assert (bill.field_type, bill.min_value, bill.max_value) == (FieldType.DECIMAL, 0, 2000)
    positions = list(auto.fields.values_list("position", flat=True))
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions)

    assert (auto.distribution_mode, auto.max_buyers) == (DistributionMode.AUCTION, 1)
    assert (solar.distribution_mode, solar.max_buyers) == (DistributionMode.PRIORITY, 3)
    for vertical in (auto, solar):
        assert vertical.duplicate_fields == ["email", "phone"]
        assert vertical.duplicate_lookback_days == 30


def test_every_contract_points_at_the_given_simulator():
    load_demo()

    contracts = Contract.objects.select_related("buyer").prefetch_related("endpoints")
    assert Contract.objects.values("buyer").distinct().count() >= 6
    assert {c.vertical.slug for c in contracts} == {AUTO, SOLAR}
    for contract in contracts:
        endpoints = {e.kind: e for e in contract.endpoints.all()}
        assert endpoints[EndpointKind.POST].url.startswith(f"{SIMULATOR}/post?")
        if contract.price_model == PriceModel.PING_POST:
            assert endpoints[EndpointKind.PING].url.startswith(f"{SIMULATOR}/ping?")
        else:
            assert contract.fixed_price is not None
            assert EndpointKind.PING not in endpoints
    assert {c.price_model for c in contracts} == set(PriceModel.values)
    assert len({c.buyer.time_zone for c in contracts}) >= 5


def test_the_contracts_show_every_kind_of_rule():
    load_demo()

    contracts = Contract.objects.all()
    assert contracts.filter(exclusive=True).exists()
    assert contracts.filter(exclusive=False).exists()
    assert contracts.filter(accepts_test_leads=True).exists()
    paused = contracts.get(status=ContractStatus.PAUSED)
    assert paused.paused_reason
    assert contracts.filter(schedule__isnull=False).distinct().exists()
    assert contracts.filter(caps__period="hour").exists()
    radius = TerritoryRule.objects.get(kind=TerritoryKind.RADIUS)
    assert (radius.value_list, radius.radius_miles) == (["80202"], 100)
    assert TerritoryRule.objects.filter(kind=TerritoryKind.ZIPS).exists()
    assert TerritoryRule.objects.filter(mode=TerritoryMode.EXCLUDE).exists()
    assert contracts.filter(criteria__field="homeowner", criteria__operator="eq").exists()
    assert contracts.filter(mappings__isnull=False).distinct().count() >= 2
    assert FieldMapping.objects.exclude(static_value="").exists()
    assert FieldMapping.objects.exclude(value_map={}).exists()
    assert FieldMapping.objects.filter(transform__startswith="phone_").exists()
    assert FieldMapping.objects.filter(transform__startswith="date_").exists()
    basic = DeliveryEndpoint.objects.get(auth_type=AuthType.BASIC)
    assert basic.auth_secret  # decrypted on read: stored encrypted
    assert DeliveryEndpoint.objects.filter(auth_type=AuthType.HEADER).exists()


def test_each_vertical_has_a_contract_open_around_the_clock():
    load_demo()

    for slug in (AUTO, SOLAR):
        always_open = Contract.objects.filter(
            vertical__slug=slug, status=ContractStatus.ACTIVE, schedule__isnull=True
        )
        assert always_open.exists(), slug
    # At least half of all contracts are open at any hour, so the demo sells.
    total = Contract.objects.count()
    open_always = Contract.objects.filter(
        status=ContractStatus.ACTIVE, schedule__isnull=True
    ).count()
    assert open_always * 2 >= total


def test_it_prints_each_source_key_once_and_the_keys_work():
    first = load_demo()

    keys = FULL_KEY.findall(first)
    assert len(keys) == 3
    sources = {source_api_key_authenticate(raw_key=key).source for key in keys}
    assert sources == set(Source.objects.all())
    assert "copy it now" in first

    second = load_demo()

    assert not FULL_KEY.findall(second)
    for key in keys:
        assert key[:12] in second
    assert "Mint API key" in second
    assert "create_source" in second


def test_only_the_revenue_share_source_sees_the_buyers_price_it_is_paid_a_share_of():
    load_demo()

    assert list(
        Source.objects.filter(sees_buyer_price=True).values_list("name", "payout_model")
    ) == [("ClickRiver Affiliates", PayoutModel.REVENUE_SHARE)]


def test_running_it_twice_creates_nothing_new():
    load_demo()
    before = row_counts()
    keys_before = set(
        apps.get_model("leads", "SourceApiKey").objects.values_list("hashed_key", flat=True)
    )

    output = load_demo()

    assert row_counts() == before
    assert (
        set(apps.get_model("leads", "SourceApiKey").objects.values_list("hashed_key", flat=True))
        == keys_before
    )
    assert "nothing created" in output


def test_it_leaves_what_ops_changed_alone():
    load_demo()
    contract = Contract.objects.filter(schedule__isnull=True).first()
    contract.floor_price = 99
    contract.save()
    contract.caps.all().delete()
    admin = User.objects.get(username="admin")
    admin.set_password("changed-by-the-admin")
    admin.save()

    load_demo()

    contract.refresh_from_db()
    assert contract.floor_price == 99
    assert not contract.caps.exists()
    assert User.objects.get(username="admin").check_password("changed-by-the-admin")


def test_every_demo_row_passes_model_validation():
    load_demo()

    for label in ("leads", "buyers", "routing"):
        for model in apps.get_app_config(label).get_models():
            if model.__name__.startswith("Historical"):  # history rows are not edited
                continue
            for obj in model.objects.all():
                obj.full_clean()
    for model in (User, Group):
        for obj in model.objects.all():
            obj.full_clean()


# The login throttle (django-axes) judges each login by its request, which Client.login lacks.
LOGIN_REQUEST = RequestFactory().post("/admin/login/")


def test_the_demo_users_sign_in_with_the_printed_password(client):
    output = load_demo()

    assert DEFAULT_PASSWORD in output
    assert "/admin/" in output
    for username in ("admin", "ops", "sales"):
        assert client.login(request=LOGIN_REQUEST, username=username, password=DEFAULT_PASSWORD), (
            username
        )
    admin = User.objects.get(username="admin")
    assert admin.is_superuser
    assert admin.is_staff
    ops = User.objects.get(username="ops")
    sales = User.objects.get(username="sales")
    assert ops.is_staff
    assert not ops.is_superuser
    assert list(ops.groups.values_list("name", flat=True)) == ["Ops"]
    assert sales.is_staff
    assert not sales.is_superuser
    assert list(sales.groups.values_list("name", flat=True)) == ["Sales"]


def test_ops_manage_everything_but_cannot_delete_leads_and_sales_only_view_no_pii():
    load_demo()
    ops = User.objects.get(username="ops")
    sales = User.objects.get(username="sales")

    assert ops.has_perm("buyers.change_contract")
    assert ops.has_perm("buyers.delete_contract")
    assert ops.has_perm("leads.add_source")
    assert ops.has_perm("leads.change_lead")
    assert not ops.has_perm("leads.delete_lead")
    assert not ops.has_perm("auth.change_user")
    # Leads and attempts hold consumers' personal data: Sales see neither.
    # Leads and attempts are shown to Sales with personal data masked.
    assert sales.has_perm("leads.view_lead")
    assert sales.has_perm("routing.view_attempt")
    assert not sales.has_perm("reporting.view_unmasked_pii")
    assert sales.has_perm("routing.view_sale")
    assert not sales.has_perm("buyers.change_contract")
    assert all(p.split(".", 1)[1].startswith("view_") for p in sales.get_all_permissions())


def test_the_password_comes_from_the_option_then_the_environment(client, monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "from-the-environment-42")
    output = load_demo()

    assert "from-the-environment-42" in output
    assert client.login(request=LOGIN_REQUEST, username="ops", password="from-the-environment-42")

    load_demo("--password", "from-the-option-42")

    assert client.login(request=LOGIN_REQUEST, username="ops", password="from-the-environment-42")

    output = load_demo("--password", "from-the-option-42", "--reset-passwords")

    assert "from-the-option-42" in output
    for username in ("admin", "ops", "sales"):
        assert client.login(
            request=LOGIN_REQUEST, username=username, password="from-the-option-42"
        ), username


def test_a_bad_simulator_url_is_refused_and_nothing_is_kept():
    with pytest.raises(CommandError, match="url"):
        call_command("load_demo", "--simulator-url", "not a url", stdout=io.StringIO())

    assert not Vertical.objects.exists()
    assert not User.objects.exists()
