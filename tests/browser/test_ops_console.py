"""The ops console in a real browser: Ops set up and test a buyer, follow a lead, Sales look on."""

from __future__ import annotations

import pytest
import requests
from django.urls import reverse

from buyers.models import Buyer, Contract, FieldMapping
from leads.models import Lead, LeadStatus, Vertical
from tests.leads.conftest import auto_lead
from tests.staff import staff_user

# Serialized rollback: each test starts with what the migrations made (the staff groups).
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_ops_create_a_buyer_and_contract_with_a_mapping_and_see_a_test_pings_bid(
    ui, demo, simulator
):
    page = ui.page
    staff_user("Ops", "olivia")
    vertical = Vertical.objects.get(slug="auto-insurance")
    ui.log_in("olivia")
    ui.shot("logged-in")

    ui.go("/admin/buyers/buyer/add/")
    page.fill("#id_company", "Browser Buyer LLC")
    ui.shot("new-buyer")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    buyer = Buyer.objects.get(company="Browser Buyer LLC")
    ui.shot("buyer-saved")

    # The buyer and vertical boxes search as you type; the page takes them from the URL too.
    ui.go(f"/admin/buyers/contract/add/?buyer={buyer.pk}&vertical={vertical.pk}")
    page.fill("#id_name", "Browser auto contract")
    page.select_option("#id_price_model", "ping_post")
    page.fill("#id_floor_price", "1.00")
    page.click("#endpoints-group .add-row a")
    page.select_option("#id_endpoints-0-kind", "ping")
    page.fill("#id_endpoints-0-url", f"{simulator.base_url}/ping?bid=17.25")
    page.click("#mappings-group .add-row a")
    page.fill("#id_mappings-0-source_field", "zip_code")
    page.fill("#id_mappings-0-target_field", "PostalCode")
    ui.shot("new-contract")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    contract = Contract.objects.get(name="Browser auto contract")
    assert FieldMapping.objects.filter(contract=contract, target_field="PostalCode").exists()
    ui.shot("contract-saved")

    page.click("text=Test ping / post")
    page.check("input[name=kind][value=ping]")
    page.click("input[name=send]")
    page.wait_for_selector("#test-parsed")
    assert page.inner_text("#parsed-accepted") == "yes"
    assert page.inner_text("#parsed-price") == "$17.25"
    assert "PostalCode" in page.inner_text("#test-body")
    ui.shot("test-ping-bid")
    assert not contract.attempts.exists()


def test_a_lead_submitted_through_the_api_shows_up_sold_with_its_timeline(
    ui, partner, buyer_contract
):
    page = ui.page
    _, key = partner
    response = requests.post(
        f"{ui.url}/api/v1/leads/",
        json=auto_lead(7),
        # Closed after the answer: a kept-alive socket would hold a server thread open.
        headers={"Authorization": f"Bearer {key}", "Connection": "close"},
        timeout=30,
    )
    assert response.status_code in (200, 201, 202), response.text
    lead = Lead.objects.get()
    lead.refresh_from_db()
    assert lead.status == LeadStatus.SOLD
    staff_user("Ops", "oscar")
    ui.log_in("oscar")
    ui.go(reverse("admin:leads_lead_changelist"))
    ui.shot("lead-list")
    ui.go(reverse("admin:leads_lead_change", args=[lead.pk]))
    assert "Sold" in page.inner_text(".field-status")
    timeline = page.locator("text=Timeline: pings and posts, oldest first")
    assert timeline.count() >= 1
    page.click("details summary >> nth=-1")
    assert "Test Buyer Inc" in page.content()
    assert "received and validated" in page.inner_text(".field-status_history_display")
    ui.shot("lead-sold-with-timeline")


def test_sales_see_the_dashboard_and_masked_leads_but_cannot_open_a_contract(
    ui, partner, buyer_contract
):
    page = ui.page
    _, key = partner
    requests.post(
        f"{ui.url}/api/v1/leads/",
        json=auto_lead(8),
        # Closed after the answer: a kept-alive socket would hold a server thread open.
        headers={"Authorization": f"Bearer {key}", "Connection": "close"},
        timeout=30,
    )
    lead = Lead.objects.get()
    staff_user("Sales", "sam")
    ui.log_in("sam")
    ui.shot("sales-admin-home")

    assert ui.go("/dashboard/").status == 200
    assert "Sell-through" in page.inner_text("body")
    ui.shot("dashboard")

    ui.go(reverse("admin:leads_lead_changelist"))
    listing = page.inner_text("#result_list")
    assert lead.email not in listing
    assert "m***@example.com" in listing
    ui.shot("lead-list-masked")

    ui.go(reverse("admin:leads_lead_change", args=[lead.pk]))
    html = page.content()
    assert lead.email not in html
    assert lead.phone not in html
    assert "***" in page.inner_text(".field-phone_display")
    ui.shot("lead-page-masked")

    response = ui.go(reverse("admin:buyers_contract_change", args=[buyer_contract.pk]))
    assert response.status == 403
    ui.shot("contract-forbidden")
