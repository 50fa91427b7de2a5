"""A ping explained in the admin like an auction: timeline, eligibility with reasons, its bids."""

from __future__ import annotations

import pytest
from django.urls import reverse

from buyers.models import TerritoryKind, TerritoryRule
from exchange.models import InboundPing
from tests.staff import staff_user


@pytest.mark.parametrize("role", ["Sales", "Ops"])
def test_a_pings_page_shows_its_timeline_its_eligibility_reasons_and_its_bids(
    seller, market, client, role
):
    bidder = market.contract(ping="bid=12.50")
    texan = market.contract(ping="bid=30")
    TerritoryRule.objects.create(contract=texan, kind=TerritoryKind.STATES, values="TX")
    ping = InboundPing.objects.get(pk=seller.ping().json()["ping_id"])
    client.force_login(staff_user(role))

    page = client.get(reverse("admin:exchange_inboundping_change", args=[ping.pk]))

    assert page.status_code == 200
    html = page.content.decode()
    assert "1 of 2 contracts eligible" in html
    assert "outside territory: state NY not in TX" in html
    assert "Timeline: the buyers pinged" in html
    assert f"answered bid at $4.00 to the seller in {ping.duration_ms} ms" in html
    assert f"/admin/buyers/contract/{bidder.pk}/change/" in html
    assert "$12.50" in html


def test_pings_are_found_in_the_admin_by_their_id(seller, market, client):
    ping_id = seller.ping().json()["ping_id"]
    client.force_login(staff_user("Ops"))

    page = client.get(reverse("admin:exchange_inboundping_changelist"), {"q": ping_id})

    assert page.status_code == 200
    assert [str(p.pk) for p in page.context["cl"].result_list] == [ping_id]
