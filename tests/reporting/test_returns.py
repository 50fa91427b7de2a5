"""Returns: the window, once only, the contract's maximum rate, the buyer's own sales, races."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from leads.models import Lead, LeadStatus
from reporting.models import SaleReturn
from reporting.services import ReturnRefused, buyer_api_key_create, sale_return
from routing.models import Sale, SaleStatus
from tests.buyers.factories import ContractFactory
from tests.leads.factories import LeadFactory, SourceFactory, api_key_for
from tests.routing.factories import SaleFactory
from tests.threads import Go, all_at_once

pytestmark = pytest.mark.django_db


def sold(contract=None, *, days_ago: float = 1, source=None) -> Sale:
    contract = contract or ContractFactory(return_window_days=7)
    lead = LeadFactory(
        vertical=contract.vertical, status=LeadStatus.SOLD, source=source or SourceFactory()
    )
    sale = SaleFactory(lead=lead, contract=contract)
    Sale.objects.filter(pk=sale.pk).update(sold_at=timezone.now() - timedelta(days=days_ago))
    sale.refresh_from_db()
    return sale


def test_a_return_within_the_window_reverses_the_sale_and_the_lead():
    sale = sold()

    record = sale_return(sale=sale, reason="fraud", returned_by="ops")

    sale.refresh_from_db()
    assert (sale.status, sale.return_reason) == (SaleStatus.RETURNED, "fraud")
    assert sale.returned_at is not None
    assert Lead.objects.get(pk=sale.lead_id).status == LeadStatus.RETURNED
    assert record.payout_reversed is True


def test_the_payout_stands_when_the_sources_terms_say_so():
    sale = sold(source=SourceFactory(payout_reversed_on_return=False))

    assert sale_return(sale=sale, reason="fraud", returned_by="ops").payout_reversed is False


def test_a_shared_lead_stays_sold_while_another_sale_of_it_stands():
    first = sold()
    other = ContractFactory(vertical=first.contract.vertical, return_window_days=7)
    SaleFactory(lead=first.lead, contract=other)

    sale_return(sale=first, reason="duplicate", returned_by="ops")

    assert Lead.objects.get(pk=first.lead_id).status == LeadStatus.SOLD


def test_it_refuses_a_return_past_the_window():
    sale = sold(days_ago=8)

    with pytest.raises(ReturnRefused) as refused:
        sale_return(sale=sale, reason="bad_phone", returned_by="ops")

    assert "return window of 7 days closed" in refused.value.errors["lead_id"][0]
    assert Sale.objects.get(pk=sale.pk).status == SaleStatus.SOLD


def test_a_contract_with_no_window_refuses_every_return():
    sale = sold(ContractFactory(return_window_days=0))

    with pytest.raises(ReturnRefused, match="accepts no returns"):
        sale_return(sale=sale, reason="bad_phone", returned_by="ops")


def test_it_refuses_to_return_a_sale_twice():
    sale = sold()
    sale_return(sale=sale, reason="bad_phone", returned_by="ops")

    with pytest.raises(ReturnRefused, match="already returned"):
        sale_return(sale=sale, reason="bad_phone", returned_by="ops")

    assert SaleReturn.objects.count() == 1


def test_it_refuses_returns_over_the_contracts_maximum_rate():
    contract = ContractFactory(return_window_days=7, max_return_rate=Decimal("50"))
    first, second = sold(contract), sold(contract)

    sale_return(sale=first, reason="bad_phone", returned_by="ops")  # 1 of 2: 50 %
    with pytest.raises(ReturnRefused, match="over the contract's maximum of 50"):
        sale_return(sale=second, reason="bad_phone", returned_by="ops")  # 2 of 2: 100 %


def test_other_needs_a_note():
    with pytest.raises(ReturnRefused) as refused:
        sale_return(sale=sold(), reason="other", returned_by="ops")

    assert "note" in refused.value.errors


# --- Through the API ---------------------------------------------------------------------------


def post_return(client, key: str | None, body: dict):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    return client.post("/api/v1/returns/", body, content_type="application/json", **headers)


def test_a_buyer_returns_its_lead_through_the_api(client):
    sale = sold()
    _, key = buyer_api_key_create(buyer=sale.buyer, name="crm")

    response = post_return(
        client, key, {"lead_id": str(sale.lead_id), "reason": "other", "note": "Wrong person"}
    )

    assert response.status_code == 201, response.content
    assert response.json()["refunded"] == "20.00"
    assert response.json()["reason"] == "other"
    assert SaleReturn.objects.get().returned_by.startswith("buyer key lbk_")


def test_a_buyer_cannot_return_another_buyers_sale(client):
    sale = sold()
    _, outsider = buyer_api_key_create(buyer=ContractFactory().buyer)

    response = post_return(client, outsider, {"lead_id": str(sale.lead_id), "reason": "fraud"})

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert Sale.objects.get(pk=sale.pk).status == SaleStatus.SOLD


def test_a_refused_return_is_a_problem_naming_the_field(client):
    sale = sold(days_ago=30)
    _, key = buyer_api_key_create(buyer=sale.buyer)

    response = post_return(client, key, {"lead_id": str(sale.lead_id), "reason": "fraud"})

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert "return window" in response.json()["errors"]["lead_id"][0]


def test_a_return_with_an_unknown_reason_is_refused(client):
    sale = sold()
    _, key = buyer_api_key_create(buyer=sale.buyer)

    response = post_return(client, key, {"lead_id": str(sale.lead_id), "reason": "meh"})

    assert response.status_code == 400
    assert "reason" in response.json()["errors"]


@pytest.mark.parametrize("kind", ["none", "partner", "revoked"])
def test_returns_need_a_live_buyer_key(client, kind):
    sale = sold()
    key = None
    if kind == "partner":
        key = api_key_for(SourceFactory())
    elif kind == "revoked":
        from reporting.services import buyer_api_key_revoke

        api_key, key = buyer_api_key_create(buyer=sale.buyer)
        buyer_api_key_revoke(api_key=api_key)

    response = post_return(client, key, {"lead_id": str(sale.lead_id), "reason": "fraud"})

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


# --- Races (PostgreSQL) --------------------------------------------------------------------------


def _race(calls) -> list[str]:
    def run(n: int, go: Go) -> str:
        go()
        try:
            calls[n]()
        except ReturnRefused:
            return "refused"
        return "returned"

    return sorted(all_at_once(len(calls), run))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_returns_of_one_sale_at_once_return_it_once():
    sale = sold()

    outcomes = _race([lambda: sale_return(sale=sale, reason="fraud", returned_by="ops")] * 2)

    assert outcomes == ["refused", "returned"]
    assert SaleReturn.objects.filter(sale=sale).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_returns_racing_past_the_maximum_rate_let_only_one_through():
    contract = ContractFactory(return_window_days=7, max_return_rate=Decimal("50"))
    first, second = sold(contract), sold(contract)

    outcomes = _race(
        [
            lambda: sale_return(sale=first, reason="fraud", returned_by="ops"),
            lambda: sale_return(sale=second, reason="fraud", returned_by="ops"),
        ]
    )

    assert outcomes == ["refused", "returned"]
    assert Sale.objects.filter(contract=contract, status=SaleStatus.RETURNED).count() == 1
