"""The Lead Prosper fake takes the spec's credentials in the JSON body, answers a ping with a
ping_id and a bid, sells the post that carries that ping_id, and refuses what the spec does not
allow with its ERROR answer."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests

from tests.buyers.fakes.fake_server import ManualClock
from tests.buyers.fakes.leadprosper import LeadProsperFake

# The spec example's credentials, and a solar lead in the campaign's formats.
CREDENTIALS = {"lp_campaign_id": 6309, "lp_supplier_id": 12465, "lp_key": "yq0h0jphvp5"}
PING = {
    **CREDENTIALS,
    "lp_subid1": "brightpath",
    "state": "CA",
    "zip_code": "78124",
    "home_owner": "Yes",
    "monthly_electric_bill": "$101-$150",
    "roof_shade": "No Shade",
    "property_type": "Single Family",
    "time_frame": "1-3 months",
}
POST = {
    **PING,
    "first_name": "Dana",
    "last_name": "Ruiz",
    "email": "dana.ruiz@example.com",
    "phone": "6503271100",
    "address": "12 Palm Lane",
    "city": "Cibolo",
    "ip_address": "127.0.0.1",
    "user_agent": "Mozilla/5.0",
    "landing_page_url": "https://solar.example/quote",
    "trustedform_cert_url": "https://cert.trustedform.com/0123456789abcdef",
}


@pytest.fixture
def buyer(clock: ManualClock) -> Iterator[LeadProsperFake]:
    with LeadProsperFake(clock=clock, ping_ttl_s=30) as fake:
        yield fake


def ping(buyer: LeadProsperFake, **changes: Any) -> dict[str, Any]:
    body = {k: v for k, v in {**PING, **changes}.items() if v is not None}
    response = requests.post(buyer.url("/ping"), json=body, timeout=5)
    assert response.status_code == 200
    return response.json()


def post(buyer: LeadProsperFake, ping_id: str | None, **changes: Any) -> dict[str, Any]:
    body = {k: v for k, v in {**POST, "lp_ping_id": ping_id, **changes}.items() if v is not None}
    response = requests.post(buyer.url("/post"), json=body, timeout=5)
    assert response.status_code == 200
    return response.json()


def error(code: int, message: str) -> dict[str, Any]:
    return {"status": "ERROR", "code": code, "message": message}


def test_it_bids_on_a_ping_and_names_it(buyer: LeadProsperFake) -> None:
    answer = ping(buyer)

    assert answer["status"] == "ACCEPTED"
    assert answer["code"] == 0
    assert answer["ping_id"] in buyer.pings.issued
    assert answer["bids"][0]["payout"] == 25.0
    assert buyer.received[0].request.media_type == "application/json"


def test_it_sells_the_post_that_carries_the_ping_id(buyer: LeadProsperFake) -> None:
    ping_id = ping(buyer)["ping_id"]

    answer = post(buyer, ping_id)

    assert answer["status"] == "ACCEPTED"
    assert answer["code"] == 0
    assert answer["payout"] == 25.0
    assert answer["lead_id"]
    assert buyer.accepted[0]["lp_ping_id"] == ping_id


def test_the_numeric_credentials_may_be_written_as_text(buyer: LeadProsperFake) -> None:
    assert ping(buyer, lp_campaign_id="6309", lp_supplier_id="12465")["status"] == "ACCEPTED"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"lp_key": None}, error(1001, "Missing required parameter lp_key")),
        ({"lp_key": "yq0h0jphvp6"}, error(1003, "Invalid lp_key")),
        ({"lp_key": "YQ0H0JPHVP5"}, error(1003, "Invalid lp_key")),
        ({"lp_campaign_id": None}, error(1001, "Missing required parameter lp_campaign_id")),
        ({"lp_campaign_id": 6310}, error(1003, "Invalid lp_campaign_id")),
        ({"lp_supplier_id": "12465a"}, error(1003, "Invalid lp_supplier_id")),
        ({"lp_supplier_id": True}, error(1003, "Invalid lp_supplier_id")),
        ({"zip_code": None}, error(1001, "Missing required parameter zip_code")),
        (
            {"zip_code": 78124},
            error(1002, "Invalid value for parameter zip_code: must be text"),
        ),
        (
            {"zip_code": "7812"},
            error(1002, "Invalid value for parameter zip_code: must be 5 digit"),
        ),
        (
            {"state": "Texas"},
            error(1002, "Invalid value for parameter state: must be a US state"),
        ),
        (
            {"home_owner": "yes"},
            error(1002, "Invalid value for parameter home_owner: not an allowed value"),
        ),
        (
            {"monthly_electric_bill": 120},
            error(1002, "Invalid value for parameter monthly_electric_bill: not an allowed value"),
        ),
        (
            {"lp_action": "live"},
            error(1002, "Invalid value for parameter lp_action: not an allowed value"),
        ),
        (
            {"lp_subid1": "x" * 76},
            error(1002, "Invalid value for parameter lp_subid1: must be text, max 75 chars"),
        ),
    ],
)
def test_it_refuses_a_malformed_ping(
    buyer: LeadProsperFake, changes: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert ping(buyer, **changes) == expected
    assert buyer.pings.issued == []


def test_a_ping_needs_nothing_personal(buyer: LeadProsperFake) -> None:
    personal = ("first_name", "last_name", "email", "phone", "ip_address", "user_agent")
    assert not any(name in PING for name in personal)
    assert ping(buyer)["status"] == "ACCEPTED"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"phone": None}, error(1001, "Missing required parameter phone")),
        (
            {"phone": "650-327-1100"},
            error(1002, "Invalid value for parameter phone: must be 10 digits"),
        ),
        (
            {"phone": 6503271100},
            error(1002, "Invalid value for parameter phone: must be text"),
        ),
        (
            {"email": "dana.ruiz@example"},
            error(1002, "Invalid value for parameter email: must be a valid e-mail address"),
        ),
        (
            {"ip_address": "localhost"},
            error(1002, "Invalid value for parameter ip_address: must be an IPv4 or IPv6 address"),
        ),
        (
            {"landing_page_url": "solar.example/quote"},
            error(
                1002, "Invalid value for parameter landing_page_url: must be a URL with protocol"
            ),
        ),
        ({"user_agent": ""}, error(1001, "Missing required parameter user_agent")),
    ],
)
def test_it_refuses_a_malformed_post(
    buyer: LeadProsperFake, changes: dict[str, Any], expected: dict[str, Any]
) -> None:
    ping_id = ping(buyer)["ping_id"]

    assert post(buyer, ping_id, **changes) == expected


def test_an_ipv6_address_is_an_ip_address(buyer: LeadProsperFake) -> None:
    ping_id = ping(buyer)["ping_id"]

    assert post(buyer, ping_id, ip_address="2001:db8::7")["status"] == "ACCEPTED"


def test_a_post_without_the_ping_id_is_an_error(buyer: LeadProsperFake) -> None:
    ping(buyer)

    assert post(buyer, None) == error(1001, "Missing required parameter lp_ping_id")


def test_it_refuses_a_ping_id_it_never_issued(buyer: LeadProsperFake) -> None:
    assert post(buyer, "0123456789abcdef0123") == error(1004, "Invalid lp_ping_id")


def test_it_takes_each_ping_id_once(buyer: LeadProsperFake) -> None:
    ping_id = ping(buyer)["ping_id"]
    post(buyer, ping_id)

    assert post(buyer, ping_id, phone="6503271101", email="other@example.com") == error(
        1004, "lp_ping_id was already used"
    )


def test_it_refuses_a_ping_id_posted_too_late(buyer: LeadProsperFake, clock: ManualClock) -> None:
    ping_id = ping(buyer)["ping_id"]
    clock.now += 31

    assert post(buyer, ping_id) == error(1004, "Expired lp_ping_id")


def test_a_lead_it_bought_before_is_duplicated(buyer: LeadProsperFake) -> None:
    post(buyer, ping(buyer)["ping_id"])

    answer = post(buyer, ping(buyer)["ping_id"], email="someone.else@example.com")

    assert answer["status"] == "DUPLICATED"
    assert answer["message"] == "Duplicate lead"
    assert len(buyer.accepted) == 1


def test_a_declining_buyer_says_why(buyer: LeadProsperFake) -> None:
    buyer.decline = "No coverage in this ZIP code"

    assert ping(buyer) == error(1005, "No coverage in this ZIP code")


def test_a_rejecting_buyer_says_why(buyer: LeadProsperFake) -> None:
    ping_id = ping(buyer)["ping_id"]
    buyer.reject_post = "Phone number failed verification"

    answer = post(buyer, ping_id)

    assert answer["status"] == "ERROR"
    assert answer["message"] == "Phone number failed verification"
    assert buyer.accepted == []


def test_it_bids_the_price_it_is_given(clock: ManualClock) -> None:
    with LeadProsperFake(price=Decimal("41.75"), clock=clock) as buyer:
        answer = ping(buyer)
        assert answer["bids"][0]["payout"] == 41.75
        assert post(buyer, answer["ping_id"])["payout"] == 41.75


def test_a_json_campaign_refuses_a_form_post(buyer: LeadProsperFake) -> None:
    response = requests.post(buyer.url("/ping"), data=PING, timeout=5)

    assert response.json() == error(1002, "Content-Type must be application/json")


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"6309"'])
def test_it_refuses_a_body_that_is_not_a_json_object(buyer: LeadProsperFake, body: bytes) -> None:
    response = requests.post(
        buyer.url("/ping"),
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=5,
    )

    assert response.json() == error(1002, "Invalid JSON body")


def test_a_form_campaign_takes_form_posts(clock: ManualClock) -> None:
    with LeadProsperFake(post_type="form", clock=clock) as buyer:
        answer = requests.post(buyer.url("/ping"), data=PING, timeout=5).json()
        fields = {**POST, "lp_ping_id": answer["ping_id"]}
        sold = requests.post(buyer.url("/post"), data=fields, timeout=5).json()

    assert sold["status"] == "ACCEPTED"


def test_it_takes_posts_only(buyer: LeadProsperFake) -> None:
    response = requests.get(buyer.url("/ping"), params=PING, timeout=5)

    assert response.status_code == 405
    assert response.json()["status"] == "ERROR"


def test_a_test_lead_is_marked_as_one(buyer: LeadProsperFake) -> None:
    ping_id = ping(buyer, lp_action="test")["ping_id"]

    assert post(buyer, ping_id, lp_action="test")["status"] == "ACCEPTED"
    assert buyer.accepted[0]["lp_action"] == "test"
