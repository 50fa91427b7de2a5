"""The exchange's pure parts: reading a ping, what it may carry, what changed at the post, the
price offered and how long it holds (no database)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from exchange.rules import (
    REMOVED,
    changed_fields,
    held_bid_from_record,
    held_bid_record,
    offered_price,
    ping_expiry,
    ping_field_errors,
    read_ping,
    storable_ping_body,
)
from leads.intake import FieldSpec
from leads.models import PayoutModel, Source
from routing.eligibility import ContractRules, LeadFacts, compile_criterion, evaluate
from routing.selection import Bid

NOW = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)
SPECS = (FieldSpec("zip_code", "zip"), FieldSpec("email", "email"), FieldSpec("age", "integer"))


def bid(price: str, *, valid_s: float | None = None, contract: int = 1) -> Bid:
    expires = NOW.timestamp() + valid_s if valid_s is not None else None
    return Bid(contract, contract, Decimal(price), 1, 1, True, expires_at=expires)


def test_a_ping_is_read_as_the_lead_envelope_with_its_hashes_and_without_consent_or_ping_id():
    envelope, errors = read_ping(
        {"vertical": "auto", "fields": {"zip_code": "10001"}, "email_sha256": "A" * 64}
    )

    assert errors == {}
    assert envelope.submission.vertical == "auto"
    assert envelope.email_sha256 == "a" * 64
    _, errors = read_ping(
        {"vertical": "auto", "fields": {}, "consent": {}, "ping_id": "x", "phone_sha256": "12"}
    )
    assert set(errors) == {"consent", "ping_id", "phone_sha256"}
    assert read_ping([1])[1] == {"_": ["Send a JSON object, not a list."]}
    # A member no ping has is named with what a ping holds, not what a lead's post holds.
    _, errors = read_ping({"vertical": "auto", "fields": {}, "colour": "red"})
    assert errors == {
        "colour": [
            "Unknown member; a ping has vertical, fields, sub_id, test, email_sha256, phone_sha256."
        ]
    }


def test_personal_fields_and_fields_not_pinged_are_named_and_unknown_ones_left_to_the_schema():
    errors = ping_field_errors(
        SPECS,
        {"zip_code": "1", "email": "m@x.com", "age": 4, "colour": "red"},
        ping_fields=frozenset({"zip_code"}),
        personal=frozenset({"email"}),
    )

    assert set(errors) == {"fields.email", "fields.age"}
    assert errors["fields.email"][0].startswith("Personal data is never pinged")
    assert errors["fields.age"][0].startswith("Not a ping field")


def test_a_changed_or_missing_pinged_field_is_named_and_equal_numbers_are_not():
    pinged = {"zip_code": "10001", "vehicle_year": 2019, "insured": True}

    assert (
        changed_fields(pinged, {"zip_code": "10001", "vehicle_year": 2019.0, "insured": True}) == {}
    )
    assert changed_fields(pinged, {"zip_code": "60601", "insured": False}) == {
        "fields.zip_code": ['Pinged as "10001", posted as "60601".'],
        "fields.vehicle_year": ["Pinged as 2019, missing from the post."],
        "fields.insured": ["Pinged as true, posted as false."],
    }


def test_the_seller_is_offered_its_fixed_payout_once_or_its_share_of_each_chosen_bid():
    fixed = Source(payout_model=PayoutModel.FIXED_CPL, payout_amount=Decimal("4.00"))
    share = Source(payout_model=PayoutModel.REVENUE_SHARE, revenue_share_percent=Decimal("40"))
    chosen = [bid("20.00"), bid("10.00", contract=2)]

    assert offered_price(chosen, payout_model=fixed.payout_model, payout_for=fixed.payout_for) == (
        Decimal("4.00")
    )
    assert offered_price(chosen, payout_model=share.payout_model, payout_for=share.payout_for) == (
        Decimal("12.00")
    )
    assert offered_price([], payout_model=share.payout_model, payout_for=share.payout_for) is None


def test_a_ping_holds_until_its_shortest_bid_validity_never_past_the_setting():
    held = [bid("20", valid_s=30), bid("10", valid_s=10, contract=2), bid("8", contract=3)]

    assert ping_expiry(held, now=NOW, max_seconds=120) == NOW + timedelta(seconds=10)
    assert ping_expiry(held, now=NOW, max_seconds=5) == NOW + timedelta(seconds=5)
    assert ping_expiry([bid("8")], now=NOW, max_seconds=60) == NOW + timedelta(seconds=60)


def test_a_held_bid_survives_its_stay_in_json_with_its_buyers_answer():
    original = bid("12.50", valid_s=30)
    answer = {"reference": "bid-7", "price": Decimal("12.50"), "auction_id": "a1"}

    stored = json.loads(json.dumps(held_bid_record(original, answer)))
    held = held_bid_from_record(stored)

    assert held.bid == original
    assert held.ping_answer == answer


def test_a_kept_ping_body_loses_the_personal_values_and_consent_sent_by_mistake():
    document = {"fields": {"zip_code": "10001", "email": "m@x.com"}, "consent": {"ip": "1.2.3.4"}}

    kept = json.loads(storable_ping_body(document, json.dumps(document), frozenset({"email"})))

    assert kept == {"fields": {"zip_code": "10001", "email": REMOVED}, "consent": REMOVED}
    clean = {"fields": {"zip_code": "10001"}}
    assert storable_ping_body(clean, "as sent", frozenset({"email"})) == "as sent"


def test_at_a_ping_criteria_on_fields_not_sent_and_consent_wait_for_the_post():
    rules = ContractRules(
        contract_id=1,
        name="c",
        buyer_id=1,
        buyer_name="Acme",
        criteria=(compile_criterion("email", "present", ""),),
        requires_certificate=True,
    )
    lead = LeadFacts(source_id=1, source_name="s", received_at=NOW)
    ping = LeadFacts(
        source_id=1,
        source_name="s",
        received_at=NOW,
        pending_fields=frozenset({"email"}),
        consent_pending=True,
    )

    assert evaluate(rules, lead, now=NOW).rule == "criteria"
    assert evaluate(rules, ping, now=NOW).eligible
