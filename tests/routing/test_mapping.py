"""Building buyers' pings and posts from a lead, on plain data (no database)."""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from datetime import date
from typing import Any
from urllib.parse import parse_qs, parse_qsl, quote, quote_plus, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buyers.models import (
    AuthType,
    BodyFormat,
    DeliveryEndpoint,
    FieldMapping,
    HttpMethod,
    MappingApplies,
    Transform,
)
from routing.mapping import (
    EndpointSpec,
    MappingError,
    MappingSpec,
    OutgoingRequest,
    apply_transform,
    build_request,
    endpoint_from_model,
    map_fields,
    mapping_from_model,
)
from tests.demo import demo_contract

LEAD = {
    "first_name": "Ana",
    "last_name": "Lopez",
    "email": "ana@example.com",
    "phone": "+15551234567",
    "date_of_birth": "1984-07-09",
    "zip_code": "60614",
    "state": "IL",
    "homeowner": True,
    "monthly_electric_bill": 180,
    "roof_shade": "partial_shade",
}
PING_FIELDS = frozenset({"zip_code", "state", "homeowner", "monthly_electric_bill", "roof_shade"})
ENDPOINT = EndpointSpec(kind="post", url="https://buyer.example/leads")


def parse_xml(body: bytes) -> ET.Element:
    return ET.fromstring(body)  # noqa: S314 - our own request body, not untrusted input


def spec(source: str, target: str, **options: Any) -> MappingSpec:
    return MappingSpec(
        source_fields=tuple(source.split("+")) if source else (), target_field=target, **options
    )


# --- Adapters ---------------------------------------------------------------------------------


def test_a_mapping_row_becomes_a_spec_with_its_source_fields_split_on_plus():
    row = FieldMapping(
        source_field=" first_name + last_name ",
        target_field="full_name",
        transform=Transform.UPPER,
        value_map={"a": "b"},
        default_value="n/a",
        applies_to=MappingApplies.POST,
    )
    assert mapping_from_model(row) == MappingSpec(
        source_fields=("first_name", "last_name"),
        target_field="full_name",
        transform="upper",
        value_map={"a": "b"},
        default_value="n/a",
        applies_to="post",
    )


def test_a_constant_mapping_row_has_no_source_fields():
    row = FieldMapping(target_field="vendor", static_value="leadswitch")
    assert mapping_from_model(row) == MappingSpec((), "vendor", static_value="leadswitch")


def test_an_endpoint_row_becomes_a_spec_with_timeouts_in_seconds():
    row = DeliveryEndpoint(
        kind="ping",
        url="https://buyer.example/ping",
        method=HttpMethod.PUT,
        body_format=BodyFormat.XML,
        headers={"X-Partner": "acme"},
        auth_type=AuthType.QUERY,
        auth_param_name="key",
        auth_secret="s3cret-key-value",
        connect_timeout_ms=250,
        read_timeout_ms=1500,
    )
    assert endpoint_from_model(row) == EndpointSpec(
        kind="ping",
        url="https://buyer.example/ping",
        method="PUT",
        body_format="xml",
        headers={"X-Partner": "acme"},
        auth_type="query",
        auth_param_name="key",
        auth_secret="s3cret-key-value",
        connect_timeout_s=0.25,
        read_timeout_s=1.5,
    )


# --- Transforms -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written", ["+15551234567", "5551234567", "15551234567", "(555) 123-4567", "+1 555.123.4567"]
)
@pytest.mark.parametrize(
    ("transform", "expected"),
    [
        (Transform.PHONE_E164, "+15551234567"),
        (Transform.PHONE_10, "5551234567"),
        (Transform.PHONE_DASHED, "555-123-4567"),
        (Transform.PHONE_AREA_CODE, "555"),
        (Transform.PHONE_LOCAL, "1234567"),
    ],
)
def test_it_formats_a_us_phone_however_it_was_written(written, transform, expected):
    assert apply_transform(transform, written) == expected


@pytest.mark.parametrize("bad", ["+442071234567", "555-1234", "555-CALL-NOW", "", "n/a"])
def test_it_refuses_a_phone_that_is_not_a_us_number_and_names_the_field(bad):
    with pytest.raises(MappingError, match=r"^phone is not a US phone number"):
        apply_transform(Transform.PHONE_10, bad, field="phone")


@pytest.mark.parametrize(
    ("transform", "value", "expected"),
    [
        (Transform.NONE, 42, 42),
        (Transform.NONE, True, True),
        (Transform.UPPER, "Ana", "ANA"),
        (Transform.LOWER, "Ana@Example.COM", "ana@example.com"),
        (
            Transform.TITLE,
            "pacific gas-and-ELECTRIC 3rd o'brien",
            "Pacific Gas-And-Electric 3rd O'brien",
        ),
        (Transform.DIGITS, "Apt. 4B, unit 12", "412"),
        (Transform.DIGITS, 90210, "90210"),
        (Transform.DATE_US, "1984-07-09", "07/09/1984"),
        (Transform.DATE_US, "7/9/1984", "07/09/1984"),
        (Transform.DATE_US, date(1984, 7, 9), "07/09/1984"),
        (Transform.DATE_ISO, "07/09/1984", "1984-07-09"),
        (Transform.DATE_ISO, "1984-07-09T10:30:00Z", "1984-07-09"),
        (Transform.FIRST_WORD, "  Ana María  Lopez ", "Ana"),
        (Transform.LAST_WORDS, "Ana María  Lopez", "María Lopez"),
        (Transform.LAST_WORDS, "Cher", ""),
        (Transform.BOOL_YN, True, "Y"),
        (Transform.BOOL_YN, "no", "N"),
        (Transform.BOOL_YN, " Yes ", "Y"),
        (Transform.BOOL_10, False, "0"),
        (Transform.BOOL_10, "true", "1"),
        (Transform.BOOL_10, 1, "1"),
        (Transform.BOOL_10, "0", "0"),
    ],
)
def test_each_transform_gives_the_buyers_format(transform, value, expected):
    assert apply_transform(transform, value) == expected


@pytest.mark.parametrize(
    ("transform", "value", "words"),
    [
        (Transform.DATE_US, "1984-02-30", "is not a date"),
        (Transform.DATE_ISO, "July 9th", "is not a date"),
        (Transform.BOOL_YN, "maybe", "is not a yes/no value"),
        (Transform.BOOL_10, 2, "is not a yes/no value"),
        (Transform.DIGITS, "none", "has no digits"),
        (Transform.UPPER, {"a": 1}, "is not text"),
        (Transform.PHONE_10, None, "has no value"),
        ("rot13", "Ana", "uses an unknown transform 'rot13'"),
    ],
)
def test_a_value_the_transform_cannot_handle_is_refused_in_plain_words(transform, value, words):
    with pytest.raises(MappingError, match=rf"^Field dob {re.escape(words)}"):
        apply_transform(transform, value, field="Field dob")


def test_an_error_message_never_repeats_the_value():
    with pytest.raises(MappingError) as caught:
        map_fields(
            "post",
            {"phone": "555-CALL-ANA"},
            [spec("phone", "Phone", transform="phone_10")],
            frozenset(),
        )
    assert str(caught.value) == (
        "Field phone (sent as Phone) is not a US phone number (10 digits, optionally after +1)."
    )


@given(st.text(alphabet="0123456789", min_size=10, max_size=10), st.integers(0, 4))
def test_phone_formats_round_trip_for_any_ten_digit_number(digits, style):
    written = [
        "+1" + digits,
        digits,
        f"({digits[:3]}) {digits[3:6]}-{digits[6:]}",
        f"1-{digits[:3]}-{digits[3:6]}-{digits[6:]}",
        int(digits) if digits[0] != "0" else digits,
    ][style]
    assert apply_transform(Transform.PHONE_10, written) == digits
    for transform in (Transform.PHONE_E164, Transform.PHONE_10, Transform.PHONE_DASHED):
        formatted = apply_transform(transform, written)
        assert apply_transform(Transform.PHONE_10, formatted) == digits
    area = apply_transform(Transform.PHONE_AREA_CODE, written)
    assert area + apply_transform(Transform.PHONE_LOCAL, written) == digits


@given(st.dates())
def test_date_formats_round_trip_for_any_date(day):
    us = apply_transform(Transform.DATE_US, day.isoformat())
    assert apply_transform(Transform.DATE_ISO, us) == day.isoformat()


# --- Mapping ----------------------------------------------------------------------------------


def test_without_mappings_a_post_sends_the_leads_fields_unchanged():
    assert map_fields("post", LEAD, [], PING_FIELDS) == LEAD


def test_without_mappings_a_ping_sends_only_the_ping_fields():
    assert map_fields("ping", LEAD, [], PING_FIELDS) == {
        "zip_code": "60614",
        "state": "IL",
        "homeowner": True,
        "monthly_electric_bill": 180,
        "roof_shade": "partial_shade",
    }


def test_mappings_for_the_other_kind_only_leave_the_lead_unmapped():
    post_only = [spec("email", "Email", applies_to="post")]
    assert map_fields("ping", LEAD, post_only, PING_FIELDS) == map_fields(
        "ping", LEAD, [], PING_FIELDS
    )


def test_a_ping_never_carries_a_pii_field_even_when_a_mapping_names_it():
    mappings = [
        spec("email", "Email"),
        spec("first_name+zip_code", "NameZip"),
        spec("phone", "Phone", default_value="unknown"),
        spec("zip_code", "Zip"),
        spec("", "Vendor", static_value="leadswitch"),
    ]
    assert map_fields("ping", LEAD, mappings, PING_FIELDS) == {
        "Zip": "60614",
        "Vendor": "leadswitch",
    }
    assert map_fields("post", LEAD, mappings, PING_FIELDS) == {
        "Email": "ana@example.com",
        "NameZip": "Ana 60614",
        "Phone": "+15551234567",
        "Zip": "60614",
        "Vendor": "leadswitch",
    }


def test_joined_source_fields_are_separated_by_one_space_and_skip_missing_ones():
    mappings = [spec("first_name+middle_name+last_name", "full_name")]
    assert map_fields("post", {**LEAD, "middle_name": ""}, mappings, PING_FIELDS) == {
        "full_name": "Ana Lopez"
    }
    assert map_fields("post", {"last_name": "Lopez"}, mappings, PING_FIELDS) == {
        "full_name": "Lopez"
    }


def test_the_value_map_applies_after_the_transform_and_compares_as_text():
    mappings = [
        spec("roof_shade", "shade", transform="upper", value_map={"PARTIAL_SHADE": "some"}),
        spec("homeowner", "owner", value_map={"true": "own"}),
        spec("monthly_electric_bill", "bill", value_map={"180": "150-200"}),
        spec("state", "state", value_map={"CA": "California"}),
    ]
    assert map_fields("post", LEAD, mappings, PING_FIELDS) == {
        "shade": "some",
        "owner": "own",
        "bill": "150-200",
        "state": "IL",
    }


def test_a_missing_value_sends_the_default_or_nothing():
    mappings = [
        spec("credit_rating", "Credit", default_value="unknown"),
        spec("credit_rating", "CreditScore"),
        spec("first_name", "Last", transform="last_words", default_value="-"),
        spec("", "Blank"),
    ]
    assert map_fields(
        "post", {"credit_rating": None, "first_name": "Cher"}, mappings, PING_FIELDS
    ) == {
        "Credit": "unknown",
        "Last": "-",
    }


def test_static_values_are_sent_as_they_are():
    mapping = spec(
        "", "Source", static_value="lead switch", transform="upper", value_map={"lead switch": "x"}
    )
    assert map_fields("post", {}, [mapping], frozenset()) == {"Source": "lead switch"}


def test_a_mapping_for_one_kind_replaces_the_mapping_for_both_of_the_same_target():
    mappings = [
        spec("zip_code", "Zip", applies_to="ping", transform="digits"),
        spec("zip_code", "Zip", applies_to="both", static_value=""),
        spec("state", "State"),
    ]
    data = {"zip_code": "60614-1234", "state": "IL"}
    assert map_fields("ping", data, mappings, PING_FIELDS) == {"Zip": "606141234", "State": "IL"}
    assert map_fields("post", data, mappings, PING_FIELDS) == {"Zip": "60614-1234", "State": "IL"}


def test_the_solar_demo_contract_maps_a_lead_as_its_buyer_expects():
    mappings = [
        mapping_from_model(FieldMapping(**options))
        for options in demo_contract("Solar - Southwest homeowners")["mappings"]
    ]
    post = map_fields("post", LEAD, mappings, PING_FIELDS)
    assert post["full_name"] == "Ana Lopez"
    assert post["phone"] == "5551234567"
    assert post["owns_home"] == "1"
    assert post["shade"] == "some"
    ping = map_fields("ping", LEAD, mappings, PING_FIELDS)
    assert {"full_name", "email_address", "phone"}.isdisjoint(ping)
    assert ping["zip"] == "60614"


def test_an_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError, match="kind must be"):
        map_fields("bid", LEAD, [], PING_FIELDS)


NAMES = ["zip_code", "state", "email", "phone", "first_name", "dob"]
values = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.integers(-5, 5),
    st.booleans(),
    st.sampled_from(["+15551234567", "1984-07-09", "yes", "0", "Ana Lopez"]),
)
mapping_specs = st.builds(
    MappingSpec,
    source_fields=st.lists(st.sampled_from(NAMES), max_size=3).map(tuple),
    target_field=st.sampled_from(["A", "B", "C", "zip_code", "email"]),
    transform=st.sampled_from(Transform.values),
    value_map=st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
    static_value=st.sampled_from(["", "static"]),
    default_value=st.sampled_from(["", "default"]),
    applies_to=st.sampled_from(MappingApplies.values),
)


def outcome(kind: str, data: dict[str, Any], mappings: list[MappingSpec], ping: frozenset[str]):
    try:
        return map_fields(kind, data, mappings, ping)
    except MappingError as exc:
        return f"error: {exc}"


@given(
    st.dictionaries(st.sampled_from(NAMES), values),
    st.lists(mapping_specs, max_size=6),
    st.frozensets(st.sampled_from(NAMES)),
)
def test_a_ping_never_depends_on_a_field_outside_the_ping_fields(data, mappings, ping_fields):
    anonymous = {name: value for name, value in data.items() if name in ping_fields}
    pinged = outcome("ping", data, mappings, ping_fields)
    assert pinged == outcome("ping", anonymous, mappings, ping_fields)
    if not any(m.applies_to in ("both", "ping") for m in mappings):
        assert isinstance(pinged, dict)
        assert set(pinged) <= ping_fields


# --- Requests ---------------------------------------------------------------------------------


def test_a_json_post_is_compact_and_says_what_it_is():
    request = build_request(ENDPOINT, {"Zip": "60614", "Owner": True, "Name": "José"})
    assert request == OutgoingRequest(
        method="POST",
        url="https://buyer.example/leads",
        headers={
            "User-Agent": "Leadswitch/1",
            "Accept": "application/json",
            "Content-Type": "application/json",
        },
        body='{"Zip":"60614","Owner":true,"Name":"José"}'.encode(),
        masked_url="https://buyer.example/leads",
        masked_headers={
            "User-Agent": "Leadswitch/1",
            "Accept": "application/json",
            "Content-Type": "application/json",
        },
        timeout=(1.0, 3.0),
    )
    assert request.body_text == '{"Zip":"60614","Owner":true,"Name":"José"}'


def test_the_endpoints_headers_override_the_defaults_whatever_their_case():
    endpoint = EndpointSpec(
        kind="post",
        url="https://buyer.example/leads",
        body_format="xml",
        headers={"accept": "text/xml", "content-type": "text/xml", "X-Partner": "acme"},
    )
    assert build_request(endpoint, {}).headers == {
        "User-Agent": "Leadswitch/1",
        "accept": "text/xml",
        "content-type": "text/xml",
        "X-Partner": "acme",
    }


def test_a_form_post_encodes_every_value_as_text():
    endpoint = EndpointSpec(kind="post", url="https://buyer.example/leads", body_format="form")
    request = build_request(
        endpoint, {"name": "Ana & Bo", "owner": False, "bill": 180, "none": None}
    )
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.body == b"name=Ana+%26+Bo&owner=false&bill=180&none="


def test_an_xml_post_escapes_values_and_cleans_element_names():
    endpoint = EndpointSpec(kind="post", url="https://buyer.example/leads", body_format="xml")
    fields = {"First Name": "<Ana> & Bo", "1zip": "60614", "xmlns": "x", "ok": "a\rb\x00"}
    request = build_request(endpoint, fields)
    assert request.headers["Content-Type"] == "application/xml; charset=utf-8"
    root = parse_xml(request.body)
    assert root.tag == "lead"
    assert [(child.tag, child.text) for child in root] == [
        ("First_Name", "<Ana> & Bo"),
        ("_1zip", "60614"),
        ("_xmlns", "x"),
        ("ok", "a\rb"),
    ]


def test_a_get_sends_the_fields_in_the_query_and_keeps_the_urls_own_query():
    endpoint = EndpointSpec(
        kind="ping",
        url="https://buyer.example/ping?campaign=7&src=ls",
        method="GET",
        auth_type="query",
        auth_param_name="api_key",
        auth_secret="k3y/with+odd=chars",
    )
    request = build_request(endpoint, {"zip": "60614", "owner": True})
    assert request.body == b""
    assert "Content-Type" not in request.headers
    assert request.url == (
        "https://buyer.example/ping?campaign=7&src=ls&zip=60614&owner=true"
        "&api_key=k3y%2Fwith%2Bodd%3Dchars"
    )
    assert parse_qs(urlsplit(request.url).query)["api_key"] == ["k3y/with+odd=chars"]
    assert request.masked_url == (
        "https://buyer.example/ping?campaign=7&src=ls&zip=60614&owner=true&api_key=••••hars"
    )


@pytest.mark.parametrize(
    ("auth", "header", "sent"),
    [
        (
            {"auth_type": "basic", "auth_username": "acme"},
            "Authorization",
            "Basic " + base64.b64encode(b"acme:correct-horse-battery").decode(),
        ),
        ({"auth_type": "bearer"}, "Authorization", "Bearer correct-horse-battery"),
        (
            {"auth_type": "header", "auth_param_name": "X-Api-Key"},
            "X-Api-Key",
            "correct-horse-battery",
        ),
    ],
)
def test_header_authentication_is_sent_and_masked(auth, header, sent):
    endpoint = EndpointSpec(
        kind="post", url="https://buyer.example/leads", auth_secret="correct-horse-battery", **auth
    )
    request = build_request(endpoint, {"a": 1})
    assert request.headers[header] == sent
    assert request.masked_headers[header] == "••••tery"
    assert request.masked_url == request.url == "https://buyer.example/leads"


def test_a_secret_looking_plain_header_is_masked_in_the_log():
    endpoint = EndpointSpec(
        kind="post", url="https://b.example/", headers={"X-Token": "abcdefghijkl"}
    )
    request = build_request(endpoint, {})
    assert request.headers["X-Token"] == "abcdefghijkl"
    assert request.masked_headers["X-Token"] == "••••ijkl"


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"method": "DELETE"}, "unsupported HTTP method"),
        ({"url": "ftp://buyer.example/"}, "must be an http:// or https:// address"),
        ({"body_format": "yaml"}, "unknown body format"),
        ({"auth_type": "bearer"}, "has no secret"),
        ({"auth_type": "basic", "auth_secret": "pw-pw-pw-pw"}, "needs a user name"),
        ({"auth_type": "header", "auth_secret": "pw-pw-pw-pw"}, "Name the header"),
        (
            {"auth_type": "header", "auth_param_name": "X Key", "auth_secret": "pw-pw-pw-pw"},
            "not a valid HTTP header name",
        ),
        ({"auth_type": "bearer", "auth_secret": "pw\r\nX-Evil: 1"}, "line break"),
        ({"auth_type": "bearer", "auth_secret": "pâss—word"}, "cannot carry"),
        ({"auth_type": "oauth", "auth_secret": "pw-pw-pw-pw"}, "unknown authentication type"),
    ],
)
def test_an_endpoint_that_cannot_be_called_is_refused_in_plain_words(changes, words):
    endpoint = EndpointSpec(**{"kind": "post", "url": "https://buyer.example/leads", **changes})
    with pytest.raises(MappingError, match=re.escape(words)):
        build_request(endpoint, {"a": 1})


def test_a_number_json_cannot_carry_is_refused():
    with pytest.raises(MappingError, match="NaN"):
        build_request(ENDPOINT, {"bill": float("nan")})


def test_a_json_body_stays_valid_even_with_a_lone_surrogate():
    request = build_request(ENDPOINT, {"name": "a\ud800b"})
    assert json.loads(request.body) == {"name": "a\ud800b"}


@given(st.dictionaries(st.text(), st.one_of(st.none(), st.text(), st.integers(), st.booleans())))
def test_an_xml_body_is_always_well_formed(fields):
    endpoint = EndpointSpec(kind="post", url="https://buyer.example/leads", body_format="xml")
    root = parse_xml(build_request(endpoint, fields).body)
    assert root.tag == "lead"
    assert len(root) == len(fields)
    for child, (name, value) in zip(root, fields.items(), strict=True):
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9._\-]*", child.tag)
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9._\-]*", name) and not name.lower().startswith("xml"):
            assert child.tag == name
        if isinstance(value, str) and value.isprintable():
            assert (child.text or "") == value


@given(st.dictionaries(st.text(), st.text()))
def test_a_form_body_decodes_back_to_the_same_fields(fields):
    endpoint = EndpointSpec(kind="post", url="https://buyer.example/leads", body_format="form")
    body = build_request(endpoint, fields).body.decode("ascii")
    assert parse_qsl(body, keep_blank_values=True) == list(fields.items())


@given(st.dictionaries(st.text(), st.text()))
def test_a_json_body_decodes_back_to_the_same_fields(fields):
    assert json.loads(build_request(ENDPOINT, fields).body) == fields


header_safe_text = st.text(
    alphabet=st.characters(codec="latin-1", exclude_categories=("Cc", "Zs")), min_size=8
)


@given(
    secret=header_safe_text,
    auth=st.sampled_from(
        [
            {"auth_type": "basic", "auth_username": "acme"},
            {"auth_type": "bearer"},
            {"auth_type": "header", "auth_param_name": "X-Api-Key"},
            {"auth_type": "query", "auth_param_name": "key"},
        ]
    ),
    method=st.sampled_from(HttpMethod.values),
    fields=st.dictionaries(st.sampled_from(["zip", "state"]), st.text(max_size=5), max_size=2),
)
def test_masked_urls_and_headers_never_contain_the_secret(secret, auth, method, fields):
    endpoint = EndpointSpec(
        kind="ping",
        url="https://buyer.example/ping?campaign=7",
        method=method,
        headers={"X-Partner": "acme"},
        auth_secret=secret,
        **auth,
    )
    request = build_request(endpoint, fields)
    for stored in (request.masked_url, *request.masked_headers.values()):
        for spelling in (secret, quote(secret, safe=""), quote_plus(secret)):
            assert spelling not in stored
    sent = {
        "basic": lambda: base64.b64decode(request.headers["Authorization"][6:]).decode(),
        "bearer": lambda: request.headers["Authorization"],
        "header": lambda: request.headers["X-Api-Key"],
        "query": lambda: parse_qs(urlsplit(request.url).query)["key"][0],
    }[auth["auth_type"]]()
    assert sent.endswith(secret)
