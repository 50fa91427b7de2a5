"""Posting profiles through the real URL router and key authentication: every format, every key
location, aliases and value maps, unknown fields, answers in XML and text, and the refusals."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from config.log_filters import MaskApiKeys
from leads.models import KeyLocation, Lead, LeadStatus, PostingFormat, Source, Vertical
from leads.profiles import parameters_from_xml
from tests.leads.conftest import LEADS, auto_lead
from tests.leads.factories import PostingProfileFactory, SourceFactory, api_key_for

CONSENT = {
    "tcpa_text": "I agree to be contacted by Acme Insurance and its partners.",
    "consent_timestamp": "2026-05-01T14:03:00Z",
    "ip_address": "203.0.113.7",
}


def flat_lead(n: int = 0, **fields: Any) -> dict[str, Any]:
    """auto_lead(n) as a flat request's parameters, every value as text."""
    envelope = auto_lead(n)
    values = {**envelope["fields"], **fields}
    return {
        "vertical": "auto-insurance",
        "sub_id": "spring",
        **{name: _text(value) for name, value in values.items()},
        **CONSENT,
    }


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def xml_body(parameters: dict[str, Any], root: str = "lead") -> str:
    children = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in parameters.items())
    return f'<?xml version="1.0"?><{root}>{children}</{root}>'


def send(
    client: Client,
    fmt: str,
    parameters: dict[str, Any],
    *,
    key: str,
    where: str = KeyLocation.PARAMETER,
    key_name: str = "key",
    **headers: str,
):
    """Send a lead the way a seller of this format does, its key where `where` says."""
    extra = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
    parameters = dict(parameters)
    if where == KeyLocation.BEARER:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    elif where == KeyLocation.HEADER:
        extra[f"HTTP_{key_name.upper().replace('-', '_')}"] = key
    else:
        parameters[key_name] = key
    if fmt == PostingFormat.QUERY:
        return client.get(f"{LEADS}?{urlencode(parameters)}", **extra)
    if fmt == PostingFormat.FORM:
        body, content_type = urlencode(parameters), "application/x-www-form-urlencoded"
    elif fmt == PostingFormat.XML:
        body, content_type = xml_body(parameters), "application/xml"
    else:
        body, content_type = json.dumps(parameters), "application/json"
    return client.post(LEADS, data=body, content_type=content_type, **extra)


def seller(demo, **profile: Any) -> tuple[Source, str]:
    source = SourceFactory(verticals=list(Vertical.objects.all()), payout_amount="5.00")
    PostingProfileFactory(source=source, **profile)
    return source, api_key_for(source)


def keyed(demo, fmt: str, **profile: Any) -> tuple[Source, str]:
    """A seller of this format whose key is its `key` parameter."""
    return seller(demo, format=fmt, key_location="parameter", key_name="key", **profile)


@pytest.fixture
def no_duplicates(demo):
    # One consumer is posted once per format: duplicates would hide what each format stored.
    Vertical.objects.update(duplicate_lookback_days=0)


FLAT = [PostingFormat.FLAT_JSON, PostingFormat.FORM, PostingFormat.QUERY, PostingFormat.XML]


@pytest.mark.parametrize("fmt", FLAT)
@pytest.mark.parametrize("where", [KeyLocation.PARAMETER, KeyLocation.HEADER])
def test_a_flat_lead_is_accepted_in_each_format_with_its_key_in_a_parameter_or_header(
    client, demo, fmt, where
):
    key_name = "X-API-Key" if where == KeyLocation.HEADER else "api_key"
    source, key = seller(demo, format=fmt, key_location=where, key_name=key_name)

    response = send(client, fmt, flat_lead(1), key=key, where=where, key_name=key_name)

    assert response.status_code == 202, response.content
    lead = Lead.objects.get(pk=response.json()["id"])
    assert (lead.source, lead.status != LeadStatus.INVALID) == (source, True)
    assert lead.data["zip_code"] == "10001"
    assert lead.data["currently_insured"] is True
    assert lead.data["vehicle_year"] == 2019
    assert lead.consent == {
        "text": CONSENT["tcpa_text"],
        "timestamp": CONSENT["consent_timestamp"],
        "ip": CONSENT["ip_address"],
    }
    assert key not in lead.raw_body


def test_a_flat_json_lead_may_use_a_bearer_key(client, demo):
    _, key = seller(demo, format=PostingFormat.FLAT_JSON)

    response = send(client, PostingFormat.FLAT_JSON, flat_lead(2), key=key, where="bearer")

    assert response.status_code == 202, response.content


@hypothesis_settings(max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    first_name=st.sampled_from(["mary", "JAMES", "Aisha", "o'neil"]),
    year=st.integers(min_value=1990, max_value=2026),
    insured=st.booleans(),
    sub_id=st.text(alphabet="abcxyz-_0123456789", max_size=12),
    test=st.booleans(),
    homeowner=st.sampled_from(["Yes", "No"]),
)
def test_one_lead_posted_in_every_format_is_stored_identically(  # noqa: PLR0917
    client, demo, no_duplicates, first_name, year, insured, sub_id, test, homeowner
):
    aliases = {"Zip": "zip_code", "Owner": "homeowner", "SubID": "sub_id", "IP": "ip_address"}
    value_maps = {"homeowner": {"Yes": True, "No": False}}
    stored = []
    for fmt in [PostingFormat.ENVELOPE, *FLAT]:
        flat = fmt != PostingFormat.ENVELOPE
        where = KeyLocation.PARAMETER if flat else KeyLocation.BEARER
        _, key = seller(
            demo,
            format=fmt,
            key_location=where,
            key_name="key" if flat else "",
            aliases=aliases,
            value_maps=value_maps,
        )
        if flat:
            parameters = flat_lead(3, first_name=first_name, vehicle_year=year)
            parameters.update(currently_insured=_text(insured), test=_text(test))
            parameters["Zip"] = parameters.pop("zip_code")
            parameters["SubID"] = parameters.pop("sub_id") + sub_id
            parameters["IP"] = parameters.pop("ip_address")
            parameters["Owner"] = homeowner
            response = send(client, fmt, parameters, key=key)
        else:
            document = auto_lead(3, first_name=first_name, vehicle_year=year)
            document["fields"].update(currently_insured=insured, Owner=homeowner)
            document["fields"]["Zip"] = document["fields"].pop("zip_code")
            document.update(sub_id=f"spring{sub_id}", test=test)
            response = send(client, fmt, document, key=key, where=where)
        assert response.status_code == 202, (fmt, response.content)
        lead = Lead.objects.get(pk=response.json()["id"])
        stored.append((lead.data, lead.consent, lead.sub_id, lead.is_test))
    assert stored[0][0]["homeowner"] is (homeowner == "Yes")
    assert all(each == stored[0] for each in stored), stored


def test_aliases_name_the_errors_by_the_sellers_own_parameters(client, demo):
    _, key = keyed(
        demo,
        PostingFormat.FORM,
        aliases={"Zip": "zip_code", "Email": "email", "Landing": "landing_page_url"},
    )
    parameters = flat_lead(4)
    parameters.pop("zip_code")
    parameters.pop("email")
    parameters.update(Zip="123")

    response = send(client, PostingFormat.FORM, parameters, key=key)

    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "/api/problems/invalid-lead"
    assert body["errors"] == {
        "Zip": ["Give a 5-digit ZIP code (or ZIP+4), e.g. 30301."],
        "Email": ["This field is required."],
    }
    # The envelope's own members (consent) are checked before the fields, named alike.
    parameters.update(Landing="ftp://example.com/")
    response = send(client, PostingFormat.FORM, parameters, key=key)
    assert response.json()["errors"] == {"Landing": ["Give an http(s) URL."]}


def test_unknown_fields_are_refused_by_name_under_the_refuse_policy(client, demo):
    _, key = keyed(
        demo,
        PostingFormat.QUERY,
    )

    response = send(client, PostingFormat.QUERY, {**flat_lead(5), "colour": "blue"}, key=key)

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert list(errors) == ["colour"]
    assert errors["colour"][0].startswith("Unknown field; this vertical's fields are ")
    lead = Lead.objects.get(pk=response.json()["id"])
    assert (lead.status, lead.extra) == (LeadStatus.INVALID, {})


def test_unknown_fields_are_kept_as_extra_data_under_the_keep_policy(client, demo):
    _, key = keyed(
        demo,
        PostingFormat.XML,
        unknown_fields="keep",
    )

    response = send(client, PostingFormat.XML, {**flat_lead(6), "colour": "blue"}, key=key)

    assert response.status_code == 202, response.content
    lead = Lead.objects.get(pk=response.json()["id"])
    assert lead.extra == {"colour": "blue"}
    assert "colour" not in lead.data


def test_an_envelope_source_keeps_unknown_fields_too(client, demo):
    _, key = seller(demo, unknown_fields="keep")
    document = auto_lead(7, affiliate_click="c-42")

    response = send(client, PostingFormat.ENVELOPE, document, key=key, where="bearer")

    assert response.status_code == 202, response.content
    assert Lead.objects.get(pk=response.json()["id"]).extra == {"affiliate_click": "c-42"}


def test_a_get_with_lead_data_from_an_envelope_source_is_refused_never_listed(client, partner):
    _, key = partner

    response = client.get(f"{LEADS}?{urlencode(flat_lead(8))}", HTTP_AUTHORIZATION=f"Bearer {key}")

    assert response.status_code == 405
    body = response.json()
    assert body["type"] == "/api/problems/method-not-allowed"
    assert "the JSON envelope (Content-Type: application/json)" in body["detail"]
    assert "POST" in response["Allow"]
    assert not Lead.objects.exists()
    # A GET with list filters only is still the list.
    listed = client.get(f"{LEADS}?status=sold&sub_id=x", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert listed.status_code == 200


def test_a_post_to_a_query_source_is_refused_naming_its_format(client, demo):
    _, key = keyed(
        demo,
        PostingFormat.QUERY,
    )

    response = send(client, PostingFormat.FORM, flat_lead(9), key=key)

    assert response.status_code == 405
    assert "a GET with the lead in the query string" in response.json()["detail"]
    lead = Lead.objects.get(pk=response.json()["id"])
    assert lead.status == LeadStatus.INVALID
    assert key not in lead.raw_body
    assert "[masked key]" in lead.raw_body


@pytest.mark.parametrize(
    ("fmt", "sent_as", "expected"),
    [
        (PostingFormat.FORM, PostingFormat.FLAT_JSON, "a form POST"),
        (PostingFormat.XML, PostingFormat.FORM, "XML (Content-Type: application/xml)"),
        (PostingFormat.FLAT_JSON, PostingFormat.XML, "flat JSON"),
    ],
)
def test_a_body_in_another_format_than_the_profiles_is_415_naming_it(
    client, demo, fmt, sent_as, expected
):
    _, key = seller(demo, format=fmt, key_location="header", key_name="X-API-Key")

    response = send(client, sent_as, flat_lead(10), key=key, where="header", key_name="X-API-Key")

    assert response.status_code == 415
    assert expected in response.json()["detail"]
    assert Lead.objects.get(pk=response.json()["id"]).reason == response.json()["detail"]


def test_a_key_in_a_place_its_profile_does_not_name_is_refused(client, demo):
    # Some source takes its key in `key`, so a key found there is looked up.
    keyed(
        demo,
        PostingFormat.QUERY,
    )
    _, bearer_key = seller(demo, format=PostingFormat.FLAT_JSON)
    _, header_key = seller(
        demo, format=PostingFormat.FORM, key_location="header", key_name="X-API-Key"
    )

    in_query = send(client, PostingFormat.QUERY, flat_lead(11), key=bearer_key)
    as_bearer = send(client, PostingFormat.FORM, flat_lead(12), key=header_key, where="bearer")

    assert in_query.status_code == 401
    assert in_query.json()["detail"] == (
        "This source sends its key in Authorization: Bearer <key>, not in the key parameter."
    )
    assert as_bearer.status_code == 401
    assert "in the X-API-Key header, not in the Authorization header" in as_bearer.json()["detail"]
    assert not Lead.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        '<?xml version="1.0"?><!DOCTYPE lead [<!ENTITY e "x">]><lead><zip_code>&e;</zip_code>'
        "</lead>",
        '<!DOCTYPE lead SYSTEM "http://example.com/lead.dtd"><lead/>',
    ],
)
def test_xml_with_a_dtd_or_entities_is_refused_and_stored(client, demo, body):
    _, key = seller(demo, format=PostingFormat.XML, key_location="header", key_name="X-Key")

    response = client.post(LEADS, data=body, content_type="application/xml", HTTP_X_KEY=key)

    assert response.status_code == 400
    assert response.json()["errors"]["_"][0].startswith(
        "XML with a DTD or entity declarations is refused"
    )
    lead = Lead.objects.get(pk=response.json()["id"])
    assert (lead.raw_body, lead.status) == (body, LeadStatus.INVALID)


def test_xml_elements_are_read_whatever_the_root_and_namespace():
    parameters, errors = parameters_from_xml(
        b'<p:Lead xmlns:p="urn:x"><p:Zip> 10001 </p:Zip><Nested><a/></Nested></p:Lead>'
    )

    assert parameters["Zip"] == "10001"
    assert errors == {"Nested": ["Give a plain value, not nested elements."]}


@pytest.mark.parametrize("fmt", [PostingFormat.ENVELOPE, *FLAT])
def test_a_refused_lead_in_each_format_is_stored_with_its_masked_request_and_reason(
    client, demo, fmt
):
    flat = fmt != PostingFormat.ENVELOPE
    _, key = seller(
        demo,
        format=fmt,
        key_location="parameter" if flat else "bearer",
        key_name="key" if flat else "",
    )
    if flat:
        response = send(client, fmt, flat_lead(13, email="not-an-email"), key=key)
    else:
        response = send(client, fmt, auto_lead(13, email="nope"), key=key, where="bearer")

    assert response.status_code == 400
    lead = Lead.objects.get(pk=response.json()["id"])
    assert lead.status == LeadStatus.INVALID
    assert lead.reason == "The lead has 1 invalid field; see errors."
    assert list(lead.errors) == ["fields.email"]
    assert "not-an-email" in lead.raw_body or "nope" in lead.raw_body
    assert key not in lead.raw_body
    if flat:
        assert "[masked key]" in lead.raw_body


def test_a_key_in_a_query_string_is_never_logged_in_clear(client, demo, caplog):
    _, key = keyed(
        demo,
        PostingFormat.QUERY,
    )

    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = send(client, PostingFormat.QUERY, flat_lead(14, email="bad"), key=key)

    assert response.status_code == 400
    records = [r for r in caplog.records if r.name == "django.request"]
    assert records, "Django logs a 400 as a warning"
    formatter = logging.Formatter("%(message)s %(request)s")
    for record in records:
        text = formatter.format(record)
        assert key not in text
        assert "lsk_[masked]" in text
    assert key not in Lead.objects.get(pk=response.json()["id"]).raw_body


def test_the_mask_filter_hides_keys_in_messages_and_arguments():
    record = logging.LogRecord(
        "django.server",
        logging.INFO,
        "",
        0,
        '"%s" %s',
        ("GET /x?key=lsk_abcdefghijk HTTP/1.1", 400),
        None,
    )

    MaskApiKeys().filter(record)

    assert record.getMessage() == '"GET /x?key=lsk_[masked] HTTP/1.1" 400'


@pytest.mark.parametrize(
    ("answer_format", "content_type"),
    [("xml", "application/xml; charset=utf-8"), ("text", "text/plain; charset=utf-8")],
)
def test_answers_come_in_the_profiles_format_with_the_same_status_and_errors(
    client, demo, answer_format, content_type
):
    _, key = keyed(
        demo,
        PostingFormat.FORM,
        aliases={"Zip": "zip_code"},
        answer_format=answer_format,
    )
    parameters = flat_lead(15)
    parameters["Zip"] = parameters.pop("zip_code")

    accepted = send(client, PostingFormat.FORM, parameters, key=key)
    parameters.update(Zip="1", email="m@example.com", phone="(212) 555-0199")
    refused = send(client, PostingFormat.FORM, parameters, key=key)

    assert (accepted.status_code, refused.status_code) == (202, 400)
    assert accepted["Content-Type"] == refused["Content-Type"] == content_type
    lead = Lead.objects.exclude(status=LeadStatus.INVALID).get()
    invalid = Lead.objects.get(status=LeadStatus.INVALID)
    message = "Give a 5-digit ZIP code (or ZIP+4), e.g. 30301."
    if answer_format == "text":
        assert accepted.content.decode().splitlines()[:2] == [
            "id=" + str(lead.pk),
            "status=accepted",
        ]
        assert refused.content.decode().splitlines() == [
            "status=error",
            "type=/api/problems/invalid-lead",
            "title=Invalid lead",
            "http_status=400",
            "reason=The lead has 1 invalid field; see errors.",
            f"id={invalid.pk}",
            f"error.Zip={message}",
        ]
    else:
        assert f"<id>{lead.pk}</id><status>accepted</status>" in accepted.content.decode()
        text = refused.content.decode()
        assert "<status>error</status>" in text
        assert "<http_status>400</http_status>" in text
        assert f'<errors><error field="Zip">{message}</error></errors>' in text


def test_an_idempotent_retry_of_a_text_answer_is_replayed_byte_for_byte(client, demo):
    _, key = keyed(
        demo,
        PostingFormat.QUERY,
        answer_format="text",
    )

    first = send(client, PostingFormat.QUERY, flat_lead(16), key=key, Idempotency_Key="o-1")
    again = send(client, PostingFormat.QUERY, flat_lead(16), key=key, Idempotency_Key="o-1")

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert Lead.objects.count() == 1


def test_a_flat_posts_ping_id_reaches_the_exchange_named_as_the_seller_sent_it(client, demo):
    _, key = seller(
        demo,
        format=PostingFormat.FLAT_JSON,
        key_location="header",
        key_name="X-K",
        aliases={"PingID": "ping_id"},
    )
    parameters = {**flat_lead(17), "PingID": "p-1"}

    response = send(
        client, PostingFormat.FLAT_JSON, parameters, key=key, where="header", key_name="X-K"
    )

    # The exchange (inbound ping/post) reads it as it reads an envelope's: an unknown ping.
    assert response.status_code == 404, response.content
    assert response.json()["errors"] == {"PingID": ["Unknown ping id."]}


@pytest.mark.parametrize(
    ("profile", "field", "message"),
    [
        ({"aliases": {"Zip": "postcode"}}, "aliases", "no vertical of the source has a field"),
        ({"aliases": {"A": "zip_code", "B": "zip_code"}}, "aliases", "A and B both name"),
        ({"aliases": ["Zip"]}, "aliases", "Give an object"),
        ({"value_maps": {"homeowner": ["Yes"]}}, "value_maps", "Give an object"),
        ({"value_maps": {"owner": {"Y": True}}}, "value_maps", "No vertical of the source has"),
        ({"key_location": "header"}, "key_name", "Name the header"),
        ({"format": "query"}, "key_location", "not as a Bearer token"),
        (
            {"aliases": {"SubID": "sub_id"}, "format": "envelope"},
            "aliases",
            "no vertical of the source has a field sub_id",
        ),
    ],
)
def test_a_profile_with_a_bad_alias_map_or_key_place_does_not_validate(
    demo, profile, field, message
):
    source = SourceFactory(verticals=list(Vertical.objects.filter(slug="auto-insurance")))
    row = PostingProfileFactory.build(source=source, **profile)

    with pytest.raises(ValidationError) as raised:
        row.clean()

    assert message in " ".join(raised.value.message_dict[field])


def test_a_default_vertical_must_be_one_of_the_sources(demo):
    source = SourceFactory(verticals=list(Vertical.objects.filter(slug="auto-insurance")))
    row = PostingProfileFactory.build(
        source=source, format="form", default_vertical=Vertical.objects.get(slug="solar")
    )

    with pytest.raises(ValidationError) as raised:
        row.clean()

    assert (
        "solar is not among the source's verticals"
        in raised.value.message_dict["default_vertical"][0]
    )


def test_a_flat_lead_without_a_vertical_takes_the_profiles_default(client, demo):
    _, key = keyed(
        demo,
        PostingFormat.FORM,
        default_vertical=Vertical.objects.get(slug="auto-insurance"),
    )
    parameters = flat_lead(18)
    parameters.pop("vertical")

    response = send(client, PostingFormat.FORM, parameters, key=key)

    assert response.status_code == 202, response.content


def source_form(source: Source, **profile: str) -> dict[str, Any]:
    """The source's admin form as a browser posts it, with one posting profile inline."""
    return {
        "name": source.name,
        "active": "on",
        "verticals": [str(v.pk) for v in source.verticals.all()],
        "payout_model": source.payout_model,
        "payout_amount": str(source.payout_amount),
        "revenue_share_percent": "0",
        "payout_reversed_on_return": "on",
        "rate_limit_per_second": "50",
        "posting_profile-TOTAL_FORMS": "1",
        "posting_profile-INITIAL_FORMS": "0",
        "posting_profile-MIN_NUM_FORMS": "0",
        "posting_profile-MAX_NUM_FORMS": "1",
        "posting_profile-0-format": "form",
        "posting_profile-0-answer_format": "json",
        "posting_profile-0-key_location": "parameter",
        "posting_profile-0-key_name": "key",
        "posting_profile-0-unknown_fields": "refuse",
        "posting_profile-0-aliases": "{}",
        "posting_profile-0-value_maps": "{}",
        **{f"posting_profile-0-{name}": value for name, value in profile.items()},
        "api_keys-TOTAL_FORMS": "0",
        "api_keys-INITIAL_FORMS": "0",
        "api_keys-MIN_NUM_FORMS": "0",
        "api_keys-MAX_NUM_FORMS": "1000",
        # The versions it posts in, left as they are.
        "schema_pins-TOTAL_FORMS": "0",
        "schema_pins-INITIAL_FORMS": "0",
        "schema_pins-MIN_NUM_FORMS": "0",
        "schema_pins-MAX_NUM_FORMS": "1000",
    }


def test_the_source_page_edits_its_posting_profile_and_shows_its_errors(admin_client, demo):
    source = SourceFactory(verticals=list(Vertical.objects.filter(slug="auto-insurance")))
    url = f"/admin/leads/source/{source.pk}/change/"

    refused = admin_client.post(url, source_form(source, aliases='{"Zip": "postcode"}'))
    saved = admin_client.post(url, source_form(source, aliases='{"Zip": "zip_code"}'))

    assert refused.status_code == 200
    assert "Zip -&gt; postcode: no vertical of the source has a field postcode" in (
        refused.content.decode()
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert source.posting_profile.aliases == {"Zip": "zip_code"}


def test_the_lead_page_shows_the_extra_data(admin_client, demo):
    _, key = keyed(demo, PostingFormat.FORM, unknown_fields="keep")
    parameters = {**flat_lead(19), "affiliate_click": "c-77"}
    response = send(Client(), PostingFormat.FORM, parameters, key=key)

    page = admin_client.get(f"/admin/leads/lead/{response.json()['id']}/change/")

    assert "Extra data" in page.content.decode()
    assert "c-77" in page.content.decode()


def test_a_throttled_submission_is_answered_in_the_profiles_format(client, demo):
    source, key = keyed(
        demo,
        PostingFormat.FORM,
        answer_format="text",
    )
    Source.objects.filter(pk=source.pk).update(rate_limit_per_second=1)

    answers = [send(client, PostingFormat.FORM, {"x": "1"}, key=key) for _ in range(4)]

    throttled = [a for a in answers if a.status_code == 429]
    assert throttled
    lines = throttled[0].content.decode().splitlines()
    assert lines[:2] == ["status=error", "type=/api/problems/rate-limited"]
    assert throttled[0]["Content-Type"] == "text/plain; charset=utf-8"
    assert throttled[0]["Retry-After"]


def test_an_envelope_may_carry_its_key_as_a_member(client, demo):
    _, key = keyed(demo, PostingFormat.ENVELOPE)

    response = send(client, PostingFormat.ENVELOPE, auto_lead(20), key=key)

    assert response.status_code == 202, response.content
    assert key not in Lead.objects.get(pk=response.json()["id"]).raw_body
