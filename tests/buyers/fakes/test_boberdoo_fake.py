"""The boberdoo fake answers the spec's example requests as the spec shows, and refuses what the
spec does not allow with its error; the post must carry back the ping's Lead_ID."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests

from tests.buyers.fakes.boberdoo import PATH, BoberdooFake
from tests.buyers.fakes.fake_server import ManualClock, xml_fields

KEY = "bbd-4f1c2a"
PING = {
    "Key": KEY,
    "API_Action": "pingPostLead",
    "Mode": "ping",
    "TYPE": "12",
    "SRC": "leadswitch",
    "Landing_Page": "https://solar.example/quote",
    "Zip": "85004",
    "Homeowner": "Yes",
    "Electric_Bill": "180",
}
POST_FIELDS = {
    **PING,
    "Mode": "post",
    "State": "AZ",
    "City": "Phoenix",
    "First_Name": "Dana",
    "Last_Name": "Ruiz",
    "Address": "12 Palm Lane",
    "Email": "dana.ruiz@example.com",
    "Primary_Phone": "6025550143",
    "IP_Address": "203.0.113.7",
    "TCPA_Consent": "Yes",
}


@pytest.fixture
def buyer(clock: ManualClock) -> Iterator[BoberdooFake]:
    with BoberdooFake(clock=clock, ping_ttl_s=60) as fake:
        yield fake


def ping(buyer: BoberdooFake, **changes: Any) -> requests.Response:
    return requests.get(buyer.url(PATH), params={**PING, **changes}, timeout=5)


def post(buyer: BoberdooFake, lead_id: str, **changes: Any) -> requests.Response:
    fields = {**POST_FIELDS, "Lead_ID": lead_id, **changes}
    return requests.post(buyer.url(PATH), data=fields, timeout=5)


def test_it_answers_the_example_ping_with_the_example_answer(buyer: BoberdooFake) -> None:
    response = ping(buyer)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/xml")
    assert xml_fields(response) == {"status": "Matched", "lead_id": "21777961", "price": "6.66"}
    assert buyer.received[0].method == "GET"
    assert buyer.received[0].request.query["Zip"] == ["85004"]


def test_it_sells_the_post_that_carries_the_pings_lead_id(buyer: BoberdooFake) -> None:
    lead_id = xml_fields(ping(buyer))["lead_id"]

    response = post(buyer, lead_id)

    assert xml_fields(response) == {"status": "Matched", "lead_id": lead_id, "price": "6.66"}
    assert buyer.received[1].request.media_type == "application/x-www-form-urlencoded"


def test_it_refuses_a_lead_id_it_never_issued(buyer: BoberdooFake) -> None:
    ping(buyer)

    assert xml_fields(post(buyer, "12345")) == {"status": "Error", "error": "Invalid Lead_ID"}


def test_it_takes_each_lead_id_once(buyer: BoberdooFake) -> None:
    lead_id = xml_fields(ping(buyer))["lead_id"]
    post(buyer, lead_id)

    assert xml_fields(post(buyer, lead_id)) == {
        "status": "Error",
        "error": "Lead_ID already posted",
    }


def test_it_refuses_a_lead_id_posted_too_late(buyer: BoberdooFake, clock: ManualClock) -> None:
    lead_id = xml_fields(ping(buyer))["lead_id"]
    clock.now += 61

    assert xml_fields(post(buyer, lead_id)) == {"status": "Error", "error": "Lead_ID has expired"}


def test_a_post_without_the_lead_id_is_an_error(buyer: BoberdooFake) -> None:
    fields = {**POST_FIELDS}
    response = requests.post(buyer.url(PATH), data=fields, timeout=5)

    assert xml_fields(response) == {"status": "Error", "error": "Missing required field: Lead_ID"}


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"Key": "wrong"}, "Invalid API Key"),
        ({"Key": ""}, "Invalid API Key"),
        ({"API_Action": "pingLead"}, "Invalid API_Action"),
        ({"Mode": "bid"}, "Invalid Mode"),
        ({"TYPE": "13"}, "Invalid TYPE"),
        ({"SRC": ""}, "Missing required field: SRC"),
        ({"Zip": ""}, "Missing required field: Zip"),
        ({"Zip": "8500"}, "Invalid value for field: Zip"),
        ({"Zip": "85004-1234"}, "Invalid value for field: Zip"),
        ({"Homeowner": "yes"}, "Invalid value for field: Homeowner"),
        ({"Electric_Bill": "a lot"}, "Invalid value for field: Electric_Bill"),
        ({"Cost": "0"}, "Invalid value for field: Cost"),
        ({"Test_Lead": "true"}, "Invalid value for field: Test_Lead"),
    ],
)
def test_it_refuses_a_malformed_ping(
    buyer: BoberdooFake, changes: dict[str, str], error: str
) -> None:
    assert xml_fields(ping(buyer, **changes)) == {"status": "Error", "error": error}
    assert buyer.pings.issued == []


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"First_Name": ""}, "Missing required field: First_Name"),
        ({"Primary_Phone": "602-555-0143"}, "Invalid value for field: Primary_Phone"),
        ({"Primary_Phone": "+16025550143"}, "Invalid value for field: Primary_Phone"),
        ({"Email": "dana.ruiz"}, "Invalid value for field: Email"),
        ({"State": "Arizona"}, "Invalid value for field: State"),
        ({"IP_Address": "203.0.113"}, "Invalid value for field: IP_Address"),
        ({"Landing_Page": "solar.example/quote"}, "Invalid value for field: Landing_Page"),
    ],
)
def test_it_refuses_a_malformed_post(
    buyer: BoberdooFake, changes: dict[str, str], error: str
) -> None:
    lead_id = xml_fields(ping(buyer))["lead_id"]

    assert xml_fields(post(buyer, lead_id, **changes)) == {"status": "Error", "error": error}


def test_a_refused_post_leaves_the_lead_id_unspent(buyer: BoberdooFake) -> None:
    lead_id = xml_fields(ping(buyer))["lead_id"]
    post(buyer, lead_id, First_Name="")

    assert xml_fields(post(buyer, lead_id))["status"] == "Matched"


def test_it_answers_json_when_asked(buyer: BoberdooFake) -> None:
    response = ping(buyer, Format="JSON")

    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {
        "response": {"status": "Matched", "lead_id": "21777961", "price": "6.66"}
    }


def test_it_refuses_an_unknown_answer_format(buyer: BoberdooFake) -> None:
    assert xml_fields(ping(buyer, Format="CSV")) == {"status": "Error", "error": "Invalid Format"}


def test_a_declining_buyer_answers_unmatched_without_a_lead_id(buyer: BoberdooFake) -> None:
    buyer.decline = True

    assert xml_fields(ping(buyer)) == {"status": "Unmatched"}


def test_a_rejecting_buyer_says_why_and_spends_the_lead_id(buyer: BoberdooFake) -> None:
    lead_id = xml_fields(ping(buyer))["lead_id"]
    buyer.reject_post = "Duplicate lead"

    assert xml_fields(post(buyer, lead_id)) == {
        "status": "Error",
        "lead_id": lead_id,
        "error": "Duplicate lead",
    }
    buyer.reject_post = None
    assert xml_fields(post(buyer, lead_id))["error"] == "Lead_ID already posted"


def test_it_bids_the_price_it_is_given(clock: ManualClock) -> None:
    with BoberdooFake(price=Decimal("14.2"), clock=clock) as buyer:
        lead_id = xml_fields(ping(buyer))["lead_id"]
        assert xml_fields(post(buyer, lead_id))["price"] == "14.20"


def test_a_test_lead_matches_only_the_test_zip(buyer: BoberdooFake) -> None:
    assert xml_fields(ping(buyer, Test_Lead="1")) == {"status": "Unmatched"}
    assert xml_fields(ping(buyer, Test_Lead="1", Zip="99999"))["status"] == "Matched"
    assert buyer.test_leads == ["ping", "ping"]


def test_full_mode_sells_without_a_ping(buyer: BoberdooFake) -> None:
    fields = {**POST_FIELDS, "Mode": "full"}
    response = requests.post(buyer.url(PATH), data=fields, timeout=5)

    assert xml_fields(response) == {"status": "Matched", "lead_id": "21777961", "price": "6.66"}


def test_full_mode_wants_the_post_fields(buyer: BoberdooFake) -> None:
    response = ping(buyer, Mode="full")

    assert xml_fields(response)["error"] == "Missing required field: State"


def test_it_refuses_a_body_that_is_not_a_form(buyer: BoberdooFake) -> None:
    response = requests.post(buyer.url(PATH), json=PING, timeout=5)

    assert xml_fields(response) == {"status": "Error", "error": "Unsupported Content-Type"}


def test_it_reads_a_form_post_with_the_credentials_in_the_query(buyer: BoberdooFake) -> None:
    credentials = {"Key": KEY, "API_Action": "pingPostLead"}
    lead = {k: v for k, v in PING.items() if k not in credentials}
    response = requests.post(buyer.url(PATH), params=credentials, data=lead, timeout=5)

    assert xml_fields(response)["status"] == "Matched"


def test_it_knows_one_path_only(buyer: BoberdooFake) -> None:
    assert requests.get(buyer.url("/api.php"), params=PING, timeout=5).status_code == 404
