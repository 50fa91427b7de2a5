"""Returns by ops in the admin, buyer keys minted there or by command, the data set command."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from django.utils import timezone

from buyers.models import BuyerApiKey
from leads.intake import consumer_hash
from leads.models import Lead
from reporting.models import SaleReturn
from reporting.services import buyer_api_key_authenticate
from routing.models import Attempt, Auction, Sale, SaleStatus
from tests.buyers.factories import BuyerFactory, ContractFactory
from tests.reporting.conftest import staff_user
from tests.routing.factories import SaleFactory

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/routing/sale/"


def recent_sale(days_ago: int = 1) -> Sale:
    sale = SaleFactory(contract=ContractFactory(return_window_days=7))
    Sale.objects.filter(pk=sale.pk).update(sold_at=timezone.now() - timedelta(days=days_ago))
    return sale


def run_return_action(client, sales, **form):
    data = {"action": "return_sales", "_selected_action": [s.pk for s in sales], **form}
    return client.post(CHANGELIST, data, follow=True)


def test_ops_return_a_sale_from_the_admin_giving_a_reason(client):
    client.force_login(staff_user("olga", "Ops"))
    sale = recent_sale()

    asked = run_return_action(client, [sale])
    assert b"Return 1 sale" in asked.content
    done = run_return_action(client, [sale], apply="yes", reason="duplicate")

    assert Sale.objects.get(pk=sale.pk).status == SaleStatus.RETURNED
    assert SaleReturn.objects.get().returned_by == "staff olga"
    assert "Returned 1 sale" in " ".join(str(m) for m in get_messages(done.wsgi_request))


def test_the_admin_says_why_a_return_is_refused(client):
    client.force_login(staff_user("olga", "Ops"))
    sale = recent_sale(days_ago=10)

    done = run_return_action(client, [sale], apply="yes", reason="fraud")

    assert Sale.objects.get(pk=sale.pk).status == SaleStatus.SOLD
    assert "return window of 7 days closed" in done.content.decode()


def test_sales_staff_cannot_return_sales(client):
    client.force_login(staff_user("sam", "Sales"))
    sale = recent_sale()

    run_return_action(client, [sale], apply="yes", reason="fraud")

    assert Sale.objects.get(pk=sale.pk).status == SaleStatus.SOLD


def test_a_buyer_key_added_in_the_admin_is_shown_once_and_works(admin_client):
    buyer = BuyerFactory()

    response = admin_client.post(
        "/admin/buyers/buyerapikey/add/", {"buyer": buyer.pk, "name": "crm"}, follow=True
    )

    shown = re.search(r"lbk_[A-Za-z0-9_-]+", response.content.decode()).group(0)
    assert buyer_api_key_authenticate(raw_key=shown).buyer == buyer
    assert BuyerApiKey.objects.get().hashed_key != shown


def test_mint_buyer_key_prints_a_working_key():
    buyer = BuyerFactory(company="Acme Direct")
    out = io.StringIO()

    call_command("mint_buyer_key", "Acme Direct", "--name", "crm", stdout=out)

    assert buyer_api_key_authenticate(raw_key=out.getvalue().strip()).buyer == buyer


def test_the_data_set_command_refuses_a_database_not_named_for_benches():
    with pytest.raises(CommandError, match=r"bench|PostgreSQL"):
        call_command("generate_report_data", leads=10)


@pytest.mark.postgres
def test_the_data_set_command_fills_every_column_of_a_small_data_set():
    out = io.StringIO()

    call_command("generate_report_data", leads=40, days=2, allow_any_database=True, stdout=out)

    leads = Lead.objects.all()
    assert leads.count() == 40
    for lead in leads:
        assert lead.email_sha256 == consumer_hash(lead.email)
        assert lead.phone_sha256 == consumer_hash(lead.phone)
        assert (lead.extra, lead.ping_id) == ({}, "")
    sold = leads.filter(status__in=["sold", "returned"]).count()
    assert Sale.objects.count() == sold > 0
    assert Attempt.objects.filter(kind="post").count() == Auction.objects.count() > 0
    assert "Rollups built" in out.getvalue()
