"""The LeadsPedia fake takes a whole lead, campaign key included, as a GET query string (or a
form POST), answers a ping with a ping_id and a price, sells the post that carries that
lp_ping_id, and fails what the spec does not allow."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests
from defusedxml import ElementTree

from tests.buyers.fakes.fake_server import ManualClock, xml_fields
from tests.buyers.fakes.leadspedia import LeadsPediaFake

CAMPAIGN = {"lp_campaign_id": "64c9a3f1b2e7d", "lp_campaign_key": "Q7vXk2LmP9sRt4WyZb8N"}
PING = {
    **CAMPAIGN,
    "lp_s1": "brightpath",
    "state": "AZ",
    "zip_code": "85004",
    "average_utility_bill": "$151-$200",
    "residence_ownership": "Own",
    "shade": "No Shade",
    "utility_company": "Arizona Public Service",
}
POST = {
    **PING,
    "first_name": "Dana",
    "last_name": "Ruiz",
    "phone_home": "6025550143",
    "address": "12 Palm Lane",
    "city": "Phoenix",
    "email_address": "dana.ruiz@example.com",
    "ip_address": "203.0.113.7",
    "vendor_lead_id": "L-1001",
    "universal_lead_id": "0C2F5E7A-1B3D-4E6F-8A9B-0C1D2E3F4A5B",
}


@pytest.fixture
def buyer(clock: ManualClock) -> Iterator[LeadsPediaFake]:
    with LeadsPediaFake(clock=clock, ping_ttl_s=45) as fake:
        yield fake


def ping(buyer: LeadsPediaFake, **changes: Any) -> dict[str, Any]:
    params = {k: v for k, v in {**PING, "lp_response": "JSON", **changes}.items() if v is not None}
    return requests.get(buyer.url("/ping.do"), params=params, timeout=5).json()


def post(buyer: LeadsPediaFake, ping_id: str | None, **changes: Any) -> dict[str, Any]:
    params = {**POST, "lp_response": "JSON", "lp_ping_id": ping_id, **changes}
    params = {k: v for k, v in params.items() if v is not None}
    return requests.get(buyer.url("/post.do"), params=params, timeout=5).json()


def failed(msg: str, *errors: tuple[str, str]) -> dict[str, Any]:
    answer: dict[str, Any] = {"result": "failed", "msg": msg}
    if errors:
        answer["errors"] = [{"field": name, "error": error} for name, error in errors]
    return answer


def test_it_answers_a_get_ping_in_xml_by_default(buyer: LeadsPediaFake) -> None:
    response = requests.get(buyer.url("/ping.do"), params=PING, timeout=5)

    answer = xml_fields(response)
    assert response.headers["Content-Type"].startswith("application/xml")
    assert answer["result"] == "success"
    assert answer["ping_id"] in buyer.pings.issued
    assert answer["price"] == "18.50"


def test_it_sells_the_get_post_that_carries_the_ping_id(buyer: LeadsPediaFake) -> None:
    ping_id = ping(buyer)["ping_id"]

    answer = post(buyer, ping_id)

    assert answer["result"] == "success"
    assert answer["msg"] == "Lead Accepted"
    assert answer["price"] == "18.50"
    assert answer["lead_id"]
    exchange = buyer.requests_to("/post.do")[0]
    assert exchange.method == "GET"
    assert exchange.request.body == b""
    # The whole lead, personal data and campaign key included, rides in the URL.
    assert exchange.request.query["phone_home"] == ["6025550143"]
    assert exchange.request.query["lp_campaign_key"] == ["Q7vXk2LmP9sRt4WyZb8N"]


def test_it_answers_a_post_in_xml_too(buyer: LeadsPediaFake) -> None:
    ping_id = ping(buyer)["ping_id"]
    params = {**POST, "lp_ping_id": ping_id}

    answer = xml_fields(requests.get(buyer.url("/post.do"), params=params, timeout=5))

    assert answer["result"] == "success"
    assert answer["msg"] == "Lead Accepted"


def test_it_takes_a_form_post_as_well(buyer: LeadsPediaFake) -> None:
    answer = requests.post(buyer.url("/ping.do"), data={**PING, "lp_response": "json"}, timeout=5)
    ping_id = answer.json()["ping_id"]

    sold = requests.post(
        buyer.url("/post.do"),
        params={**CAMPAIGN, "lp_response": "JSON"},
        data={**POST, "lp_ping_id": ping_id},
        timeout=5,
    )

    assert sold.json()["result"] == "success"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"lp_campaign_id": "64c9a3f1b2e7e"}, failed("Invalid Campaign ID")),
        ({"lp_campaign_key": None}, failed("Invalid Campaign Key")),
        ({"lp_campaign_key": "q7vxk2lmp9srt4wyzb8n"}, failed("Invalid Campaign Key")),
        ({"lp_s1": None}, failed("Invalid Data", ("lp_s1", "Missing Required Field"))),
        ({"zip_code": "8500"}, failed("Invalid Data", ("zip_code", "Invalid Zip Code"))),
        ({"state": "Arizona"}, failed("Invalid Data", ("state", "Invalid State"))),
        ({"shade": "no shade"}, failed("Invalid Data", ("shade", "Invalid Value"))),
        ({"lp_test": "yes"}, failed("Invalid Data", ("lp_test", "Invalid Value"))),
        (
            {"utility_company": "", "residence_ownership": None},
            failed(
                "Invalid Data",
                ("residence_ownership", "Missing Required Field"),
                ("utility_company", "Missing Required Field"),
            ),
        ),
    ],
)
def test_it_fails_a_malformed_ping(
    buyer: LeadsPediaFake, changes: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert ping(buyer, **changes) == expected
    assert buyer.pings.issued == []


def test_it_fails_an_unknown_answer_format_in_xml(buyer: LeadsPediaFake) -> None:
    response = requests.get(buyer.url("/ping.do"), params={**PING, "lp_response": "CSV"}, timeout=5)

    assert xml_fields(response) == {"result": "failed", "msg": "Invalid lp_response"}


def test_a_ping_needs_nothing_personal(buyer: LeadsPediaFake) -> None:
    personal = ("first_name", "last_name", "phone_home", "email_address", "ip_address")
    assert not any(name in PING for name in personal)
    assert ping(buyer)["result"] == "success"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"phone_home": "602-555-0143"},
            failed("Invalid Data", ("phone_home", "Invalid Phone Number")),
        ),
        (
            {"phone_home": "1025550143"},
            failed("Invalid Data", ("phone_home", "Invalid Phone Number")),
        ),
        (
            {"email_address": "dana.ruiz"},
            failed("Invalid Data", ("email_address", "Invalid E-Mail Address")),
        ),
        ({"ip_address": "999.1.1.1"}, failed("Invalid Data", ("ip_address", "Invalid IP Address"))),
        (
            {"first_name": None, "vendor_lead_id": ""},
            failed(
                "Invalid Data",
                ("first_name", "Missing Required Field"),
                ("vendor_lead_id", "Missing Required Field"),
            ),
        ),
    ],
)
def test_it_fails_a_malformed_post(
    buyer: LeadsPediaFake, changes: dict[str, Any], expected: dict[str, Any]
) -> None:
    ping_id = ping(buyer)["ping_id"]

    assert post(buyer, ping_id, **changes) == expected


def test_a_post_without_the_ping_id_fails(buyer: LeadsPediaFake) -> None:
    assert post(buyer, None) == failed("Invalid Data", ("lp_ping_id", "Missing Ping ID"))


def test_it_fails_a_ping_id_it_never_issued(buyer: LeadsPediaFake) -> None:
    assert post(buyer, "a" * 24) == failed("Invalid Ping ID")


def test_it_takes_each_ping_id_once(buyer: LeadsPediaFake) -> None:
    ping_id = ping(buyer)["ping_id"]
    post(buyer, ping_id)

    assert post(buyer, ping_id) == failed("Ping ID Already Used")


def test_it_fails_a_ping_id_posted_too_late(buyer: LeadsPediaFake, clock: ManualClock) -> None:
    ping_id = ping(buyer)["ping_id"]
    clock.now += 46

    assert post(buyer, ping_id) == failed("Ping ID Expired")


def test_a_lead_it_bought_before_is_a_duplicate(buyer: LeadsPediaFake) -> None:
    post(buyer, ping(buyer)["ping_id"])

    assert post(buyer, ping(buyer)["ping_id"], phone_home="6025550199") == failed("Duplicate Lead")


def test_a_declining_buyer_says_why(buyer: LeadsPediaFake) -> None:
    buyer.decline = "No Buyers Available"

    assert ping(buyer) == failed("No Buyers Available")


def test_a_rejecting_buyer_says_why(buyer: LeadsPediaFake) -> None:
    ping_id = ping(buyer)["ping_id"]
    buyer.reject_post = "Homeowner Verification Failed"

    assert post(buyer, ping_id) == failed("Homeowner Verification Failed")
    assert buyer.accepted == []


def test_a_failure_in_xml_lists_its_errors(buyer: LeadsPediaFake) -> None:
    response = requests.get(buyer.url("/ping.do"), params={**PING, "zip_code": "x"}, timeout=5)

    root = ElementTree.fromstring(response.content)
    assert root.findtext("result") == "failed"
    assert root.findtext("msg") == "Invalid Data"
    assert root.findtext("errors/error/field") == "zip_code"
    assert root.findtext("errors/error/error") == "Invalid Zip Code"


def test_a_test_post_is_answered_but_not_kept(buyer: LeadsPediaFake) -> None:
    ping_id = ping(buyer)["ping_id"]

    assert post(buyer, ping_id, lp_test="1")["result"] == "success"
    assert buyer.accepted == []
    assert len(buyer.test_posts) == 1


def test_it_bids_the_price_it_is_given(clock: ManualClock) -> None:
    with LeadsPediaFake(price=Decimal("7"), clock=clock) as buyer:
        answer = ping(buyer)
        assert answer["price"] == "7.00"
        assert post(buyer, answer["ping_id"])["price"] == "7.00"


def test_it_refuses_a_body_that_is_not_a_form(buyer: LeadsPediaFake) -> None:
    response = requests.post(
        buyer.url("/ping.do"), params={"lp_response": "JSON"}, json=PING, timeout=5
    )

    assert response.json() == failed("Unsupported Content-Type")


def test_it_takes_get_and_post_only(buyer: LeadsPediaFake) -> None:
    response = requests.put(buyer.url("/post.do"), params=POST, timeout=5)

    assert response.status_code == 405
