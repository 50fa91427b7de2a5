"""Re-routing a lead by hand: only unsold or failed leads go round again, and never sell twice."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

from buyers.models import ContractStatus, EndpointKind
from leads.models import LEAD_TRANSITIONS, LeadStatus
from routing.engine import lead_route
from routing.models import AttemptOutcome, Sale
from routing.services import REROUTABLE_STATUSES, RerouteRefused, lead_reroute
from tests.routing.factories import AttemptFactory, AuctionFactory
from tests.staff import staff_user

pytestmark = pytest.mark.django_db


def logged_in(role: str | None) -> Client:
    client = Client()
    client.force_login(staff_user(role))
    return client


@pytest.fixture
def unsold_lead(market):
    """A lead that found no buyer: its only contract was paused when it was routed."""
    contract = market.contract(ping="bid=15")
    contract.status = ContractStatus.PAUSED
    contract.paused_reason = "for the test"
    contract.save()
    lead = market.lead()
    lead_route(lead_id=lead.pk)
    lead.refresh_from_db()
    assert lead.status == LeadStatus.UNSOLD
    contract.status, contract.paused_reason = ContractStatus.ACTIVE, ""
    contract.save()
    return lead


def test_rerouting_an_unsold_lead_sells_it_once(unsold_lead, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        lead_reroute(lead=unsold_lead, actor="ops")
    unsold_lead.refresh_from_db()
    assert unsold_lead.status == LeadStatus.SOLD
    assert Sale.objects.filter(lead=unsold_lead).count() == 1
    # Sold now: a second re-route is refused and sells nothing more.
    with pytest.raises(RerouteRefused, match="only unsold or failed"):
        lead_reroute(lead=unsold_lead, actor="ops")
    assert Sale.objects.filter(lead=unsold_lead).count() == 1


def test_a_sold_lead_cannot_be_rerouted_to_sell_again(market, django_capture_on_commit_callbacks):
    market.contract(ping="bid=15")
    lead = market.lead()
    lead_route(lead_id=lead.pk)
    lead.refresh_from_db()
    assert lead.status == LeadStatus.SOLD
    market.contract(ping="bid=30")  # a richer buyer that would gladly buy it too
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RerouteRefused):
        lead_reroute(lead=lead, actor="ops")
    lead.refresh_from_db()
    assert lead.status == LeadStatus.SOLD
    assert Sale.objects.filter(lead=lead).count() == 1


def test_a_lead_marked_unsold_while_a_sale_exists_is_not_rerouted(unsold_lead, market):
    # A state the engine never leaves behind, but a hand edit might: the sale row wins.
    contract = market.contract()
    Sale.objects.create(
        lead=unsold_lead, contract=contract, buyer=contract.buyer, price=10, payout=4
    )
    with pytest.raises(RerouteRefused, match="a buyer holds it"):
        lead_reroute(lead=unsold_lead, actor="ops")
    unsold_lead.refresh_from_db()
    assert unsold_lead.status == LeadStatus.UNSOLD


def test_a_failed_lead_whose_post_may_have_reached_a_buyer_is_not_rerouted(market):
    lead = market.lead(status=LeadStatus.FAILED)
    AttemptFactory(
        auction=AuctionFactory(lead=lead),
        contract=market.contract(),
        kind=EndpointKind.POST,
        outcome=AttemptOutcome.AMBIGUOUS,
    )
    with pytest.raises(RerouteRefused, match="may have reached the buyer"):
        lead_reroute(lead=lead, actor="ops")
    lead.refresh_from_db()
    assert lead.status == LeadStatus.FAILED


def test_every_reroutable_status_may_go_back_to_accepted():
    assert set(REROUTABLE_STATUSES) <= LEAD_TRANSITIONS[LeadStatus.ACCEPTED]


@pytest.mark.parametrize(
    "status", [LeadStatus.ACCEPTED, LeadStatus.ROUTING, LeadStatus.INVALID, LeadStatus.RETURNED]
)
def test_leads_neither_unsold_nor_failed_are_refused(market, status):
    lead = market.lead(status=status)
    with pytest.raises(RerouteRefused):
        lead_reroute(lead=lead, actor="ops")
    lead.refresh_from_db()
    assert lead.status == status


def test_ops_reroute_a_lead_from_its_page_after_confirming(
    unsold_lead, django_capture_on_commit_callbacks
):
    client = logged_in("Ops")
    page = client.get(reverse("admin:leads_lead_change", args=[unsold_lead.pk]))
    reroute_url = reverse("admin:leads_lead_reroute", args=[unsold_lead.pk])
    assert reroute_url in page.content.decode()
    confirm = client.get(reroute_url)
    assert "Yes, route 1 lead again" in confirm.content.decode()
    unsold_lead.refresh_from_db()
    assert unsold_lead.status == LeadStatus.UNSOLD  # asking is not doing
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(reroute_url, follow=True)
    assert "Sent 1 lead back to routing." in done.content.decode()
    unsold_lead.refresh_from_db()
    assert unsold_lead.status == LeadStatus.SOLD
    assert LogEntry.objects.filter(
        object_id=str(unsold_lead.pk), change_message__startswith="Re-routed"
    ).exists()
    # The sold lead's page offers no re-route, and posting anyway is refused.
    assert reroute_url not in client.get(done.redirect_chain[-1][0]).content.decode()
    again = client.post(reroute_url, follow=True)
    assert "only unsold or failed leads" in again.content.decode()
    assert Sale.objects.filter(lead=unsold_lead).count() == 1


def test_the_reroute_action_confirms_then_skips_leads_it_may_not_route(
    unsold_lead, market, django_capture_on_commit_callbacks
):
    sold = market.lead(status=LeadStatus.SOLD)
    client = logged_in("Admin")
    changelist = reverse("admin:leads_lead_changelist")
    selected = {"action": "reroute_leads", "_selected_action": [unsold_lead.pk, sold.pk]}
    confirm = client.post(changelist, selected)
    assert "Yes, route 1 lead again" in confirm.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(changelist, {**selected, "apply": "yes"}, follow=True)
    html = done.content.decode()
    assert "Sent 1 lead back to routing." in html
    assert "only unsold or failed leads" in html
    unsold_lead.refresh_from_db()
    assert unsold_lead.status == LeadStatus.SOLD


def test_ops_asking_to_reroute_a_lead_that_does_not_exist_get_a_404():
    reroute_url = reverse("admin:leads_lead_reroute", args=[uuid.uuid4()])
    client = logged_in("Ops")

    assert client.get(reroute_url).status_code == 404
    assert client.post(reroute_url).status_code == 404


@pytest.mark.parametrize("role", ["Sales", None])
def test_sales_and_staff_without_a_role_cannot_reroute(unsold_lead, role):
    client = logged_in(role)
    reroute_url = reverse("admin:leads_lead_reroute", args=[unsold_lead.pk])
    assert client.get(reroute_url).status_code == 403
    assert client.post(reroute_url).status_code == 403
    response = client.post(
        reverse("admin:leads_lead_changelist"),
        {"action": "reroute_leads", "_selected_action": [unsold_lead.pk], "apply": "yes"},
    )
    assert response.status_code in (200, 302, 403)
    unsold_lead.refresh_from_db()
    assert unsold_lead.status == LeadStatus.UNSOLD
    assert not Sale.objects.filter(lead=unsold_lead).exists()
