"""The contract page's tools: test pings and posts, previews, pause and resume, clone, ZIP lists.

Buyers are the project's simulator on 127.0.0.1; every request goes through the admin's URLs
with a logged-in user of the role under test.
"""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

from buyers.models import (
    AuthType,
    BuyerCap,
    CapCounter,
    CapPeriod,
    CapReservation,
    ClosedDate,
    Contract,
    ContractCap,
    ContractSecret,
    ContractStatus,
    DeliveryEndpoint,
    EndpointKind,
    FieldCriterion,
    FieldMapping,
    MappingApplies,
    ResponseRule,
    ScheduleWindow,
    TerritoryKind,
    TerritoryMode,
    TerritoryRule,
    Transform,
)
from buyers.services import contract_clone
from leads.models import FieldType
from routing.integration import sample_lead_data
from routing.models import Attempt, Auction, Sale
from routing.tools import contract_test_send
from tests.buyers.factories import BuyerFactory
from tests.leads.factories import VerticalFactory, VerticalFieldFactory
from tests.staff import staff_user

pytestmark = pytest.mark.django_db

SECRET = "tok-very-secret-123456"


def tool_url(contract: Contract, tool: str) -> str:
    return reverse(f"admin:buyers_contract_{tool}", args=[contract.pk])


def logged_in(role: str | None) -> Client:
    client = Client()
    client.force_login(staff_user(role))
    return client


@pytest.fixture
def contract(market) -> Contract:
    """A ping/post contract on the simulator with a mapping, bearer auth and default rules."""
    contract = market.contract(ping="bid=12.50", post="accept=1&price=14.00")
    for endpoint in DeliveryEndpoint.objects.filter(contract=contract):
        endpoint.auth_type, endpoint.auth_secret = AuthType.BEARER, SECRET
        endpoint.save()
    FieldMapping.objects.create(
        contract=contract,
        source_field="phone",
        target_field="PhoneNumber",
        transform=Transform.PHONE_DASHED,
        applies_to=MappingApplies.POST,
    )
    FieldMapping.objects.create(contract=contract, source_field="zip_code", target_field="Zip")
    ContractCap.objects.create(contract=contract, period=CapPeriod.DAY, max_leads=5)
    return contract


def nothing_recorded() -> bool:
    return not (
        Attempt.objects.exists()
        or Auction.objects.exists()
        or Sale.objects.exists()
        or CapReservation.objects.exists()
        or CapCounter.objects.filter(leads__gt=0).exists()
    )


def test_a_sample_lead_has_a_plausible_value_of_every_field_of_the_vertical():
    vertical = VerticalFactory()
    for name, field_type, extra in (
        ("email", FieldType.EMAIL, {}),
        ("phone", FieldType.PHONE, {}),
        ("zip_code", FieldType.ZIP, {}),
        ("credit", FieldType.CHOICE, {"choices": ["good", "fair"]}),
        ("age", FieldType.INTEGER, {"min_value": Decimal(18), "max_value": Decimal(99)}),
        ("homeowner", FieldType.BOOLEAN, {}),
    ):
        VerticalFieldFactory(vertical=vertical, name=name, field_type=field_type, **extra)
    assert sample_lead_data(vertical_id=vertical.pk) == {
        "email": "jane.sample@example.com",
        "phone": "+12025550143",
        "zip_code": "10001",
        "credit": "good",
        "age": 18,
        "homeowner": True,
    }


def test_a_test_ping_reaches_the_buyer_and_shows_the_parsed_bid_without_recording_anything(
    contract, market
):
    before = market.simulator.ledger.requests["ping"]
    outcome = contract_test_send(contract=contract, kind=EndpointKind.PING, actor="ops")
    assert market.simulator.ledger.requests["ping"] == before + 1
    assert outcome.result.status == 200
    assert outcome.parsed.accepted
    assert outcome.parsed.price == Decimal("12.50")
    assert outcome.parsed.reference
    # A ping carries the ping fields only, mapped: never the phone.
    assert json.loads(outcome.preview.request.body) == {"Zip": "10001"}
    assert nothing_recorded()


def test_the_test_page_shows_request_with_secrets_masked_response_latency_and_parsed_answer(
    contract,
):
    client = logged_in("Ops")
    page = client.post(tool_url(contract, "test"), {"kind": "post", "send": "1"})
    assert page.status_code == 200
    html = page.content.decode()
    assert SECRET not in html
    assert "Bearer ••••" in html or "••••" in html
    assert "PhoneNumber" in html
    assert "202-555-0143" in html
    assert 'id="parsed-accepted">yes' in html
    assert 'id="parsed-price">$14.00' in html
    assert 'id="test-latency">' in html
    assert nothing_recorded()
    assert LogEntry.objects.filter(
        object_id=str(contract.pk), change_message__startswith="Test post"
    )


def test_a_test_post_of_a_real_lead_sends_its_mapped_data(contract, market):
    lead = market.lead()
    client = logged_in("Ops")
    page = client.post(
        tool_url(contract, "test"), {"kind": "post", "lead": str(lead.pk), "send": "1"}
    )
    html = page.content.decode()
    digits = lead.phone[2:]
    assert f"{digits[:3]}-{digits[3:6]}-{digits[6:]}" in html
    assert 'id="parsed-accepted">yes' in html
    lead.refresh_from_db()
    assert lead.status == "accepted"
    assert nothing_recorded()


def test_a_preview_shows_the_mapped_post_body_and_sends_nothing(contract, market):
    lead = market.lead()
    before = sum(market.simulator.ledger.requests.values())
    page = logged_in("Admin").get(tool_url(contract, "test"), {"kind": "post", "lead": lead.pk})
    html = page.content.decode()
    assert "Preview of the post" in html
    assert '"Zip":"60601"' in html.replace("&quot;", '"')
    assert sum(market.simulator.ledger.requests.values()) == before
    assert 'id="parsed-accepted"' not in html


def test_a_lead_of_another_vertical_is_refused_with_a_form_error(contract):
    from tests.leads.factories import LeadFactory

    page = logged_in("Ops").post(
        tool_url(contract, "test"), {"kind": "post", "lead": str(LeadFactory().pk), "send": "1"}
    )
    assert "another vertical" in page.content.decode()


def test_a_contract_without_a_ping_endpoint_says_so_instead_of_sending(contract):
    DeliveryEndpoint.objects.filter(contract=contract, kind=EndpointKind.PING).delete()
    page = logged_in("Ops").post(tool_url(contract, "test"), {"kind": "ping", "send": "1"})
    assert "has no ping endpoint" in page.content.decode()


@pytest.mark.parametrize(
    ("role", "status"), [("Sales", 403), (None, 403), ("Ops", 200), ("Admin", 200)]
)
def test_only_ops_and_admin_may_open_the_contract_page_and_its_tools(contract, role, status):
    client = logged_in(role)
    change = reverse("admin:buyers_contract_change", args=[contract.pk])
    assert client.get(change).status_code == status
    for tool in ("test", "pause", "resume", "clone", "zips"):
        assert client.get(tool_url(contract, tool)).status_code == status, tool
    response = client.post(tool_url(contract, "test"), {"kind": "ping", "send": "1"})
    assert response.status_code == status


def test_sales_never_see_an_endpoints_credentials(contract):
    endpoint = DeliveryEndpoint.objects.get(contract=contract, kind=EndpointKind.POST)
    client = logged_in("Sales")
    page = reverse("admin:buyers_deliveryendpoint_change", args=[endpoint.pk])
    assert client.get(page).status_code == 403
    listing = client.get(reverse("admin:buyers_deliveryendpoint_changelist"))
    assert SECRET not in listing.content.decode()
    assert page not in listing.content.decode()


def test_sales_may_list_contracts_without_links_to_their_pages(contract):
    page = logged_in("Sales").get(reverse("admin:buyers_contract_changelist"))
    assert page.status_code == 200
    assert contract.name in page.content.decode()
    assert reverse("admin:buyers_contract_change", args=[contract.pk]) not in page.content.decode()


def test_ops_pause_and_resume_a_contract_with_a_reason_kept_in_its_history(contract):
    client = logged_in("Ops")
    refused = client.post(tool_url(contract, "pause"), {"reason": " "})
    assert "This field is required" in refused.content.decode()
    client.post(tool_url(contract, "pause"), {"reason": "endpoint returning 500s"})
    contract.refresh_from_db()
    assert (contract.status, contract.paused_reason) == (
        ContractStatus.PAUSED,
        "endpoint returning 500s",
    )
    client.post(tool_url(contract, "resume"), {"reason": "buyer fixed their server"})
    contract.refresh_from_db()
    assert contract.status == ContractStatus.ACTIVE
    messages = set(
        LogEntry.objects.filter(object_id=str(contract.pk)).values_list("change_message", flat=True)
    )
    assert {"Paused: endpoint returning 500s", "Resumed: buyer fixed their server"} <= messages


def fill_every_part(contract: Contract) -> None:
    from datetime import date, time

    ScheduleWindow.objects.create(
        contract=contract, weekday=0, opens_at=time(9), closes_at=time(17)
    )
    ClosedDate.objects.create(contract=contract, date=date(2030, 12, 25), note="Christmas")
    TerritoryRule.objects.create(
        contract=contract, mode=TerritoryMode.INCLUDE, kind=TerritoryKind.STATES, values="IL\nNY"
    )
    FieldCriterion.objects.create(contract=contract, field="state", operator="in", value="IL,NY")
    ResponseRule.objects.create(contract=contract, kind=EndpointKind.POST, success_path="status")
    ContractSecret.objects.create(contract=contract, name="api_key", value=SECRET)


def test_a_clone_copies_every_part_and_starts_paused(contract, market):
    fill_every_part(contract)
    contract.sources.add(market.source)
    copy = contract_clone(contract=contract, name="Copy").contract
    copy.refresh_from_db()
    assert copy.status == ContractStatus.PAUSED
    assert copy.buyer_id == contract.buyer_id
    for relation in (
        "caps",
        "schedule",
        "closed_dates",
        "territory",
        "criteria",
        "endpoints",
        "mappings",
        "response_rules",
        "secrets",
        "sources",
    ):
        assert getattr(copy, relation).count() == getattr(contract, relation).count() > 0, relation
    # The same buyer keeps its credentials.
    assert copy.endpoints.get(kind="post").auth_secret == SECRET
    assert copy.secrets.get().value == SECRET
    assert contract.endpoints.count() == 2  # the original is untouched


def test_a_clone_for_another_buyer_and_vertical_drops_credentials_and_warns(contract):
    ContractSecret.objects.create(contract=contract, name="api_key", value=SECRET)
    other_buyer = BuyerFactory()
    other_vertical = VerticalFactory()
    VerticalFieldFactory(vertical=other_vertical, name="zip_code", field_type=FieldType.ZIP)
    client = logged_in("Ops")
    response = client.post(
        tool_url(contract, "clone"),
        {"name": "For another", "buyer": other_buyer.pk, "vertical": other_vertical.pk},
        follow=True,
    )
    copy = Contract.objects.get(name="For another")
    assert (copy.buyer, copy.vertical) == (other_buyer, other_vertical)
    assert all(not endpoint.auth_secret for endpoint in copy.endpoints.all())
    assert not copy.secrets.exists()
    html = response.content.decode()
    assert "credentials were not copied" in html
    assert "secrets api_key were not copied" in html
    assert "has no field phone" in html


def test_a_clone_refuses_a_name_the_buyer_already_uses(contract):
    response = logged_in("Ops").post(
        tool_url(contract, "clone"),
        {"name": contract.name, "buyer": contract.buyer_id, "vertical": contract.vertical_id},
    )
    assert "already has a contract named" in response.content.decode()
    assert Contract.objects.count() == 1


def test_pasted_zips_become_the_contracts_zip_list_and_bad_ones_are_named(contract):
    client = logged_in("Ops")
    bad = client.post(tool_url(contract, "zips"), {"mode": "include", "values": "10001 abc 1"})
    assert "Not ZIP codes: abc, 1." in bad.content.decode()
    assert not TerritoryRule.objects.filter(contract=contract).exists()
    client.post(tool_url(contract, "zips"), {"mode": "include", "values": "10001, 2134\n60601"})
    rule = TerritoryRule.objects.get(contract=contract)
    assert (rule.kind, rule.value_list) == (TerritoryKind.ZIPS, ["10001", "02134", "60601"])
    client.post(tool_url(contract, "zips"), {"mode": "include", "values": "94105"})
    assert TerritoryRule.objects.get(contract=contract).value_list[-1] == "94105"
    client.post(tool_url(contract, "zips"), {"mode": "include", "values": "94105", "replace": "on"})
    assert TerritoryRule.objects.get(contract=contract).value_list == ["94105"]


def test_an_uploaded_zip_file_is_read_by_its_zip_column(contract):
    upload = io.BytesIO(b"name,zip\na,10001\nb,60601\n")
    upload.name = "zips.csv"
    logged_in("Ops").post(
        tool_url(contract, "zips"), {"mode": "exclude", "values": "", "upload": upload}
    )
    rule = TerritoryRule.objects.get(contract=contract)
    assert (rule.mode, rule.value_list) == (TerritoryMode.EXCLUDE, ["10001", "60601"])


def test_an_empty_zip_upload_is_refused_with_a_clear_error(contract):
    response = logged_in("Ops").post(tool_url(contract, "zips"), {"mode": "include"})
    assert "Paste ZIP codes or upload a file of them." in response.content.decode()


def test_ops_can_edit_a_contracts_parts_on_its_page(contract):
    page = logged_in("Ops").get(reverse("admin:buyers_contract_change", args=[contract.pk]))
    prefixes = {inline.formset.prefix for inline in page.context["inline_admin_formsets"]}
    assert {"endpoints", "mappings", "caps", "territory"} <= prefixes
    assert all(
        inline.has_add_permission and inline.has_change_permission
        for inline in page.context["inline_admin_formsets"]
    )


def test_the_contract_page_shows_cap_usage_and_health(contract):
    BuyerCap.objects.create(buyer=contract.buyer, period=CapPeriod.WEEK, max_leads=100)
    html = logged_in("Ops").get(reverse("admin:buyers_contract_change", args=[contract.pk]))
    text = html.content.decode()
    assert "0 / 5" in text
    assert "0 / 100" in text
    assert "Healthy" in text
    assert "Test ping / post" in text
