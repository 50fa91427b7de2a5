"""Buyers' request templates: JSON, XML and form bodies, query values and headers (no database)."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus

import pytest

from routing.templating import (
    FILTERS,
    MASKED,
    Masked,
    RenderedRequest,
    RequestTemplate,
    TemplateError,
    check_request,
    compile_request,
    masked_context,
)

SECRET = "sk_live_Q7&x<y>\"z'"
PII = frozenset({"first_name", "last_name", "email", "phone", "address"})


def lead_context() -> dict[str, Any]:
    """A lead context as routing/context.py builds it."""
    return {
        "fields": {
            "first_name": "ana maría",
            "last_name": "O'Brien-Lopez",
            "email": "Ana@Example.com",
            "phone": "+15551234567",
            "address": "12 Oak & Elm <Rear>",
            "zip_code": "60614",
            "city": "Chicago",
            "state": "IL",
            "date_of_birth": "1984-07-09",
            "homeowner": True,
            "monthly_electric_bill": 180,
            "credit": "good",
        },
        "lead": {
            "id": 4711,
            "created": "2025-01-07T15:04:05+00:00",
            "sub_id": "sub-9",
            "source": {"id": 3, "name": "Acme Media"},
            "vertical": "solar",
            "test": False,
            "score": 87,
            "tier": "A",
        },
        "consent": {
            "text": "By clicking I agree to be called.",
            "timestamp": "2025-01-07T15:03:00+00:00",
            "ip": "203.0.113.9",
            "trustedform_cert_url": "https://cert.trustedform.com/0123abcd",
            "jornaya_leadid": "LEADID-1234",
            "page_url": "https://solar.example/quote?a=1&b=2",
            "user_agent": "Mozilla/5.0",
            "sellers": ["Acme Solar"],
        },
        "auction": {"bid": Decimal("42.50"), "floor": Decimal("10.00")},
        "ping": {"reference": "ping-77", "price": "42.50", "bid_id": "B-991"},
        "secrets": {"api_key": SECRET, "campaign": "C-1"},
    }


def render(
    body_format: str,
    body: str,
    context: dict[str, Any] | None = None,
    *,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> RenderedRequest:
    template = compile_request(body_format, body, query or {}, headers or {})
    return template.render(lead_context() if context is None else context)


def parse_xml(document: bytes | str) -> ET.Element:
    return ET.fromstring(document)  # noqa: S314 - our own rendering, not untrusted input


def rendered_text(template: str, context: dict[str, Any] | None = None) -> str:
    """Render a one-line text template (as a query value)."""
    return render("json", "", context, query={"q": template}).query[0][1]


def rendered_value(expression: str, context: dict[str, Any] | None = None) -> Any:
    """Render `{{ expression }}` as an exact JSON leaf, keeping its type."""
    body = render("json", json.dumps({"v": "{{ " + expression + " }}"}), context).body
    assert body is not None
    return json.loads(body)["v"]


# --- Filters ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written", ["+15551234567", "5551234567", "1 (555) 123-4567", "555.123.4567", 5551234567]
)
@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ("phone", "5551234567"),
        ("phone('e164')", "+15551234567"),
        ("phone(10)", "5551234567"),
        ("phone('dashed')", "555-123-4567"),
        ("phone('dotted')", "555.123.4567"),
        ("phone('paren')", "(555) 123-4567"),
        ("area_code", "555"),
        ("phone_prefix", "123"),
        ("phone_line", "4567"),
        ("digits", "5551234567"),
    ],
)
def test_phone_filters_write_a_us_number_however_it_was_given(written, filter_, expected):
    context = lead_context()
    context["fields"]["phone"] = written
    if filter_ == "digits" and not isinstance(written, int):
        expected = "".join(c for c in str(written) if c.isdigit())
    assert rendered_text(f"{{{{ fields.phone | {filter_} }}}}", context) == expected


def test_a_filter_refuses_a_value_it_cannot_take_naming_the_filter_but_not_the_value():
    context = lead_context()
    context["fields"]["phone"] = "555-CALL-ANA"
    template = compile_request("json", '{\n  "Phone": "{{ fields.phone | phone }}"\n}', {}, {})
    with pytest.raises(TemplateError) as caught:
        template.render(context)
    error = caught.value
    assert error.message == (
        "Filter phone: the value is not a US phone number (10 digits, optionally after +1)."
    )
    assert (error.where, error.line) == ("body", 2)
    assert "CALL" not in str(error)


def test_a_filter_argument_that_cannot_be_used_is_refused_in_words():
    with pytest.raises(TemplateError, match=r"Filter phone: Unknown phone style 'slashed'"):
        rendered_text("{{ fields.phone | phone('slashed') }}")
    with pytest.raises(TemplateError, match=r"Filter datetime: Unknown time zone 'Mars/Olympus'"):
        rendered_text("{{ lead.created | datetime('%H:%M', 'Mars/Olympus') }}")


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ fields.date_of_birth | date }}", "1984-07-09"),
        ("{{ fields.date_of_birth | date('%m/%d/%Y') }}", "07/09/1984"),
        ("{{ '7/9/1984' | date('%Y%m%d') }}", "19840709"),
        ("{{ lead.created | date('%d.%m.%Y') }}", "07.01.2025"),
        ("{{ lead.created | datetime }}", "2025-01-07 15:04:05"),
        ("{{ lead.created | datetime('%Y-%m-%dT%H:%M:%S%z') }}", "2025-01-07T15:04:05+0000"),
        ("{{ lead.created | datetime('%m/%d/%Y %I:%M %p', 'America/New_York') }}", None),
        ("{{ '2025-01-07T10:04:05' | datetime('%H:%M', 'America/Chicago') }}", "04:04"),
        ("{{ lead.created | timestamp }}", "1736262245"),
        ("{{ '1970-01-02' | timestamp }}", "86400"),
    ],
)
def test_date_filters_write_dates_and_times_in_the_buyers_format(template, expected):
    expected = expected or "01/07/2025 10:04 AM"
    assert rendered_text(template) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("fields.zip_code | int", 60614),
        ("'00601' | int", 601),
        ("'12.0' | int", 12),
        ("'182.5' | int", 182),
        ("'-7.9' | int", -7),
        ("fields.monthly_electric_bill | number", 180),
        ("'180.25' | number", 180.25),
        ("auction.bid | number", 42.5),
        ("auction.bid", 42.5),
        ("fields.homeowner | bool", True),
        ("'no' | bool", False),
        ("fields.homeowner | yn", "Y"),
        ("'0' | yn", "N"),
        ("fields.homeowner | onezero", 1),
        ("'off' | onezero", 0),
        ("fields.homeowner | yesno_word", "yes"),
        ("fields.zip_code", "60614"),
        ("lead.test", False),
        ("lead.source", {"id": 3, "name": "Acme Media"}),
        ("consent.sellers", ["Acme Solar"]),
        ("fields.not_given", None),
        ("fields.not_given | int", None),
        ("ping.nothing.deeper", None),
    ],
)
def test_an_exact_json_leaf_keeps_the_type_of_its_expression(expression, expected):
    assert rendered_value(expression) == expected


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("'12 1/2' | int", "Filter int: the value is not a number."),
        ("'twelve' | number", "Filter number: the value is not a number."),
        ("'maybe' | yn", "Filter yn: the value is not a yes/no value (true/false, yes/no, 1/0)."),
        ("'July 9' | date", "Filter date: the value is not a date (YYYY-MM-DD or MM/DD/YYYY)."),
        ("'6061' | zip5", "Filter zip5: the value is not a US ZIP code."),
    ],
)
def test_coercion_filters_refuse_what_they_cannot_read(expression, words):
    with pytest.raises(TemplateError) as caught:
        rendered_value(expression)
    assert caught.value.message == words


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ fields.first_name | title_words }}", "Ana María"),
        ("{{ fields.last_name | title_words }}", "O'brien-Lopez"),
        ("{{ 'Ana María Lopez' | first_word }}", "Ana"),
        ("{{ 'Ana María Lopez' | last_words }}", "María Lopez"),
        ("{{ fields.email | lower }}", "ana@example.com"),
        ("{{ fields.state | upper }}{{ fields.city | title }}", "ILChicago"),
        ("{{ '  x ' | trim }}", "x"),
        ("{{ fields.not_given | default('n/a') }}", "n/a"),
        ("{{ fields.city | replace('Chi', 'Xi') | truncate(20) }}", "Xicago"),
        ("{{ fields.address | xml }}", "12 Oak &amp; Elm &lt;Rear&gt;"),
        ("{{ consent.page_url | urlencode }}", quote("https://solar.example/quote?a=1&b=2", "")),
        ("{{ {'a': 'x y', 'b': '&'} | urlencode }}", "a=x+y&b=%26"),
        ("{{ fields | json }}"[:0] + "{{ lead.source | json }}", '{"id":3,"name":"Acme Media"}'),
        ("{{ '<a&b>' | json }}", '"<a&b>"'),
        ("{{ auction | json }}", '{"bid":42.5,"floor":10.0}'),
        ("{{ 'abc' | md5 }}", "900150983cd24fb0d6963f7d28e17f72"),
        ("{{ 'abc' | sha1 }}", "a9993e364706816aba3e25717850c26c9cd0d89d"),
        (
            "{{ 'abc' | sha256 }}",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        ("{{ fields.email | lower | sha256 }}", None),
        ("{{ 'abc' | b64 }}", "YWJj"),
        ("{{ fields.state | lookup({'IL': 'Illinois'}) }}", "Illinois"),
        ("{{ 'WI' | lookup({'IL': 'Illinois'}) }}", "WI"),
        ("{{ 'WI' | lookup({'IL': 'Illinois'}, 'Other') }}", "Other"),
        ("{{ fields.homeowner | lookup({'true': 'Own', 'false': 'Rent'}) }}", "Own"),
        ("{{ fields.homeowner | lookup({'True': 'Own'}) }}", "Own"),
        ("{{ '60614-1234' | zip5 }}", "60614"),
        ("{{ 601 | zip5 }}", "00601"),
        ("{{ fields.homeowner }} {{ auction.bid }} {{ fields.not_given }}", "true 42.50 "),
        ("{{ lead.source }}", '{"id":3,"name":"Acme Media"}'),
    ],
)
def test_text_filters_and_jinjas_own_give_the_buyers_format(template, expected):
    if expected is None:
        expected = "8e43ca37701228e74983efdbd0cff5c16b3b1e5d4e29a7c05626d4d25a018e11"
    assert rendered_text(template) == expected


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_every_filter_hands_a_masked_value_back_unchanged(name):
    assert FILTERS[name](MASKED) is MASKED


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_a_missing_value_stays_missing_through_every_filter(name):
    written = {"xml": "", "urlencode": "", "json": "null"}.get(name, "")
    assert rendered_text(f"{{{{ fields.not_given | {name}{'({})' * (name == 'lookup')} }}}}") == (
        written
    )


# --- JSON bodies ------------------------------------------------------------------------------

NESTED_JSON_BUYER = """{
  "auth": {"api_key": "{{ secrets.api_key }}", "campaign": "{{ secrets.campaign }}"},
  "lead": {
    "reference": "{{ lead.id }}",
    "ping_id": "{{ ping.bid_id }}",
    "test": "{{ lead.test }}",
    "contact": {
      "first_name": "{{ fields.first_name | title_words }}",
      "last_name": "{{ fields.last_name }}",
      "email": "{{ fields.email | lower }}",
      "phones": [{"type": "mobile", "number": "{{ fields.phone | phone('10') }}"}]
    },
    "property": {
      "zip": "{{ fields.zip_code | int }}",
      "owner": "{{ fields.homeowner | yn }}",
      "bill": "{{ fields.monthly_electric_bill | number }}",
      "credit": "{{ fields.credit | lookup({'good': 3, 'fair': 2}, 1) }}"
    },
    "consent": {
      "ip": "{{ consent.ip }}",
      "trustedform": "{{ consent.trustedform_cert_url }}",
      "leadid": "{{ consent.jornaya_leadid }}",
      "at": "{{ consent.timestamp | timestamp }}"
    },
    "note": "Sold at {{ auction.bid }} to {{ lead.source.name }}",
    "bid": "{{ auction.bid }}",
    "tags": ["solar", "{{ lead.tier }}"],
    "version": 2,
    "extra": null
  }
}"""


def test_a_nested_json_buyer_gets_its_structure_with_typed_values():
    body = render("json", NESTED_JSON_BUYER).body
    assert body is not None
    assert json.loads(body) == {
        "auth": {"api_key": SECRET, "campaign": "C-1"},
        "lead": {
            "reference": 4711,
            "ping_id": "B-991",
            "test": False,
            "contact": {
                "first_name": "Ana María",
                "last_name": "O'Brien-Lopez",
                "email": "ana@example.com",
                "phones": [{"type": "mobile", "number": "5551234567"}],
            },
            "property": {"zip": 60614, "owner": "Y", "bill": 180, "credit": 3},
            "consent": {
                "ip": "203.0.113.9",
                "trustedform": "https://cert.trustedform.com/0123abcd",
                "leadid": "LEADID-1234",
                "at": 1736262180,
            },
            "note": "Sold at 42.50 to Acme Media",
            "bid": 42.5,
            "tags": ["solar", "A"],
            "version": 2,
            "extra": None,
        },
    }


def test_a_json_body_is_compact_utf8_and_stays_valid_whatever_the_values():
    context = lead_context()
    context["fields"]["last_name"] = 'Quote" back\\slash \x00 nul \ud800 lone </script>'
    body = render("json", '{"name": "{{ fields.last_name }}", "n": "x{{ fields.city }}"}', context)
    assert body.body is not None
    assert json.loads(body.body) == {
        "name": 'Quote" back\\slash \x00 nul \ud800 lone </script>',
        "n": "xChicago",
    }
    assert b": " not in body.body


def test_a_json_leaf_may_hold_blocks_and_loops():
    template = (
        '{"sellers": "{% for s in consent.sellers %}{{ s }}{% if not loop.last %},'
        '{% endif %}{% endfor %}", "tier": "{% if lead.score > 80 %}gold{% else %}tin{% endif %}"}'
    )
    assert json.loads(render("json", template).body or b"") == {
        "sellers": "Acme Solar",
        "tier": "gold",
    }


def test_a_json_body_that_is_not_json_is_refused_with_its_line():
    with pytest.raises(TemplateError) as caught:
        compile_request("json", '{\n  "a": 1,\n  "b": \n}', {}, {})
    assert caught.value.where == "body"
    assert caught.value.line == 4
    assert caught.value.message.startswith("This is not valid JSON")


def test_a_key_written_twice_is_refused_with_its_line():
    with pytest.raises(TemplateError) as caught:
        compile_request("json", '{\n  "a": "{{ fields.city }}",\n  "a": 2\n}', {}, {})
    assert (caught.value.line, caught.value.message) == (3, "The key 'a' appears twice.")


@pytest.mark.parametrize(
    ("leaf", "message"),
    [
        ("{{ fields.city ", "unexpected end of template"),
        ("{{ fields.city | rot13 }}", "No filter named 'rot13'."),
        ("{% if fields.city %}x", "Unexpected end of template"),
        ("{% include 'other.json' %}", "A request template is whole in itself"),
        ("{% extends 'base' %}", "A request template is whole in itself"),
    ],
)
def test_a_leaf_that_does_not_compile_is_refused_with_the_leafs_line(leaf, message):
    body = '{\n  "ok": "{{ fields.city }}",\n  "broken": ' + json.dumps(leaf) + "\n}"
    with pytest.raises(TemplateError) as caught:
        compile_request("json", body, {}, {})
    assert caught.value.where == "body"
    assert caught.value.line == 3
    assert message in caught.value.message


def test_a_render_error_carries_the_line_of_its_leaf():
    body = '{\n  "a": "{{ fields.city }}",\n  "b": [\n    "{{ fields.city | int }}"\n  ]\n}'
    with pytest.raises(TemplateError) as caught:
        render("json", body)
    assert (caught.value.where, caught.value.line) == ("body", 4)
    assert str(caught.value) == "body, line 4: Filter int: the value is not a number."


def test_a_template_is_compiled_once_and_renders_many_leads():
    template = compile_request("json", NESTED_JSON_BUYER, {}, {})
    first, second = lead_context(), lead_context()
    second["fields"]["zip_code"] = "10001"
    second["secrets"]["api_key"] = "other"
    assert json.loads(template.render(first).body or b"")["lead"]["property"]["zip"] == 60614
    rendered = json.loads(template.render(second).body or b"")
    assert rendered["lead"]["property"]["zip"] == 10001
    assert rendered["auth"]["api_key"] == "other"


def test_a_template_cannot_change_the_lead_context_or_leave_the_sandbox():
    context = lead_context()
    with pytest.raises(TemplateError, match=r"attribute 'pop' of 'dict' object is unsafe"):
        render("json", '{"a": "{{ fields.pop(\'email\') }}"}', context)
    assert context["fields"]["email"] == "Ana@Example.com"
    with pytest.raises(TemplateError, match="unsafe"):
        check_request("json", '{"a": "{{ fields.__class__ }}"}', {}, {}, sample=lead_context())


def test_a_blank_body_template_leaves_the_body_to_the_field_mappings():
    rendered = render("json", "  ", query={"k": "{{ secrets.campaign }}"})
    assert rendered == RenderedRequest(body=None, query=[("k", "C-1")], headers={})


# --- XML bodies -------------------------------------------------------------------------------

XML_BUYER = """

<?xml version="1.0" encoding="UTF-8"?>
<LeadSubmission xmlns="urn:example:leads:v2" version="2.1" source="{{ lead.source.name }}">
  <Authentication key="{{ secrets.api_key }}"/>
  <Contact firstName="{{ fields.first_name | title_words }}" lastName="{{ fields.last_name }}">
    <Email>{{ fields.email | lower }}</Email>
    <Phone type="home">{{ fields.phone | phone('dashed') }}</Phone>
    <Address>{{ fields.address }}</Address>
  </Contact>
  {% set full %}{{ fields.first_name }} &amp; {{ fields.last_name }}{% endset %}
  <FullName>{{ full }}</FullName>
  <Escaped>{{ fields.address | xml }}</Escaped>
  <Sellers>{% for seller in consent.sellers %}<Seller>{{ seller }}</Seller>{% endfor %}</Sellers>
  <HomeOwner>{{ fields.homeowner | yn }}</HomeOwner>
  <Bid currency="USD">{{ auction.bid }}</Bid>
  <Missing>{{ fields.not_given | default('') }}</Missing>
</LeadSubmission>
"""
NS = "{urn:example:leads:v2}"


def test_an_xml_buyer_gets_its_namespace_attributes_and_escaped_values():
    body = render("xml", XML_BUYER).body
    assert body is not None
    assert body.startswith(b'<?xml version="1.0"')
    root = parse_xml(body)
    assert root.tag == f"{NS}LeadSubmission"
    assert root.attrib == {"version": "2.1", "source": "Acme Media"}
    assert root.find(f"{NS}Authentication").attrib == {"key": SECRET}
    contact = root.find(f"{NS}Contact")
    assert contact.attrib == {"firstName": "Ana María", "lastName": "O'Brien-Lopez"}
    assert contact.findtext(f"{NS}Phone") == "555-123-4567"
    assert contact.findtext(f"{NS}Address") == "12 Oak & Elm <Rear>"
    # A {% set %} block and the xml filter are escaped once, not twice.
    assert root.findtext(f"{NS}FullName") == "ana maría & O'Brien-Lopez"
    assert root.findtext(f"{NS}Escaped") == "12 Oak & Elm <Rear>"
    assert [s.text for s in root.find(f"{NS}Sellers")] == ["Acme Solar"]
    assert root.findtext(f"{NS}HomeOwner") == "Y"
    assert root.findtext(f"{NS}Bid") == "42.50"
    assert root.findtext(f"{NS}Missing") == ""


def test_xml_values_keep_every_character_xml_can_carry_and_drop_the_rest():
    context = lead_context()
    context["fields"]["address"] = "a\x00b\x0bc\r\nd\te 'q' \"qq\" ]]> \ud800 😀"
    root = parse_xml(
        render("xml", '<a v="{{ fields.address }}">{{ fields.address }}</a>', context).body
    )
    assert root.text == "abc\r\nd\te 'q' \"qq\" ]]>  😀"
    assert root.attrib["v"] == root.text


def test_an_xml_error_carries_the_templates_line_despite_leading_blank_lines():
    with pytest.raises(TemplateError) as caught:
        render("xml", XML_BUYER.replace("phone('dashed')", "date"))
    assert (caught.value.where, caught.value.line) == ("body", 8)


# --- Form bodies ------------------------------------------------------------------------------

FORM_BUYER = """{
  "api_key": "{{ secrets.api_key }}",
  "lead_type": "solar",
  "version": 3,
  "xmldata": "<?xml version=\\"1.0\\"?>\\n<Lead><Name first=\\"{{ fields.first_name }}\\">{{ fields.last_name }}</Name><Address>{{ fields.address }}</Address><Zip>{{ fields.zip_code | zip5 }}</Zip></Lead>",
  "meta": {"zip": "{{ fields.zip_code | int }}", "tags": ["{{ lead.tier }}"]},
  "phone": "{{ fields.phone | phone('dashed') }}"
}"""  # noqa: E501 - one form field, as ops paste it


def test_a_form_buyer_gets_an_xml_document_in_a_field_and_json_in_another():
    body = render("form", FORM_BUYER).body
    assert body is not None
    fields = {name: values[0] for name, values in parse_qs(body.decode("ascii")).items()}
    assert fields["api_key"] == SECRET
    assert fields["lead_type"] == "solar"
    assert fields["version"] == "3"
    assert fields["phone"] == "555-123-4567"
    assert json.loads(fields["meta"]) == {"zip": 60614, "tags": ["A"]}
    lead = parse_xml(fields["xmldata"])
    assert lead.find("Name").attrib == {"first": "ana maría"}
    assert lead.findtext("Name") == "O'Brien-Lopez"
    assert lead.findtext("Address") == "12 Oak & Elm <Rear>"
    assert lead.findtext("Zip") == "60614"


def test_a_form_body_must_be_an_object_of_fields():
    with pytest.raises(TemplateError, match="A form body is a JSON object"):
        compile_request("form", '["a"]', {}, {})


# --- Query and headers ------------------------------------------------------------------------


def test_query_values_and_headers_are_text_templates():
    rendered = render(
        "json",
        "",
        query={"key": "{{ secrets.api_key }}", "zip": "{{ fields.zip_code }}", "v": "2"},
        headers={"Authorization": "Bearer {{ secrets.api_key | b64 }}", "X-Lead": "{{ lead.id }}"},
    )
    assert rendered.query == [("key", SECRET), ("zip", "60614"), ("v", "2")]
    assert rendered.headers == {
        "Authorization": "Bearer c2tfbGl2ZV9RNyZ4PHk+Inon",
        "X-Lead": "4711",
    }


def test_a_header_value_that_renders_a_line_break_is_refused_at_run_time():
    context = lead_context()
    context["fields"]["city"] = "Chicago\r\nX-Injected: 1"
    with pytest.raises(TemplateError) as caught:
        render("json", "", context, headers={"X-City": "{{ fields.city }}"})
    assert caught.value.where == "header X-City"
    assert "line break" in caught.value.message


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-Key": "a\r\nb: {{ secrets.api_key }}"}, "line break"),
        ({"X-Key": "€ {{ secrets.api_key }}"}, "characters HTTP headers cannot carry"),
        ({"Bad Name": "x"}, "not a valid HTTP header name"),
    ],
)
def test_a_header_template_that_cannot_be_a_header_is_refused_when_compiled(headers, message):
    with pytest.raises(TemplateError, match=message):
        compile_request("json", "", {}, headers)


def test_a_lone_surrogate_in_a_query_value_becomes_a_replacement_character():
    context = lead_context()
    context["fields"]["city"] = "a\ud800b"
    assert rendered_text("{{ fields.city }}", context) == "a\ufffdb"


# --- Masking ----------------------------------------------------------------------------------


def all_text(rendered: RenderedRequest) -> str:
    return "\n".join(
        [
            (rendered.body or b"").decode("utf-8"),
            *(f"{n}={v}" for n, v in rendered.query),
            *(f"{n}: {v}" for n, v in rendered.headers.items()),
        ]
    )


def test_a_masked_render_holds_no_secret_and_no_pii_in_the_url():
    template = compile_request(
        "json",
        NESTED_JSON_BUYER,
        {"key": "{{ secrets.api_key }}", "email": "{{ fields.email | lower | sha256 }}"},
        {"X-Api-Key": "{{ secrets.api_key }}", "X-Sig": "{{ secrets.api_key | md5 }}"},
    )
    assert template.uses_secrets
    assert template.uses_pii_in_url
    masked = template.render_masked(lead_context(), pii=PII)
    assert masked.query == [("key", "••••"), ("email", "••••")]
    assert masked.headers == {"X-Api-Key": "••••", "X-Sig": "••••"}
    body = json.loads(masked.body or b"")
    assert body["auth"] == {"api_key": "••••", "campaign": "••••"}
    # The body keeps the lead's PII (it is masked where it is shown); only the URL may not.
    assert body["lead"]["contact"]["email"] == "ana@example.com"
    assert SECRET not in all_text(masked)


def test_a_template_without_secrets_or_fields_in_its_url_says_so():
    template = compile_request("json", '{"a": "{{ fields.city }}"}', {"z": "{{ lead.id }}"}, {})
    assert not template.uses_secrets
    assert not template.uses_pii_in_url


def test_when_masked_values_break_the_render_the_real_one_is_scrubbed_of_every_spelling():
    context = lead_context()
    context["secrets"]["pin"] = "9182736455"
    template = compile_request(
        "xml",
        "<a n='{{ (secrets.pin | int) + 1 }}' k='{{ secrets.api_key }}'>"
        "{{ secrets.api_key | urlencode }} {{ secrets.api_key | json }} {{ fields.email }}</a>",
        {"k": "{{ secrets.api_key }}", "e": "{{ fields.email }} {{ fields.email | urlencode }}"},
        {"X-Key": "{{ secrets.pin }}"},
    )
    real = template.render(context)
    assert SECRET in parse_xml(real.body).attrib["k"]
    masked = template.render_masked(context, pii=PII)
    text = all_text(masked)
    for secret in (SECRET, "9182736455", context["fields"]["email"]):
        for spelling in (secret, quote(secret, ""), quote_plus(secret), json.dumps(secret)[1:-1]):
            if secret != context["fields"]["email"]:
                assert spelling not in text
    assert masked.query == [("k", "••••"), ("e", "•••• ••••")]
    # The body keeps the e-mail: PII is kept out of the URL only.
    assert "Ana@Example.com" in (masked.body or b"").decode()
    assert "9182736456" in parse_xml(masked.body).attrib["n"]


def test_masked_context_masks_secrets_and_the_pii_given_and_leaves_the_lead_alone():
    context = lead_context()
    original = copy.deepcopy(context)
    pii = frozenset({"email", "fields.phone", "consent.ip", "not_given", "lead.nothing"})
    masked = masked_context(context, pii=pii)
    assert masked["secrets"] == {"api_key": "••••", "campaign": "••••"}
    assert isinstance(masked["secrets"]["api_key"], Masked)
    assert masked["fields"]["email"] == masked["fields"]["phone"] == "••••"
    assert masked["consent"]["ip"] == "••••"
    assert "not_given" not in masked["fields"]
    assert "nothing" not in masked["lead"]
    assert masked["fields"]["city"] == "Chicago"
    assert masked["consent"]["page_url"] == original["consent"]["page_url"]
    assert context == original


def test_a_consent_value_named_personal_is_masked_in_the_url_too():
    template = compile_request("json", "", {"ip": "{{ consent.ip }}", "id": "{{ lead.id }}"}, {})
    assert template.uses_pii_in_url
    masked = template.render_masked(lead_context(), pii=frozenset({"consent.ip"}))
    assert masked.query == [("ip", "••••"), ("id", "4711")]


# --- Checking when saved ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body_format", "body"),
    [("json", NESTED_JSON_BUYER), ("xml", XML_BUYER), ("form", FORM_BUYER), ("json", "")],
)
def test_realistic_templates_pass_the_check(body_format, body):
    check_request(
        body_format,
        body,
        {"key": "{{ secrets.api_key }}", "zip": "{{ fields.zip_code | zip5 }}"},
        {"X-Api-Key": "{{ secrets.api_key }}", "Accept": "application/xml"},
        sample=lead_context(),
    )


def test_the_check_refuses_a_name_the_sample_lead_does_not_have_with_its_line():
    body = '{\n  "first": "{{ fields.first_name }}",\n  "typo": "{{ fields.frist_name }}"\n}'
    compile_request("json", body, {}, {}).render(lead_context())  # lenient at run time
    with pytest.raises(TemplateError) as caught:
        check_request("json", body, {}, {}, sample=lead_context())
    assert (caught.value.where, caught.value.line) == ("body", 3)
    assert "frist_name" in caught.value.message


@pytest.mark.parametrize(
    ("part", "where"),
    [
        ({"query": {"z": "{{ fieldz.zip_code }}"}}, "query z"),
        ({"headers": {"X-K": "{{ secrets.apikey }}"}}, "header X-K"),
        ({"body": "<a>\n<b>{{ fields.city.name.x }}</b></a>"}, "body"),
    ],
)
def test_the_check_refuses_unknown_names_in_every_part(part, where):
    arguments = {"body_format": "xml", "body": "", "query": {}, "headers": {}} | part
    with pytest.raises(TemplateError) as caught:
        check_request(
            arguments["body_format"],
            arguments["body"],
            arguments["query"],
            arguments["headers"],
            sample=lead_context(),
        )
    assert caught.value.where == where


def test_the_check_refuses_xml_that_is_not_well_formed_with_its_line():
    with pytest.raises(TemplateError) as caught:
        check_request(
            "xml", "<Lead>\n  <Name>{{ fields.city }}</Nam>\n</Lead>", {}, {}, sample=lead_context()
        )
    assert caught.value.line == 2
    assert caught.value.message.startswith("The rendered XML is not well-formed")


@pytest.mark.parametrize(
    "xml",
    [
        "<a><!-- {{ fields.last_name }} --></a>",
        "<a>{{ fields.last_name | safe }}</a>",
        "<a>{% autoescape false %}{{ fields.city }}{% endautoescape %}</a>",
        "<a><{{ fields.credit }}/></a>",
    ],
)
def test_the_check_refuses_xml_that_unusual_values_would_break(xml):
    # Well-formed with the sample lead; broken by quotes, ampersands or "--" in a value.
    compile_request("xml", xml, {}, {})
    with pytest.raises(TemplateError, match="With unusual values"):
        check_request("xml", xml, {}, {}, sample=lead_context())


def test_the_check_keeps_formatted_values_so_that_filters_can_read_them():
    # phone, date, int and yn would refuse free text; their values stay as in the sample.
    check_request(
        "xml",
        "<a p='{{ fields.phone | phone }}' d='{{ fields.date_of_birth | date }}'>"
        "{{ fields.zip_code | int }} {{ fields.homeowner | yn }} {{ ping.price | number }}</a>",
        {},
        {},
        sample=lead_context(),
    )


def test_the_check_refuses_a_form_field_whose_xml_is_not_well_formed():
    with pytest.raises(TemplateError) as caught:
        check_request(
            "form",
            '{\n  "a": "1",\n  "xmldata": "<Lead>{{ fields.city }}</Lead"\n}',
            {},
            {},
            sample=lead_context(),
        )
    assert caught.value.where == "body"
    assert caught.value.message.startswith("The XML of field xmldata is not well-formed")


def test_the_check_refuses_xml_entities():
    xml = '<!DOCTYPE a [<!ENTITY e "boom">]><a>&e;{{ fields.city }}</a>'
    with pytest.raises(TemplateError, match="not well-formed"):
        check_request("xml", xml, {}, {}, sample=lead_context())


def test_the_check_refuses_a_filter_the_sample_value_cannot_take():
    with pytest.raises(TemplateError) as caught:
        check_request(
            "json", '{\n\n "p": "{{ fields.city | phone }}"}', {}, {}, sample=lead_context()
        )
    assert (caught.value.line, caught.value.message) == (
        3,
        "Filter phone: the value is not a US phone number (10 digits, optionally after +1).",
    )


def test_an_unknown_body_format_is_refused():
    with pytest.raises(TemplateError, match="Unknown body format 'yaml'"):
        compile_request("yaml", "a: 1", {}, {})


def test_a_request_template_is_a_plain_frozen_value():
    template = compile_request("json", '{"a": "{{ lead.id }}"}', {}, {})
    assert isinstance(template, RequestTemplate)
    assert template.body_format == "json"
    with pytest.raises(AttributeError):
        template.body_format = "xml"  # type: ignore[misc]
