"""The partner intake API through the URL router and real key authentication.

Every status code of the contract, what is stored for each request, idempotent replay, the
normalised lead, who may see which lead, the verticals a source may read, and postbacks.
Tests that need a routing run use a transactional database (routing is enqueued on commit) and
eager Celery, whatever broker the suite was started with.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from buyers.models import Contract, ContractStatus, DeliveryEndpoint, EndpointKind
from leads.api import auth
from leads.api.auth import unauthenticated_count
from leads.api.serializers import FORMAT_HINTS
from leads.intake import NOT_UTF8
from leads.models import (
    DuplicateScope,
    IdempotencyRecord,
    Lead,
    LeadStatus,
    PayoutModel,
    Postback,
    PostbackStatus,
    Source,
    SuppressionList,
    Vertical,
)
from leads.services import source_api_key_create, source_api_key_revoke, suppression_list_add
from leads.tasks import POSTBACK_MAX_ATTEMPTS
from routing.models import Attempt, Sale
from tests.buyers.factories import BuyerFactory, ContractFactory
from tests.leads.conftest import LEADS, auto_lead, lead_url, sold_answer, submit
from tests.leads.factories import SourceFactory, api_key_for
from tests.outbound.receiver import Receiver, receiving

PROBLEM = "application/problem+json"


def get(client: Client, key: str, path: str, **params: str):
    return client.get(path, params, HTTP_AUTHORIZATION=f"Bearer {key}")


def problem(response, status: int, slug: str) -> dict[str, Any]:
    """Assert an RFC 9457 answer of this status and type; return its body."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["type"] == f"/api/problems/{slug}"
    assert body["title"]
    assert body["detail"]
    return body


def stored(response) -> Lead:
    return Lead.objects.get(pk=response.json()["id"])


@pytest.fixture
def rival(demo) -> tuple[Source, str]:
    """Another partner allowed the same verticals."""
    source = SourceFactory(verticals=list(Vertical.objects.all()))
    return source, api_key_for(source)


@pytest.fixture
def outsider(demo) -> tuple[Source, str]:
    """A partner allowed no vertical at all."""
    source = SourceFactory()
    return source, api_key_for(source)


# --- 202 Accepted ----------------------------------------------------------------------------


def test_a_valid_lead_is_answered_202_with_its_id_status_url_and_location(client, partner):
    source, key = partner
    body = json.dumps(auto_lead(1))

    response = submit(client, key, body)

    assert response.status_code == 202
    assert response["Content-Type"] == "application/json"
    lead = Lead.objects.get()
    assert response.json() == {"id": str(lead.pk), "status": "accepted", "url": lead_url(lead.pk)}
    assert response["Location"] == lead_url(lead.pk)
    assert lead.status == LeadStatus.ACCEPTED
    assert lead.source == source
    assert lead.api_key.source == source
    assert lead.raw_body == body
    assert lead.remote_ip == "127.0.0.1"
    assert (lead.sub_id, lead.is_test, lead.reason, lead.errors) == ("spring", False, "", {})
    assert lead.consent == {
        "text": "I agree to be contacted by Acme Insurance and its partners.",
        "timestamp": "2026-05-01T14:03:00Z",
        "ip": "203.0.113.7",
    }


def test_the_stored_lead_is_normalised_and_enriched_from_its_zip_code(client, partner):
    _, key = partner
    sent = auto_lead(
        7,
        first_name="  mary-ann ",
        last_name="O'NEIL",
        email=" Mary.Major7@EXAMPLE.com ",
        phone="212.555.0007",
        zip_code="10001-4321",
    )

    lead = stored(submit(client, key, sent))

    assert lead.status == LeadStatus.ACCEPTED
    assert lead.data["first_name"] == "Mary-Ann"
    assert lead.data["last_name"] == "O'Neil"
    assert lead.data["email"] == lead.email == "mary.major7@example.com"
    assert lead.data["phone"] == lead.phone == "+12125550007"
    # As a seller hashes them in an inbound ping: the normalised values.
    assert lead.email_sha256 == hashlib.sha256(b"mary.major7@example.com").hexdigest()
    assert lead.phone_sha256 == hashlib.sha256(b"+12125550007").hexdigest()
    assert lead.data["zip_code"] == lead.zip_code == "10001"
    assert {k: lead.data[k] for k in ("city", "county", "state", "time_zone")} == {
        "city": "New York",
        "county": "New York County",
        "state": "NY",
        "time_zone": "America/New_York",
    }
    assert lead.state == "NY"
    assert lead.data["vehicle_year"] == 2019
    assert lead.data["date_of_birth"] == "1980-04-02"


def test_a_state_given_by_name_that_agrees_with_the_zip_code_is_stored_as_its_code(client, partner):
    _, key = partner
    lead = stored(submit(client, key, auto_lead(8, state="new york")))
    assert (lead.status, lead.state, lead.data["state"]) == (LeadStatus.ACCEPTED, "NY", "NY")


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/vnd.leadswitch+json"]
)
def test_json_media_types_with_parameters_or_a_json_suffix_are_accepted(
    client, partner, content_type
):
    _, key = partner
    response = submit(client, key, auto_lead(2), content_type=content_type)
    assert response.status_code == 202


def test_with_prefer_wait_and_no_outcome_by_the_deadline_it_answers_202(client, partner):
    # No routing run happens here (the test transaction never commits): the wait runs out.
    _, key = partner
    response = submit(client, key, auto_lead(3), prefer="wait=1")

    assert response.status_code == 202
    assert response.json()["status"] == "accepted"
    assert response["Vary"] == "Prefer"


# --- 201 with Prefer: wait -------------------------------------------------------------------


@pytest.fixture
def routed_in_process(transactional_db, eager_celery) -> None:
    """Routing runs in process as the lead is taken, and commits: Prefer: wait gets its outcome."""


def submit_and_wait(client: Client, key: str, body: Any, **headers: str):
    """Submit with Prefer: wait=5 and return the answer, which must be the final 201."""
    response = submit(client, key, body, prefer="wait=5", **headers)
    assert response.status_code == 201, response.content
    return response


@pytest.mark.usefixtures("routed_in_process")
def test_with_prefer_wait_a_sold_lead_is_answered_201_with_price_and_payout(
    client, partner, buyer_contract
):
    _, key = partner

    response = submit_and_wait(client, key, auto_lead(10))

    lead = Lead.objects.get()
    assert response.json() == sold_answer(lead)
    # The demo's auto-insurance scoring: currently insured (15) and a 2019 vehicle (10).
    assert (lead.score, lead.tier) == (25, "cold")
    assert response["Location"] == lead_url(lead.pk)
    price, payout = Decimal("12.50"), Decimal("5.00")
    assert (lead.status, lead.sale_price, lead.payout) == (LeadStatus.SOLD, price, payout)
    sale = Sale.objects.get(lead=lead)
    assert (sale.contract, sale.price, sale.payout) == (buyer_contract, price, payout)
    detail = get(client, key, lead_url(lead.pk)).json()
    assert (detail["status"], detail["payout"]) == ("sold", "5.00")
    assert "buyer_price" not in detail
    assert detail["sold_at"] is not None


@pytest.mark.usefixtures("routed_in_process", "buyer_contract")
# Whether Celery re-raises an in-process task's error is Celery's setting (an operator may turn
# it on to debug): the partner's answer must not depend on it.
@pytest.mark.parametrize("propagates", [False, True])
def test_in_process_an_error_inside_routing_still_answers_the_partner_202(
    client, partner, monkeypatch, settings, caplog, *, propagates
):
    # The embedded default runs routing inside the partner's request: a crash there must not
    # become a 500 for a lead that is already stored (its retry would then get 409).
    import routing.engine

    settings.CELERY_TASK_EAGER_PROPAGATES = propagates

    def crash(**_: object) -> str:
        raise RuntimeError("a bug inside routing")

    monkeypatch.setattr(routing.engine, "lead_route", crash)
    _, key = partner

    response = submit(client, key, auto_lead(12))

    assert response.status_code == 202, response.content
    lead = Lead.objects.get()
    assert response.json()["id"] == str(lead.pk)
    assert lead.status == LeadStatus.ACCEPTED  # left for the sweeper, as a worker would leave it
    assert any(
        r.message == "routing run failed; the lead is left for the sweepers" and r.exc_info
        for r in caplog.records
    )
    # With Prefer: wait the partner waits for an outcome that does not come: 202, as with a broker.
    waited = submit(client, key, auto_lead(14), prefer="wait=1")
    assert waited.status_code == 202, waited.content
    # A failed task is not a broker that is down: the next lead is routed at once.
    monkeypatch.undo()
    settings.CELERY_TASK_EAGER_PROPAGATES = propagates
    submit_and_wait(client, key, auto_lead(13))


@pytest.mark.usefixtures("routed_in_process", "buyer_contract")
def test_a_revenue_share_source_is_paid_its_share_of_the_price(client, demo):
    source = SourceFactory(
        verticals=list(Vertical.objects.all()),
        payout_model=PayoutModel.REVENUE_SHARE,
        revenue_share_percent=Decimal("30.00"),
    )

    response = submit_and_wait(client, api_key_for(source), auto_lead(11))

    assert response.json()["payout"] == "3.75"
    assert Lead.objects.get().sale_price == Decimal("12.50")


@pytest.mark.usefixtures("routed_in_process")
def test_with_prefer_wait_a_lead_no_contract_may_buy_is_answered_201_unsold(
    client, partner, buyer_contract
):
    _, key = partner
    Contract.objects.filter(pk=buyer_contract.pk).update(status=ContractStatus.PAUSED)

    response = submit_and_wait(client, key, auto_lead(12))

    lead = Lead.objects.get()
    assert response.json() == {
        "id": str(lead.pk),
        "status": "unsold",
        "payout": None,
        "score": 25,
        "tier": "cold",
        "url": lead_url(lead.pk),
    }
    assert lead.status == LeadStatus.UNSOLD
    assert not Sale.objects.exists()


@pytest.mark.usefixtures("routed_in_process")
def test_the_replay_of_a_waited_request_is_its_final_201(client, partner, buyer_contract):
    _, key = partner
    body = json.dumps(auto_lead(13))

    first = submit_and_wait(client, key, body, idempotency_key="order-13")
    again = submit_and_wait(client, key, body, idempotency_key="order-13")

    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert Lead.objects.count() == 1
    assert Sale.objects.count() == 1


# --- Test leads ------------------------------------------------------------------------------


@pytest.fixture
def big_spender(buyer_contract, simulator) -> Contract:
    """A contract that outbids buyer_contract but takes no test leads."""
    contract = ContractFactory(
        buyer=BuyerFactory(company="Big Spender Inc"), vertical=buyer_contract.vertical
    )
    for kind, path in ((EndpointKind.PING, "/ping?bid=40.00"), (EndpointKind.POST, "/post")):
        DeliveryEndpoint.objects.create(contract=contract, kind=kind, url=simulator.base_url + path)
    return contract


@pytest.mark.usefixtures("routed_in_process")
def test_a_test_lead_goes_only_to_contracts_that_take_test_leads_and_costs_nothing(
    client, partner, buyer_contract, big_spender
):
    _, key = partner

    response = submit_and_wait(client, key, {**auto_lead(20), "test": True})

    assert (response.json()["status"], response.json()["payout"]) == ("sold", "0.00")
    lead = Lead.objects.get()
    assert lead.is_test
    sale = Sale.objects.get(lead=lead)
    assert (sale.contract, sale.price, sale.payout) == (buyer_contract, Decimal(0), Decimal(0))
    assert not Attempt.objects.filter(contract=big_spender).exists()


@pytest.mark.usefixtures("routed_in_process")
def test_the_same_lead_not_marked_test_goes_to_the_highest_bidder_at_its_price(
    client, partner, big_spender
):
    _, key = partner

    response = submit_and_wait(client, key, auto_lead(21))

    assert response.json()["payout"] == "5.00"
    assert (Sale.objects.get().contract, Sale.objects.get().price) == (big_spender, Decimal(40))


@pytest.mark.usefixtures("routed_in_process")
def test_a_test_lead_that_no_contract_takes_is_unsold(client, partner, buyer_contract):
    _, key = partner
    Contract.objects.filter(pk=buyer_contract.pk).update(accepts_test_leads=False)

    response = submit_and_wait(client, key, {**auto_lead(22), "test": True})

    assert response.json()["status"] == "unsold"
    assert not Attempt.objects.exists()


# --- 400 -------------------------------------------------------------------------------------


def test_malformed_json_is_400_and_stored_with_its_raw_body(client, partner):
    source, key = partner
    body = '{"vertical": "auto-insurance", "fields": {'

    response = submit(client, key, body)

    answer = problem(response, 400, "malformed-request")
    assert answer["detail"] == (
        "Not valid JSON: Expecting property name enclosed in double quotes: line 1 column 43 "
        "(char 42)"
    )
    assert answer["errors"] == {"_": [answer["detail"]]}
    lead = stored(response)
    assert (lead.status, lead.source, lead.vertical) == (LeadStatus.INVALID, source, None)
    assert lead.raw_body == body
    assert lead.reason == answer["detail"]
    assert lead.errors == {"_": [answer["detail"]]}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", "The body is empty; send the lead as a JSON object."),
        (b"  \n", "The body is empty; send the lead as a JSON object."),
        (b'{"vertical": "caf\xe9"}', NOT_UTF8),
        (b"[" * 20_000, "Nested too deeply to read."),
    ],
)
def test_bodies_that_cannot_be_read_as_json_are_400(client, partner, body, detail):
    _, key = partner
    response = submit(client, key, body)

    assert problem(response, 400, "malformed-request")["detail"] == detail
    assert stored(response).status == LeadStatus.INVALID


def test_a_raw_nul_byte_is_400_and_the_body_is_still_stored(client, partner):
    # PostgreSQL's text refuses NUL: it is kept as U+FFFD so that ops still see the request.
    _, key = partner

    response = submit(client, key, b'{"vertical": "auto\x00"}')

    problem(response, 400, "malformed-request")
    assert stored(response).raw_body == '{"vertical": "auto\ufffd"}'


def test_a_nul_character_escaped_in_a_field_is_400(client, partner):
    _, key = partner
    body = json.dumps(auto_lead(30, first_name="Ma\u0000ry"))
    assert "\\u0000" in body

    response = submit(client, key, body)

    answer = problem(response, 400, "malformed-request")
    assert answer["errors"] == {
        "_": ["Text may not contain NUL characters (\\u0000) or unpaired surrogates."]
    }
    assert stored(response).raw_body == body


def test_envelope_errors_are_400_with_per_member_errors(client, partner):
    _, key = partner

    response = submit(client, key, {"vertical": "auto-insurance", "fields": [], "colour": 1})

    answer = problem(response, 400, "malformed-request")
    assert answer["detail"] == "The body has 2 errors; see errors."
    assert answer["errors"] == {
        "colour": [
            "Unknown member; the body has vertical, fields, sub_id, consent, test, ping_id."
        ],
        "fields": ["Give an object of field names to values, not a list."],
    }
    lead = stored(response)
    assert (lead.status, lead.vertical, lead.errors) == (LeadStatus.INVALID, None, answer["errors"])
    assert answer["id"] == str(lead.pk)


def test_a_body_that_is_not_an_object_is_400(client, partner):
    _, key = partner
    answer = problem(submit(client, key, [auto_lead(1)]), 400, "malformed-request")
    assert answer["errors"] == {"_": ["Send a JSON object, not a list."]}


def test_field_errors_are_400_invalid_lead_naming_every_field(client, partner):
    source, key = partner
    sent = auto_lead(31, email="not-an-email", vehicle_year=1900, colour="red")
    del sent["fields"]["zip_code"]

    response = submit(client, key, sent)

    answer = problem(response, 400, "invalid-lead")
    assert answer["title"] == "Invalid lead"
    assert answer["detail"] == "The lead has 4 invalid fields; see errors."
    assert set(answer["errors"]) == {
        "fields.colour",
        "fields.email",
        "fields.vehicle_year",
        "fields.zip_code",
    }
    assert answer["errors"]["fields.vehicle_year"] == ["At least 1981."]
    assert answer["errors"]["fields.zip_code"] == ["This field is required."]
    assert answer["errors"]["fields.colour"][0].startswith("Unknown field;")
    lead = stored(response)
    assert answer["id"] == str(lead.pk)
    assert (lead.status, lead.source, lead.vertical.slug) == (
        LeadStatus.INVALID,
        source,
        "auto-insurance",
    )
    assert lead.errors == answer["errors"]
    assert lead.reason == answer["detail"]
    assert lead.raw_body == json.dumps(sent)


def test_a_state_that_contradicts_the_zip_code_is_400(client, partner):
    _, key = partner
    answer = problem(submit(client, key, auto_lead(32, state="CA")), 400, "invalid-lead")
    assert answer["errors"] == {"fields.state": ["CA contradicts ZIP code 10001, which is in NY."]}


@pytest.mark.parametrize("idempotency_key", ["x" * 256, "two words"])
def test_a_malformed_idempotency_key_is_400(client, partner, idempotency_key):
    _, key = partner
    response = submit(client, key, auto_lead(33), idempotency_key=idempotency_key)

    detail = "An Idempotency-Key is 1 to 255 printable ASCII characters."
    assert problem(response, 400, "malformed-request")["errors"] == {"Idempotency-Key": [detail]}
    assert stored(response).reason == detail
    assert not IdempotencyRecord.objects.exists()


# --- 401 -------------------------------------------------------------------------------------


def test_a_request_without_a_key_is_401_with_www_authenticate_and_is_not_stored(client, partner):
    hour = f"{timezone.now():%Y%m%d%H}"
    before = unauthenticated_count(hour)

    response = submit(client, None, auto_lead(40))

    answer = problem(response, 401, "unauthenticated")
    assert answer["title"] == "Authentication required"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert not Lead.objects.exists()
    assert unauthenticated_count(hour) == before + 1


def test_an_unknown_key_is_401_and_is_not_stored(client, partner):
    response = submit(client, "lsk_" + "x" * 43, auto_lead(41))

    answer = problem(response, 401, "unauthenticated")
    assert answer["detail"] == "The API key is unknown or has been revoked."
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert not Lead.objects.exists()


def test_a_revoked_key_is_401_while_the_sources_other_key_still_works(client, partner):
    source, key = partner
    revoked, revoked_key = source_api_key_create(source=source, name="old")
    assert source_api_key_revoke(api_key=revoked)

    answer = problem(submit(client, revoked_key, auto_lead(42)), 401, "unauthenticated")

    assert answer["detail"] == "The API key is unknown or has been revoked."
    assert not Lead.objects.exists()
    assert submit(client, key, auto_lead(42)).status_code == 202


def test_a_key_sent_in_another_scheme_is_401(client, partner):
    _, key = partner
    response = client.post(
        LEADS,
        data=json.dumps(auto_lead(43)),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {key}",
    )

    answer = problem(response, 401, "unauthenticated")
    assert answer["detail"] == "Send your API key as `Authorization: Bearer <key>`."
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_reads_without_a_key_are_401_too(client, partner):
    for path in (LEADS, "/api/v1/verticals/"):
        response = client.get(path)
        problem(response, 401, "unauthenticated")
        assert response["WWW-Authenticate"] == 'Bearer realm="api"'


# --- 403 -------------------------------------------------------------------------------------


def test_an_inactive_sources_lead_is_403_and_stored(client, partner):
    source, key = partner
    Source.objects.filter(pk=source.pk).update(active=False)

    response = submit(client, key, auto_lead(50))

    answer = problem(response, 403, "forbidden")
    assert answer["detail"] == (
        "This source is inactive; ask your account manager to reactivate it."
    )
    lead = stored(response)
    assert answer["id"] == str(lead.pk)
    assert (lead.status, lead.reason, lead.vertical.slug) == (
        LeadStatus.INVALID,
        answer["detail"],
        "auto-insurance",
    )


def test_an_inactive_source_may_not_read_either(client, partner):
    source, key = partner
    Source.objects.filter(pk=source.pk).update(active=False)

    for path in (LEADS, "/api/v1/verticals/"):
        answer = problem(get(client, key, path), 403, "forbidden")
        assert answer["detail"] == (
            "This source is inactive; ask your account manager to reactivate it."
        )


def test_a_vertical_the_source_may_not_submit_to_is_403_and_stored(client, demo):
    source = SourceFactory(verticals=[Vertical.objects.get(slug="solar")])

    response = submit(client, api_key_for(source), auto_lead(51))

    answer = problem(response, 403, "forbidden")
    assert answer["detail"] == (
        "This source may not submit to 'auto-insurance'; its verticals are solar."
    )
    lead = stored(response)
    assert (lead.status, lead.source, lead.vertical.slug, lead.reason) == (
        LeadStatus.INVALID,
        source,
        "auto-insurance",
        answer["detail"],
    )


def test_an_unknown_or_inactive_vertical_is_403(client, partner):
    _, key = partner
    Vertical.objects.filter(slug="solar").update(active=False)

    unknown = problem(
        submit(client, key, {**auto_lead(52), "vertical": "mortgage"}), 403, "forbidden"
    )
    inactive = problem(
        submit(client, key, {**auto_lead(53), "vertical": "solar"}), 403, "forbidden"
    )

    assert unknown["detail"] == (
        "This source may not submit to 'mortgage'; its verticals are auto-insurance."
    )
    assert inactive["detail"] == (
        "This source may not submit to 'solar'; its verticals are auto-insurance."
    )
    assert Lead.objects.get(pk=unknown["id"]).vertical is None


# --- 409 -------------------------------------------------------------------------------------


def test_a_duplicate_of_the_sources_own_lead_is_409_naming_the_earlier_lead(client, partner):
    _, key = partner
    first = stored(submit(client, key, auto_lead(60)))

    response = submit(client, key, auto_lead(60))

    answer = problem(response, 409, "duplicate-lead")
    assert (
        answer["detail"] == "A lead with the same email or phone was accepted in the last 30 days."
    )
    assert answer["duplicate_of"] == str(first.pk)
    duplicate = stored(response)
    assert answer["id"] == str(duplicate.pk) != str(first.pk)
    assert (duplicate.status, duplicate.duplicate_of, duplicate.reason) == (
        LeadStatus.DUPLICATE,
        first,
        answer["detail"],
    )
    assert get(client, key, lead_url(duplicate.pk)).json()["duplicate_of"] == str(first.pk)


def test_a_lead_sharing_only_its_phone_written_otherwise_is_a_duplicate(client, partner):
    _, key = partner
    first = stored(submit(client, key, auto_lead(61)))

    again = auto_lead(61, email="someone.else@example.com", phone="+1 212-555-0061")
    answer = problem(submit(client, key, again), 409, "duplicate-lead")

    assert answer["duplicate_of"] == str(first.pk)


def test_a_duplicate_of_another_sources_lead_does_not_name_it(client, partner, rival):
    _, key = partner
    _, rival_key = rival
    submit(client, rival_key, auto_lead(62))

    response = submit(client, key, auto_lead(62))

    answer = problem(response, 409, "duplicate-lead")
    assert "duplicate_of" not in answer
    assert str(Lead.objects.get(source=rival[0]).pk) not in response.content.decode()
    assert get(client, key, lead_url(answer["id"])).json()["duplicate_of"] is None


def test_under_per_source_scope_another_sources_lead_is_no_duplicate(client, partner, rival):
    _, key = partner
    _, rival_key = rival
    Vertical.objects.filter(slug="auto-insurance").update(duplicate_scope=DuplicateScope.SOURCE)
    submit(client, rival_key, auto_lead(63))

    assert submit(client, key, auto_lead(63)).status_code == 202
    problem(submit(client, key, auto_lead(63)), 409, "duplicate-lead")


def test_a_lead_older_than_the_lookback_window_is_no_duplicate(client, partner):
    _, key = partner
    first = stored(submit(client, key, auto_lead(64)))
    Lead.objects.filter(pk=first.pk).update(received_at=timezone.now() - timedelta(days=31))

    assert submit(client, key, auto_lead(64)).status_code == 202


def test_rejected_leads_and_test_leads_do_not_make_duplicates(client, partner):
    _, key = partner
    problem(submit(client, key, auto_lead(65, vehicle_year=1900)), 400, "invalid-lead")
    assert submit(client, key, {**auto_lead(65), "test": True}).status_code == 202

    assert submit(client, key, auto_lead(65)).status_code == 202


# --- 413 and 415 -----------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_and_its_start_is_stored(client, partner, settings):
    _, key = partner
    settings.INTAKE_MAX_BODY_BYTES = 2048
    body = json.dumps(auto_lead(70)) + " " * 3000

    response = submit(client, key, body)

    answer = problem(response, 413, "payload-too-large")
    assert answer["detail"] == f"The body is {len(body)} bytes; the limit is 2048."
    lead = stored(response)
    assert (lead.status, lead.reason, lead.raw_body) == (
        LeadStatus.INVALID,
        answer["detail"],
        body[:1024],
    )


def test_a_body_of_exactly_the_limit_is_read(client, partner, settings):
    _, key = partner
    settings.INTAKE_MAX_BODY_BYTES = 2048
    body = json.dumps(auto_lead(71))
    body += " " * (2048 - len(body))

    assert submit(client, key, body).status_code == 202


@pytest.mark.parametrize(
    ("content_type", "named"),
    [("text/plain", "text/plain"), ("application/x-www-form-urlencoded", None), ("", None)],
)
def test_a_body_not_sent_as_json_is_415_and_stored(client, partner, content_type, named):
    _, key = partner
    body = json.dumps(auto_lead(72))

    response = submit(client, key, body, content_type=content_type)

    answer = problem(response, 415, "unsupported-media-type")
    if named:
        assert answer["detail"] == f"Send JSON with Content-Type: application/json, not {named}."
    lead = stored(response)
    assert (lead.status, lead.raw_body, lead.reason) == (
        LeadStatus.INVALID,
        body,
        answer["detail"],
    )


# --- Idempotency (and 422) -------------------------------------------------------------------


def test_a_retry_with_the_same_idempotency_key_replays_the_first_answer_byte_for_byte(
    client, partner
):
    _, key = partner
    body = json.dumps(auto_lead(80))

    first = submit(client, key, body, idempotency_key="order-80")
    again = submit(client, key, body, idempotency_key="order-80")

    assert first.status_code == again.status_code == 202
    assert again.content == first.content
    assert again["Location"] == first["Location"]
    assert again["Content-Type"] == first["Content-Type"]
    assert again["Idempotent-Replayed"] == "true"
    assert not first.has_header("Idempotent-Replayed")
    assert Lead.objects.count() == 1
    assert IdempotencyRecord.objects.get().lead == Lead.objects.get()


def test_an_error_answer_is_replayed_too_and_nothing_new_is_stored(client, partner):
    _, key = partner
    body = json.dumps(auto_lead(81, vehicle_year=1900))

    first = submit(client, key, body, idempotency_key="order-81")
    again = submit(client, key, body, idempotency_key="order-81")

    problem(first, 400, "invalid-lead")
    assert again.status_code == 400
    assert again.content == first.content
    assert again["Content-Type"] == PROBLEM
    assert Lead.objects.count() == 1


def test_an_idempotency_key_reused_with_another_body_is_422(client, partner):
    _, key = partner
    submit(client, key, auto_lead(82), idempotency_key="order-82")

    response = submit(client, key, auto_lead(83), idempotency_key="order-82")

    answer = problem(response, 422, "idempotency-key-reused")
    assert answer["detail"] == (
        "This Idempotency-Key was used with a different body in the last 24 hours."
    )
    # Stored like every authenticated request, as invalid: it created no lead to route.
    refused = Lead.objects.get(pk=answer["id"])
    assert refused.status == LeadStatus.INVALID
    assert refused.errors == {"Idempotency-Key": [answer["detail"]]}
    assert Lead.objects.exclude(status=LeadStatus.INVALID).count() == 1


def test_idempotency_keys_belong_to_one_source(client, partner, rival):
    _, key = partner
    _, rival_key = rival

    mine = submit(client, key, auto_lead(84), idempotency_key="order-84")
    theirs = submit(client, rival_key, auto_lead(85), idempotency_key="order-84")

    assert (mine.status_code, theirs.status_code) == (202, 202)
    assert mine.json()["id"] != theirs.json()["id"]


def test_an_idempotency_key_older_than_24_hours_starts_afresh(client, partner):
    _, key = partner
    first = submit(client, key, auto_lead(86), idempotency_key="order-86")
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))

    again = submit(client, key, auto_lead(87), idempotency_key="order-86")

    assert again.status_code == 202
    assert again.json()["id"] != first.json()["id"]
    assert str(IdempotencyRecord.objects.get().lead_id) == again.json()["id"]


# --- 429 -------------------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch) -> SimpleNamespace:
    """The throttle's wall clock, a quarter into a second, moved by tests."""
    now = SimpleNamespace(value=1_800_000_000.25)
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: now.value))
    return now


def test_requests_over_the_sources_rate_limit_are_429_with_retry_after(client, partner, clock):
    source, key = partner
    Source.objects.filter(pk=source.pk).update(rate_limit_per_second=2)

    answers = [submit(client, key, auto_lead(90 + n)) for n in range(3)]

    assert [a.status_code for a in answers] == [202, 202, 429]
    answer = problem(answers[2], 429, "rate-limited")
    assert answers[2]["Retry-After"] == "1"
    assert answer["detail"] == "Over your source's rate limit: retry in 1 s."
    assert Lead.objects.count() == 2

    clock.value += 1
    assert submit(client, key, auto_lead(93)).status_code == 202


def test_one_sources_throttle_does_not_hold_back_another(client, partner, rival, clock):
    source, key = partner
    Source.objects.filter(pk=source.pk).update(rate_limit_per_second=1)
    submit(client, key, auto_lead(94))
    problem(get(client, key, LEADS), 429, "rate-limited")

    assert submit(client, rival[1], auto_lead(95)).status_code == 202


# --- Suppression -----------------------------------------------------------------------------


@pytest.fixture
def do_not_call(db) -> SuppressionList:
    suppression_list = SuppressionList.objects.create(name="Federal DNC extract 2026-05")
    upload = suppression_list_add(
        suppression_list=suppression_list, text="phone\n212-555-0100\nMARY.MAJOR101@example.COM\n"
    )
    assert (upload.added, upload.rejected) == (2, [])
    return suppression_list


@pytest.mark.parametrize("n", [100, 101], ids=["by phone", "by email"])
def test_a_suppressed_consumer_is_answered_rejected_without_naming_the_list(
    client, partner, do_not_call, n
):
    _, key = partner

    response = submit(client, key, auto_lead(n))

    assert response.status_code == 201
    lead = stored(response)
    assert response.json() == {
        "id": str(lead.pk),
        "status": "rejected",
        "reason": "The consumer may not be contacted.",
        "url": lead_url(lead.pk),
    }
    assert "DNC" not in response.content.decode()
    assert "suppress" not in response.content.decode()
    assert lead.status == LeadStatus.SUPPRESSED
    assert lead.raw_body == json.dumps(auto_lead(n))
    detail = get(client, key, lead_url(lead.pk)).json()
    assert detail["status"] == "rejected"


def test_an_inactive_suppression_list_suppresses_nothing(client, partner, do_not_call):
    _, key = partner
    SuppressionList.objects.update(active=False)

    assert submit(client, key, auto_lead(100)).status_code == 202


# --- What is stored --------------------------------------------------------------------------


def test_every_authenticated_request_is_stored_with_its_reason(client, partner, rival, settings):
    source, key = partner
    settings.INTAKE_MAX_BODY_BYTES = 2048
    suppression_list = SuppressionList.objects.create(name="Internal do-not-contact")
    suppression_list_add(suppression_list=suppression_list, text="+12125550113")
    submit(client, rival[1], auto_lead(111))
    cases = [
        (auto_lead(110), 202, LeadStatus.ACCEPTED),
        ("{oops", 400, LeadStatus.INVALID),
        (auto_lead(112, vehicle_year="old"), 400, LeadStatus.INVALID),
        ({**auto_lead(114), "vertical": "mortgage"}, 403, LeadStatus.INVALID),
        (auto_lead(110), 409, LeadStatus.DUPLICATE),
        (auto_lead(111), 409, LeadStatus.DUPLICATE),
        (json.dumps(auto_lead(115)) + " " * 2048, 413, LeadStatus.INVALID),
        (auto_lead(113), 201, LeadStatus.SUPPRESSED),
    ]

    for body, status, lead_status in cases:
        response = submit(client, key, body)
        assert response.status_code == status, (body, response.content)
        lead = stored(response)
        assert lead.source == source
        assert lead.status == lead_status
        assert lead.raw_body
        assert bool(lead.reason) == (status != 202)
    response = submit(client, key, json.dumps(auto_lead(116)), content_type="text/csv")
    assert (response.status_code, stored(response).source) == (415, source)
    assert Lead.objects.filter(source=source).count() == len(cases) + 1


# --- Who sees which lead ---------------------------------------------------------------------


def test_a_source_sees_its_own_lead_through_any_of_its_keys(client, partner):
    source, key = partner
    colleague_key = api_key_for(source, name="back office")
    lead = stored(submit(client, key, auto_lead(120)))

    for reader in (key, colleague_key):
        response = get(client, reader, lead_url(lead.pk))
        assert response.status_code == 200
        body = response.json()
        assert (body["id"], body["status"], body["vertical"], body["sub_id"], body["test"]) == (
            str(lead.pk),
            "accepted",
            "auto-insurance",
            "spring",
            False,
        )
        assert (body["payout"], body["reason"], body["errors"]) == (None, "", {})
        assert "buyer_price" not in body
        assert body["url"] == lead_url(lead.pk)


def test_another_source_gets_404_for_a_lead_that_is_not_its_own(client, partner, rival, outsider):
    _, key = partner
    lead = stored(submit(client, key, auto_lead(121)))

    for _, reader in (rival, outsider):
        answer = problem(get(client, reader, lead_url(lead.pk)), 404, "not-found")
        assert str(lead.pk) not in json.dumps(answer)


def test_a_lead_id_that_does_not_exist_is_404(client, partner):
    _, key = partner
    problem(get(client, key, f"{LEADS}00000000-0000-4000-8000-000000000000/"), 404, "not-found")
    problem(get(client, key, f"{LEADS}not-a-uuid/"), 404, "not-found")


def test_the_list_shows_a_source_only_its_own_leads(client, partner, rival, outsider):
    _, key = partner
    mine = {str(stored(submit(client, key, auto_lead(122 + n))).pk) for n in range(2)}
    theirs = str(stored(submit(client, rival[1], auto_lead(124))).pk)

    def listed(reader: str, **params: str) -> set[str]:
        response = get(client, reader, LEADS, **params)
        assert response.status_code == 200
        return {lead["id"] for lead in response.json()["results"]}

    assert listed(key) == mine
    assert listed(rival[1]) == {theirs}
    assert listed(outsider[1]) == set()
    assert listed(key, status="accepted") == mine
    assert listed(key, status="duplicate") == set()


def test_the_list_filters_suppressed_leads_as_rejected(client, partner, do_not_call):
    _, key = partner
    rejected = stored(submit(client, key, auto_lead(100)))
    submit(client, key, auto_lead(125))

    response = get(client, key, LEADS, status="rejected")

    assert [lead["id"] for lead in response.json()["results"]] == [str(rejected.pk)]


# --- Verticals -------------------------------------------------------------------------------


def test_a_source_reads_the_verticals_it_may_submit_to_with_their_fields(client, partner):
    _, key = partner

    response = get(client, key, "/api/v1/verticals/")

    assert response.status_code == 200
    verticals = {vertical["slug"]: vertical for vertical in response.json()}
    assert set(verticals) == {"auto-insurance", "solar"}
    auto = verticals["auto-insurance"]
    assert auto["name"] == "Auto Insurance"
    assert auto["duplicate_check"] == {
        "fields": ["email", "phone"],
        "lookback_days": 30,
        "scope": "global",
    }
    fields = {f["name"]: f for f in auto["fields"]}
    assert list(fields)[:4] == ["first_name", "last_name", "email", "phone"]
    assert fields["phone"] == {
        "name": "phone",
        "label": "Phone",
        "type": "phone",
        "required": True,
        "choices": [],
        "minimum": None,
        "maximum": None,
        "max_length": None,
        "format_hint": FORMAT_HINTS["phone"],
        "help_text": "",
    }
    assert fields["gender"]["choices"] == ["male", "female", "non_binary"]
    assert fields["gender"]["required"] is False
    assert fields["vehicle_year"]["type"] == "integer"
    assert (fields["vehicle_year"]["minimum"], fields["vehicle_year"]["maximum"]) == (
        "1981.00",
        "2027.00",
    )
    assert all(f["format_hint"] == FORMAT_HINTS[f["type"]] for f in auto["fields"])


def test_a_source_sees_only_its_own_active_verticals(client, demo, outsider):
    source = SourceFactory(verticals=list(Vertical.objects.all()))
    key = api_key_for(source)
    Vertical.objects.filter(slug="auto-insurance").update(active=False)

    assert [v["slug"] for v in get(client, key, "/api/v1/verticals/").json()] == ["solar"]
    assert get(client, outsider[1], "/api/v1/verticals/").json() == []


def test_one_vertical_is_readable_only_when_the_source_may_submit_to_it(client, demo):
    key = api_key_for(SourceFactory(verticals=[Vertical.objects.get(slug="solar")]))

    solar = get(client, key, "/api/v1/verticals/solar/")

    assert solar.status_code == 200
    assert solar.json()["slug"] == "solar"
    problem(get(client, key, "/api/v1/verticals/auto-insurance/"), 404, "not-found")
    problem(get(client, key, "/api/v1/verticals/mortgage/"), 404, "not-found")


# --- Postbacks -------------------------------------------------------------------------------


POSTBACK_PATH = "/leadswitch/outcome"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A partner's postback endpoint on 127.0.0.1."""
    with receiving() as partner:
        yield partner


@pytest.mark.usefixtures("routed_in_process")
def test_a_source_with_a_postback_url_is_told_the_outcome_after_routing(
    client, partner, buyer_contract, receiver
):
    source, key = partner
    Source.objects.filter(pk=source.pk).update(postback_url=receiver.url(POSTBACK_PATH))

    submit_and_wait(client, key, auto_lead(130))

    lead = Lead.objects.get()
    assert len(receiver.received) == 1
    request = receiver.received[0]
    assert request["path"] == POSTBACK_PATH
    assert request["headers"]["Content-Type"] == "application/json"
    assert json.loads(request["body"]) == {
        "id": str(lead.pk),
        "status": "sold",
        "test": False,
        "sub_id": "spring",
        "vertical": "auto-insurance",
        "received_at": lead.received_at.isoformat(),
        "payout": "5.00",
        "score": 25,
        "tier": "cold",
    }
    postback = Postback.objects.get(lead=lead)
    assert (postback.status, postback.attempt, postback.response_status) == (
        PostbackStatus.DELIVERED,
        1,
        200,
    )
    assert (postback.url, postback.lead_status, postback.request_body) == (
        receiver.url(POSTBACK_PATH),
        "sold",
        request["body"],
    )
    assert postback.latency_ms is not None


@pytest.mark.usefixtures("routed_in_process")
def test_a_failing_postback_receiver_never_fails_the_partners_submission(
    client, partner, buyer_contract, receiver
):
    # In-process (eager) tasks: the retries run at once, none escapes into routing or intake.
    source, key = partner
    Source.objects.filter(pk=source.pk).update(postback_url=receiver.url(POSTBACK_PATH))
    receiver.statuses = [500]

    response = submit_and_wait(client, key, auto_lead(131))

    assert response.json()["status"] == "sold"
    assert list(Postback.objects.order_by("attempt").values_list("attempt", "status")) == [
        *((n, PostbackStatus.PENDING) for n in range(1, POSTBACK_MAX_ATTEMPTS)),
        (POSTBACK_MAX_ATTEMPTS, PostbackStatus.FAILED),
    ]


@pytest.mark.parametrize(
    ("proxies", "stored"), [(["127.0.0.0/8"], "198.51.100.23"), ([], "127.0.0.1")]
)
def test_a_lead_stores_the_client_address_a_trusted_proxy_forwards(
    client, partner, settings, proxies, stored
):
    """Behind a trusted proxy the lead keeps its client's address, not the proxy's; from anyone
    else X-Forwarded-For is not believed."""
    settings.TRUSTED_PROXY_NETWORKS = [ipaddress.ip_network(p) for p in proxies]
    _, key = partner

    response = submit(client, key, auto_lead(1), x_forwarded_for="203.0.113.9, 198.51.100.23")

    assert response.status_code == 202
    assert Lead.objects.get().remote_ip == stored
