"""Margin privacy: a source is shown its own payout everywhere, and the buyer's price only when
it is set to see it (`Source.sees_buyer_price`).

Every partner surface through the URL router and real keys: the `Prefer: wait` answer, its
idempotent replay, the lead status API (one lead and the list) and the postback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from leads.models import IdempotencyRecord, Lead, LeadStatus, PayoutModel, Source, Vertical
from leads.prices import prices_shown, stored_answer_shown
from leads.tasks import send_postback
from tests.leads.conftest import LEADS, auto_lead, lead_url, submit
from tests.leads.factories import LeadFactory, PostingProfileFactory, SourceFactory, api_key_for
from tests.outbound.receiver import Receiver, receiving

# buyer_contract's buyer pays $12.50 for every lead.
BUYER_PRICE = "12.50"
FIXED_CPL = {"payout_model": PayoutModel.FIXED_CPL, "payout_amount": Decimal("5.00")}
REVENUE_SHARE = {
    "payout_model": PayoutModel.REVENUE_SHARE,
    "revenue_share_percent": Decimal("30.00"),
}


def read(client: Client, key: str, path: str) -> dict[str, Any]:
    response = client.get(path, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200, response.content
    return response.json()


def money_of(document: dict[str, Any]) -> dict[str, Any]:
    """The amounts a partner surface carries, by name."""
    return {name: document[name] for name in ("price", "payout", "buyer_price") if name in document}


def seller(*, sees_buyer_price: bool, postback_url: str = "", **payout: Any) -> Source:
    return SourceFactory(
        verticals=list(Vertical.objects.all()),
        sees_buyer_price=sees_buyer_price,
        postback_url=postback_url,
        **(payout or FIXED_CPL),
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """The partner's postback endpoint on 127.0.0.1."""
    with receiving() as partner:
        yield partner


# --- Every surface, from one sale ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_celery", "buyer_contract")
@pytest.mark.parametrize(
    ("payout", "paid"), [(FIXED_CPL, "5.00"), (REVENUE_SHARE, "3.75")], ids=["cpl", "share"]
)
@pytest.mark.parametrize("sees_buyer_price", [False, True], ids=["private", "sees-price"])
def test_every_partner_surface_shows_the_sources_payout_and_the_buyers_price_only_if_allowed(
    client, demo, receiver, *, payout, paid, sees_buyer_price
):
    source = seller(
        sees_buyer_price=sees_buyer_price, postback_url=receiver.url("/outcome"), **payout
    )
    key = api_key_for(source)
    expected = {"payout": paid, **({"buyer_price": BUYER_PRICE} if sees_buyer_price else {})}

    answer = submit(client, key, auto_lead(300), prefer="wait=5")

    assert answer.status_code == 201, answer.content
    lead = Lead.objects.get()
    assert (lead.status, lead.sale_price, lead.payout) == (
        LeadStatus.SOLD,
        Decimal(BUYER_PRICE),
        Decimal(paid),
    )
    (postback,) = receiver.received
    (listed,) = read(client, key, LEADS)["results"]
    for surface in (answer.json(), read(client, key, lead_url(lead.pk)), listed):
        assert money_of(surface) == expected
    assert money_of(json.loads(postback["body"])) == expected


def test_a_lead_not_yet_sold_shows_a_null_payout_and_a_null_buyer_price_only_if_allowed(
    client, demo
):
    private, open_book = seller(sees_buyer_price=False), seller(sees_buyer_price=True)
    for source, expected in (
        (private, {"payout": None}),
        (open_book, {"payout": None, "buyer_price": None}),
    ):
        lead = LeadFactory(source=source, status=LeadStatus.ACCEPTED)
        assert money_of(read(client, api_key_for(source), lead_url(lead.pk))) == expected


def test_another_source_gets_404_for_a_sold_lead_even_when_it_may_see_buyers_prices(client, demo):
    owner = seller(sees_buyer_price=False)
    lead = LeadFactory(
        source=owner, status=LeadStatus.SOLD, sale_price=Decimal("30.00"), payout=Decimal("5.00")
    )
    rival_key = api_key_for(seller(sees_buyer_price=True))

    hidden = client.get(lead_url(lead.pk), HTTP_AUTHORIZATION=f"Bearer {rival_key}")

    assert hidden.status_code == 404
    assert "30.00" not in hidden.content.decode()
    assert read(client, rival_key, LEADS)["results"] == []


@pytest.mark.django_db
def test_the_postback_of_a_source_set_to_see_buyers_prices_carries_both_amounts(receiver):
    source = SourceFactory(sees_buyer_price=True, postback_url=receiver.url("/outcome"))
    lead = LeadFactory(
        source=source, status=LeadStatus.SOLD, sale_price=Decimal("19.99"), payout=Decimal("8.00")
    )

    send_postback(str(lead.pk))

    (postback,) = receiver.received
    assert money_of(json.loads(postback["body"])) == {"payout": "8.00", "buyer_price": "19.99"}


# --- Idempotent replays ----------------------------------------------------------------------


@pytest.fixture
def replayed(client, demo) -> Any:
    """Submit one lead twice under one Idempotency-Key, changing the source in between; return
    (first answer, replay)."""

    def run(
        *,
        first_sees: bool,
        then_sees: bool,
        stored: dict[str, Any] | None = None,
        answer_format: str = "json",
    ):
        source = seller(sees_buyer_price=first_sees)
        if answer_format != "json":
            PostingProfileFactory(source=source, answer_format=answer_format)
        key = api_key_for(source)
        body = json.dumps(auto_lead(310))
        first = submit(client, key, body, prefer="wait=5", idempotency_key="order-310")
        assert first.status_code == 201, first.content
        if stored is not None:
            IdempotencyRecord.objects.filter(source=source).update(
                response_document=json.dumps(stored)
            )
        source.sees_buyer_price = then_sees
        source.save()
        again = submit(client, key, body, prefer="wait=5", idempotency_key="order-310")
        assert again.status_code == 201, again.content
        assert again["Idempotent-Replayed"] == "true"
        assert Lead.objects.count() == 1
        return first, again

    return run


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_celery", "buyer_contract")
def test_a_replay_hides_the_buyers_price_from_a_source_no_longer_set_to_see_it(replayed):
    first, again = replayed(first_sees=True, then_sees=False)

    assert money_of(first.json()) == {"payout": "5.00", "buyer_price": BUYER_PRICE}
    assert money_of(again.json()) == {"payout": "5.00"}
    without_price = {k: v for k, v in first.json().items() if k != "buyer_price"}
    assert again.json() == without_price


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_celery", "buyer_contract")
@pytest.mark.parametrize(
    ("answer_format", "price_shown"),
    [("xml", f"<buyer_price>{BUYER_PRICE}</buyer_price>"), ("text", f"buyer_price={BUYER_PRICE}")],
)
def test_a_replay_in_xml_or_text_hides_the_buyers_price_as_json_does(
    replayed, answer_format, price_shown
):
    first, again = replayed(first_sees=True, then_sees=False, answer_format=answer_format)

    assert price_shown in first.content.decode()
    assert (
        again.content
        == first.content.decode().replace(price_shown, "").replace("\n\n", "\n").encode()
    )
    assert again["Content-Type"] == first["Content-Type"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_celery", "buyer_contract")
def test_a_replay_never_shows_more_than_the_first_answer(replayed):
    first, again = replayed(first_sees=False, then_sees=True)

    assert money_of(first.json()) == {"payout": "5.00"}
    assert again.content == first.content


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_celery", "buyer_contract")
def test_a_replay_of_an_answer_stored_before_margin_privacy_drops_its_price(replayed):
    # Answers stored before this change named the buyer's price "price".
    legacy = {"id": "x", "status": "sold", "price": BUYER_PRICE, "payout": "5.00", "url": "u"}

    _, private = replayed(first_sees=False, then_sees=False, stored=legacy)

    assert private.json() == {"id": "x", "status": "sold", "payout": "5.00", "url": "u"}


# --- The rule itself -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sees", "shown"),
    [(False, {"payout": "5.00"}), (True, {"payout": "5.00", "buyer_price": "12.50"})],
)
def test_prices_shown_names_the_payout_always_and_the_buyers_price_only_if_allowed(sees, shown):
    source = Source(sees_buyer_price=sees)

    assert prices_shown(source=source, payout=Decimal(5), buyer_price=Decimal("12.5")) == shown


@pytest.mark.parametrize(
    "document",
    [
        {"type": "/api/problems/invalid-lead", "status": 400},
        {"id": "x", "status": "accepted", "url": "u"},
        {"id": "x", "status": "sold", "payout": "5.00", "url": "u"},
        ["buyer_price"],  # not an object: names no amount
        "buyer_price",
        None,
    ],
)
def test_a_stored_answer_without_a_buyers_price_is_replayed_as_it_was(document):
    assert stored_answer_shown(document, source=Source(sees_buyer_price=False)) == document
    assert stored_answer_shown(document, source=Source(sees_buyer_price=True)) == document


def test_a_stored_answer_keeps_its_buyers_price_for_a_source_that_still_sees_it():
    document = {"id": "x", "status": "sold", "payout": "5.00", "buyer_price": "12.50", "url": "u"}

    shown = stored_answer_shown(document, source=Source(sees_buyer_price=True))

    assert list(shown.items()) == list(document.items())


def test_a_legacy_price_is_renamed_buyer_price_for_a_source_that_sees_it():
    document = {"id": "x", "price": "12.50", "payout": "5.00"}

    shown = stored_answer_shown(document, source=Source(sees_buyer_price=True))

    assert list(shown.items()) == [("id", "x"), ("payout", "5.00"), ("buyer_price", "12.50")]


# --- The published contract ------------------------------------------------------------------


def test_the_schema_names_payout_always_and_buyer_price_as_optional(client, demo):
    schemas = client.get("/api/schema/", {"format": "json"}).json()["components"]["schemas"]

    for name in ("Lead", "LeadOutcome", "PingAnswer"):
        properties, required = schemas[name]["properties"], schemas[name].get("required", [])
        assert "price" not in properties
        assert {"payout", "buyer_price"} <= properties.keys()
        assert "buyer_price" not in required
        assert "a source set to see" in properties["buyer_price"]["description"]
    assert "payout" in schemas["Lead"]["required"]
    assert "payout" in schemas["PingAnswer"]["required"]
