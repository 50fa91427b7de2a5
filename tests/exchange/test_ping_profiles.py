"""Inbound pings in the source's posting profile, through the URL router and real keys: every
format and key place, aliases and value maps, the hashes as reserved parameters, answers in
JSON, XML and text, the refusals named as the seller sent them, and the key never stored."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
from defusedxml.ElementTree import fromstring
from django.test import Client

from exchange.models import InboundPing, PingStatus
from leads.models import KeyLocation, Lead, PostingFormat
from tests.exchange.conftest import LEADS, PINGS, sha256
from tests.leads.factories import PostingProfileFactory, api_key_for
from tests.leads.test_posting_profiles import xml_body

FLAT = [PostingFormat.FLAT_JSON, PostingFormat.FORM, PostingFormat.QUERY, PostingFormat.XML]


class FlatSeller:
    """A source of the market that pings and posts in a posting profile's format."""

    def __init__(self, client: Client, market, **profile: Any) -> None:
        profile.setdefault("key_location", KeyLocation.PARAMETER)
        profile.setdefault("key_name", "key" if profile["key_location"] != "header" else "X-Key")
        self.profile = PostingProfileFactory(source=market.source, **profile)
        self.client, self.key, self.vertical = client, api_key_for(market.source), market.vertical

    def send(self, url: str, parameters: dict[str, Any], *, fmt: str | None = None):
        fmt = fmt or self.profile.format
        parameters, extra = dict(parameters), {}
        if self.profile.key_location == KeyLocation.HEADER:
            extra[f"HTTP_{self.profile.key_name.upper().replace('-', '_')}"] = self.key
        elif self.profile.key_location == KeyLocation.BEARER:
            extra["HTTP_AUTHORIZATION"] = f"Bearer {self.key}"
        else:
            parameters[self.profile.key_name] = self.key
        if fmt == PostingFormat.QUERY:
            return self.client.get(f"{url}?{urlencode(parameters)}", **extra)
        if fmt == PostingFormat.FORM:
            body, content_type = urlencode(parameters), "application/x-www-form-urlencoded"
        elif fmt == PostingFormat.XML:
            body, content_type = xml_body(parameters, root="ping"), "application/xml"
        else:
            body, content_type = json.dumps(parameters), "application/json"
        return self.client.post(url, data=body, content_type=content_type, **extra)

    def ping(self, **parameters: Any):
        return self.send(PINGS, {"vertical": self.vertical.slug, "zip_code": "10001", **parameters})

    def post(self, ping_id: str, **parameters: Any):
        lead = {
            "vertical": self.vertical.slug,
            "ping_id": ping_id,
            "first_name": "Mary",
            "last_name": "Major",
            "email": "mary.major@example.com",
            "phone": "(212) 555-0142",
            "zip_code": "10001",
            **parameters,
        }
        return self.send(LEADS, lead)


def answer_of(response) -> dict[str, Any]:
    """A JSON, XML or text answer as a dict of its members (errors by field)."""
    content_type = response["Content-Type"]
    if "xml" in content_type:
        root = fromstring(response.content)
        answer = {child.tag: child.text or "" for child in root if child.tag != "errors"}
        answer["errors"] = {e.get("field"): e.text for e in root.iter("error")}
        return answer
    if content_type.startswith("text/plain"):
        lines = response.content.decode().splitlines()
        pairs = dict(line.split("=", 1) for line in lines)
        answer = {k: v for k, v in pairs.items() if not k.startswith("error.")}
        answer["errors"] = {
            k.removeprefix("error."): v for k, v in pairs.items() if k.startswith("error.")
        }
        return answer
    return response.json()


@pytest.mark.parametrize("fmt", FLAT)
@pytest.mark.parametrize("where", [KeyLocation.PARAMETER, KeyLocation.HEADER])
def test_a_ping_in_each_format_is_answered_and_its_post_takes_it_up(client, market, fmt, where):
    market.contract(ping="bid=12.50")
    seller = FlatSeller(client, market, format=fmt, key_location=where)

    pinged = seller.ping()

    assert pinged.status_code == 200, pinged.content
    answer = pinged.json()
    assert (answer["status"], answer["payout"]) == ("bid", "4.00")
    posted = seller.post(answer["ping_id"])
    assert posted.status_code == 202, posted.content
    assert InboundPing.objects.get(pk=answer["ping_id"]).lead_id is not None


@pytest.mark.parametrize("fmt", FLAT)
def test_a_key_sent_as_a_ping_parameter_is_masked_in_the_stored_ping(client, market, fmt):
    seller = FlatSeller(client, market, format=fmt)

    ping = InboundPing.objects.get(pk=seller.ping().json()["ping_id"])
    refused = InboundPing.objects.get(pk=seller.ping(email="mary@example.com").json()["id"])

    for kept in (ping, refused):
        assert seller.key not in kept.raw_body
    assert "[masked key]" in ping.raw_body
    assert "mary@example.com" not in refused.raw_body
    assert "10001" in refused.raw_body


def test_a_ping_reads_the_sellers_aliases_value_maps_and_hash_parameters(client, market):
    market.vertical.duplicate_fields = ["email"]
    market.vertical.save()
    market.lead(email="mary@example.com", data={"email": "mary@example.com"})
    market.contract(ping="bid=12.50")
    seller = FlatSeller(
        client,
        market,
        format=PostingFormat.FORM,
        aliases={"Zip": "zip_code", "Region": "state", "EmailHash": "email_sha256"},
        value_maps={"state": {"Big Apple": "NY"}},
    )

    fresh = seller.send(
        PINGS,
        {
            "vertical": market.vertical.slug,
            "Zip": "10001",
            "Region": "Big Apple",
            "EmailHash": sha256("other@example.com"),
        },
    )
    seen = seller.send(
        PINGS,
        {"vertical": market.vertical.slug, "Zip": "10001", "EmailHash": sha256("mary@example.com")},
    )

    assert fresh.status_code == 200, fresh.content
    assert InboundPing.objects.get(pk=fresh.json()["ping_id"]).fields == {
        "zip_code": "10001",
        "state": "NY",
    }
    assert seen.status_code == 409
    assert seen.json()["type"].endswith("/duplicate-lead")


@pytest.mark.parametrize("answer_format", ["xml", "text"])
def test_ping_answers_come_in_the_profiles_format(client, market, answer_format):
    market.source.sees_buyer_price = True
    market.source.save()
    market.contract(ping="bid=12.50")
    seller = FlatSeller(client, market, format=PostingFormat.FORM, answer_format=answer_format)

    bid = seller.ping()

    assert bid.status_code == 200
    answer = answer_of(bid)
    assert (answer["status"], answer["payout"], answer["buyer_price"]) == ("bid", "4.00", "12.50")
    assert "price" not in answer
    assert InboundPing.objects.filter(pk=answer["ping_id"], status=PingStatus.BID).exists()


@pytest.mark.parametrize("answer_format", ["json", "xml", "text"])
def test_a_refused_ping_names_every_fault_by_the_sellers_own_parameters(
    client, market, answer_format
):
    seller = FlatSeller(
        client,
        market,
        format=PostingFormat.FORM,
        aliases={"Zip": "zip_code", "Mail": "email", "IP": "ip_address", "Hash": "phone_sha256"},
        answer_format=answer_format,
    )

    response = seller.send(
        PINGS,
        {
            "vertical": market.vertical.slug,
            "Zip": "1234",
            "Mail": "mary@example.com",
            "IP": "203.0.113.7",
            "Hash": "not-a-hash",
            "ping_id": "x",
        },
    )

    assert response.status_code == 400
    problem = answer_of(response)
    assert problem["type"].endswith("/invalid-ping")
    assert set(problem["errors"]) == {"IP", "Hash", "ping_id"}
    ping = InboundPing.objects.get(pk=problem["id"])
    assert "203.0.113.7" not in ping.raw_body
    field_faults = seller.send(
        PINGS, {"vertical": market.vertical.slug, "Zip": "1234", "Mail": "mary@example.com"}
    )
    assert set(answer_of(field_faults)["errors"]) == {"Zip", "Mail"}
    assert (
        "mary@example.com" not in InboundPing.objects.get(pk=answer_of(field_faults)["id"]).raw_body
    )


@pytest.mark.parametrize(
    ("fmt", "sent", "status", "slug"),
    [
        (PostingFormat.FORM, PostingFormat.FLAT_JSON, 415, "unsupported-media-type"),
        (PostingFormat.XML, PostingFormat.FORM, 415, "unsupported-media-type"),
        (PostingFormat.QUERY, PostingFormat.FORM, 405, "method-not-allowed"),
        (PostingFormat.FORM, PostingFormat.QUERY, 405, "method-not-allowed"),
        (PostingFormat.ENVELOPE, PostingFormat.QUERY, 405, "method-not-allowed"),
    ],
)
def test_a_ping_in_another_format_than_the_profiles_is_refused_naming_it(  # noqa: PLR0917
    client, market, fmt, sent, status, slug
):
    seller = FlatSeller(client, market, format=fmt, answer_format="text")

    response = seller.send(PINGS, {"vertical": market.vertical.slug, "zip_code": "10001"}, fmt=sent)

    assert response.status_code == status, response.content
    problem = answer_of(response)
    assert problem["type"].endswith(f"/{slug}")
    assert "pings as" in problem["reason"]
    stored = InboundPing.objects.get(pk=problem["id"])
    assert stored.status == PingStatus.INVALID
    assert seller.key not in stored.raw_body


def test_an_envelope_ping_may_carry_its_key_as_a_member_and_aliases(client, market):
    market.contract(ping="bid=12.50")
    seller = FlatSeller(client, market, format=PostingFormat.ENVELOPE, aliases={"Zip": "zip_code"})

    response = seller.send(
        PINGS, {"vertical": market.vertical.slug, "fields": {"Zip": "10001", "email": "m@x.com"}}
    )

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"fields.email"}
    kept = InboundPing.objects.get(pk=response.json()["id"])
    assert seller.key not in kept.raw_body
    assert "m@x.com" not in kept.raw_body
    accepted = seller.send(PINGS, {"vertical": market.vertical.slug, "fields": {"Zip": "10001"}})
    assert accepted.status_code == 200, accepted.content


def test_a_query_ping_stores_its_query_string_with_the_key_masked(client, market):
    seller = FlatSeller(client, market, format=PostingFormat.QUERY)

    ping = InboundPing.objects.get(pk=seller.ping(sub_id="spring").json()["ping_id"])

    assert parse_qs(ping.raw_body)["key"] == ["[masked key]"]
    assert ping.sub_id == "spring"
    assert not Lead.objects.exists()


CONTACT = {"email": "mary@example.com", "phone": "(212) 555-0142", "ip_address": "203.0.113.7"}


@pytest.mark.parametrize("fmt", FLAT)
def test_a_ping_refused_for_its_consent_item_keeps_no_personal_value(client, market, fmt):
    seller = FlatSeller(client, market, format=fmt)

    response = seller.ping(**CONTACT)

    assert response.status_code == 400, response.content
    assert "ip_address" in answer_of(response)["errors"]
    kept = InboundPing.objects.get(pk=answer_of(response)["id"]).raw_body
    for value in ("mary@example.com", "555", "203.0.113.7", seller.key):
        assert value not in kept
    assert "10001" in kept


def test_an_envelope_ping_refused_for_its_consent_keeps_no_personal_value(client, market):
    seller = FlatSeller(client, market, format=PostingFormat.ENVELOPE)

    response = seller.send(
        PINGS,
        {
            "vertical": market.vertical.slug,
            "fields": {"zip_code": "10001", "email": "mary@example.com", "phone": "2125550142"},
            "consent": {"ip": "203.0.113.7"},
            "contact": "mary@example.com",
        },
    )

    assert response.status_code == 400, response.content
    assert "consent.ip" in response.json()["errors"]
    kept = json.loads(InboundPing.objects.get(pk=response.json()["id"]).raw_body)
    assert kept["fields"]["zip_code"] == "10001"
    for value in ("mary@example.com", "2125550142", "203.0.113.7", seller.key):
        assert value not in json.dumps(kept)


@pytest.mark.parametrize("fmt", [PostingFormat.FORM, PostingFormat.ENVELOPE])
def test_a_ping_for_an_unknown_vertical_keeps_no_field_value(client, market, fmt):
    seller = FlatSeller(client, market, format=fmt)
    fields = {"zip_code": "10001", "contact": "mary@example.com"}
    sent = {"fields": fields} if fmt == PostingFormat.ENVELOPE else fields

    response = seller.send(PINGS, {"vertical": "no-such-vertical", "sub_id": "spring", **sent})

    assert response.status_code == 403, response.content
    kept = InboundPing.objects.get(pk=answer_of(response)["id"]).raw_body
    assert "mary@example.com" not in kept
    assert "10001" not in kept
    assert "spring" in kept


@pytest.mark.parametrize(
    ("fmt", "sent"),
    [
        (PostingFormat.FORM, PostingFormat.FLAT_JSON),
        (PostingFormat.ENVELOPE, PostingFormat.FORM),
        (PostingFormat.FORM, PostingFormat.QUERY),
        (PostingFormat.FLAT_JSON, PostingFormat.FORM),
    ],
)
def test_a_ping_in_another_format_is_stored_as_its_size_and_type_only(client, market, fmt, sent):
    seller = FlatSeller(client, market, format=fmt)

    response = seller.send(PINGS, {"vertical": market.vertical.slug, **CONTACT}, fmt=sent)

    assert response.status_code in {405, 415}, response.content
    kept = InboundPing.objects.get(pk=answer_of(response)["id"]).raw_body
    assert kept.startswith("[not kept: ")
    assert "a ping never needs personal data" in kept
    for value in ("mary@example.com", "555", "203.0.113.7", seller.key):
        assert value not in kept


def test_an_unreadable_ping_is_stored_as_its_size_and_type_only(client, market):
    seller = FlatSeller(
        client, market, format=PostingFormat.ENVELOPE, key_location=KeyLocation.BEARER
    )
    body = '{"vertical": "x", "fields": {"email": "mary@example.com"'

    response = client.post(
        PINGS, data=body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {seller.key}"
    )

    assert response.status_code == 400, response.content
    assert response.json()["type"].endswith("/malformed-request")
    kept = InboundPing.objects.get(pk=response.json()["id"]).raw_body
    assert kept == (
        f"[not kept: {len(body)} bytes of application/json, not read as a ping; a ping never "
        "needs personal data, so its text is not stored]"
    )
