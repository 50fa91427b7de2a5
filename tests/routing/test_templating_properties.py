"""Properties of request templates that must hold whatever a lead holds (hypothesis)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.formats import drop_xml_invalid
from routing.templating import FILTERS, TemplateError, compile_request

# Text that breaks documents pasted together: markup, quotes, escapes, template syntax, NUL,
# control characters, lone surrogates and characters beyond the BMP, mixed with anything.
nasty_pieces = st.sampled_from(
    ['"', "'", "&", "&amp;", "<", ">", "</a>", "]]>", "--", "\\", "\\u0000", "\x00", "\x01",
     "\x0b", "\x7f", "\r\n", "\r", "\t", "\ud800", "\udfff", "é", "中", "😀", "\u2028",
     "{{ x }}", "{% if %}", "%s", "+", "=", "?", "#", " "]
)  # fmt: skip
lead_text = st.one_of(
    st.text(alphabet=st.characters(exclude_categories=())),
    st.lists(st.one_of(nasty_pieces, st.text(max_size=3)), max_size=8).map("".join),
)
lead_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
    lead_text,
)
any_value = st.one_of(
    lead_value,
    st.decimals(),
    st.floats(),
    st.dates(),
    st.datetimes(timezones=st.one_of(st.none(), st.just(UTC))),
    st.lists(lead_text, max_size=3),
    st.dictionaries(st.text(max_size=3), lead_text, max_size=3),
)

FILTER_ARGUMENTS: dict[str, list[tuple[Any, ...]]] = {
    "phone": [(), ("e164",), ("10",), ("dashed",), ("dotted",), ("paren",), ("fancy",)],
    "date": [(), ("%m/%d/%Y",), ("%Y\x00",)],
    "datetime": [(), ("%Y-%m-%dT%H:%M:%S%z", "America/New_York"), ("%H", "Nowhere/Else")],
    "lookup": [({"Y": "yes", "true": 1},), ({"a": "b"}, "default"), ("not a mapping",)],
}


def filter_error(name: str, value: Any, arguments: tuple[Any, ...]) -> TemplateError | None:
    """Run a filter; return its TemplateError, or None when it gave a value."""
    try:
        FILTERS[name](value, *arguments)
    except TemplateError as error:
        return error
    return None


@given(name=st.sampled_from(sorted(FILTERS)), value=any_value, data=st.data())
def test_every_filter_gives_a_value_or_a_template_error_naming_it(name, value, data):
    arguments = data.draw(st.sampled_from(FILTER_ARGUMENTS.get(name, [()])))
    error = filter_error(name, value, arguments)
    assert error is None or error.message.startswith(f"Filter {name}: ")


@given(name=st.sampled_from(sorted(FILTERS)), value=st.text(min_size=1).map("§{}§".format))
def test_a_filter_error_never_repeats_the_value(name, value):
    error = filter_error(name, value, FILTER_ARGUMENTS.get(name, [()])[0])
    assert "§" not in str(error or "")


def context_with(fields: dict[str, Any], secrets: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "fields": fields,
        "lead": {"id": 7, "test": False, "source": {"id": 1, "name": "Acme"}},
        "consent": {"ip": "203.0.113.9"},
        "auction": {"bid": Decimal("12.50"), "floor": None},
        "ping": {},
        "secrets": secrets or {"key": "k"},
    }


JSON_TEMPLATE = compile_request(
    "json",
    """{
      "exact": "{{ fields.a }}",
      "text": "={{ fields.a }}",
      "mixed": "<{{ fields.a }}> & \\"{{ fields.b }}\\"",
      "nested": {"list": ["{{ fields.b }}", "{{ fields.a | json }}", 1, null]},
      "filters": ["{{ fields.a | upper }}", "{{ fields.b | xml }}", "{{ fields.a | urlencode }}"],
      "loop": "{% for c in (fields.a | string)[:3] %}[{{ c }}]{% endfor %}",
      "bid": "{{ auction.bid }}",
      "lead": "{{ lead }}"
    }""",
    {},
    {},
)


@given(a=lead_value, b=lead_value)
def test_a_json_template_renders_valid_json_whatever_the_values(a, b):
    body = JSON_TEMPLATE.render(context_with({"a": a, "b": b})).body
    assert body is not None
    document = json.loads(body)
    expected_exact = float(a) if isinstance(a, Decimal) else a
    assert document["exact"] == expected_exact
    assert document["text"].startswith("=")
    assert document["bid"] == 12.5
    assert document["lead"] == {"id": 7, "test": False, "source": {"id": 1, "name": "Acme"}}


XML_TEMPLATE = compile_request(
    "xml",
    """<?xml version="1.0" encoding="UTF-8"?>
<Lead xmlns="urn:example:v1" xmlns:c="urn:example:contact" id="{{ lead.id }}">
  <c:Name first="{{ fields.a }}" last='{{ fields.b }}'>{{ fields.a }}</c:Name>
  {% set both %}{{ fields.a }}|{{ fields.b }}{% endset %}
  <Both>{{ both }}</Both>
  <Escaped>{{ fields.b | xml }}</Escaped>
  <Json>{{ fields.a | json }}</Json>
  {% if fields.b %}<B>{{ fields.b }}</B>{% endif %}
</Lead>""",
    {},
    {},
)


def xml_text_of(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return drop_xml_invalid(str(value))


@given(a=lead_value, b=lead_value)
def test_an_xml_template_renders_well_formed_xml_that_reads_back_the_values(a, b):
    body = XML_TEMPLATE.render(context_with({"a": a, "b": b})).body
    assert body is not None
    root = ET.fromstring(body)  # noqa: S314 - our own rendering
    name = root.find("{urn:example:contact}Name")
    assert name.attrib == {"first": xml_text_of(a), "last": xml_text_of(b)}
    assert (name.text or "") == xml_text_of(a)
    assert (root.findtext("{urn:example:v1}Both") or "") == f"{xml_text_of(a)}|{xml_text_of(b)}"
    assert (root.findtext("{urn:example:v1}Escaped") or "") == xml_text_of(b)


FORM_TEMPLATE = compile_request(
    "form",
    """{
      "name": "{{ fields.a }}",
      "both": "{{ fields.a }}&{{ fields.b }}",
      "xmldata": "<Lead><Name a=\\"{{ fields.b }}\\">{{ fields.a }}</Name></Lead>",
      "jsondata": {"a": "{{ fields.a }}", "b": ["{{ fields.b }}"]}
    }""",
    {},
    {},
)


def form_text_of(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    # A lone surrogate cannot be URL-encoded as UTF-8: it is sent as "?".
    return str(value).encode("utf-8", "replace").decode("utf-8")


@given(a=lead_value, b=lead_value)
def test_a_form_template_renders_fields_that_decode_back_with_valid_documents(a, b):
    body = FORM_TEMPLATE.render(context_with({"a": a, "b": b})).body
    assert body is not None
    fields = dict(parse_qsl(body.decode("ascii"), keep_blank_values=True))
    assert fields["name"] == form_text_of(a)
    assert fields["both"] == f"{form_text_of(a)}&{form_text_of(b)}"
    lead = ET.fromstring(fields["xmldata"])  # noqa: S314 - our own rendering
    assert (lead.findtext("Name") or "") == xml_text_of(a)
    assert lead.find("Name").attrib["a"] == xml_text_of(b)
    jsondata = json.loads(fields["jsondata"])
    assert set(jsondata) == {"a", "b"}


# Secrets and PII written with characters the templates and the rest of the lead never use,
# so that finding one in a masked render can only mean a leak.
secret_text = st.text(alphabet="ΣΔΩ§¶&<>\"' %+\\", min_size=5).map("Σ{}".format)
pii_text = st.text(alphabet="ЖЯЮ&<>\"' %+", min_size=5).map("Ж{}".format)

MASKED_TEMPLATE = compile_request(
    "json",
    """{
      "key": "{{ secrets.key }}",
      "signature": "{{ (secrets.key ~ fields.email) | sha256 }}",
      "basic": "{{ (secrets.user ~ ':' ~ secrets.key) | b64 }}",
      "upper": "{{ secrets.key | upper | urlencode }}",
      "json": "{{ secrets.key | json }}",
      "email": "{{ fields.email }}"
    }""",
    {
        "key": "{{ secrets.key }}",
        "email": "{{ fields.email | lower }}",
        "hashed": "{{ fields.email | sha256 }}",
        "name": "{{ fields.name | title_words | urlencode }}",
        "ok": "{{ fields.zip }}",
    },
    {"X-Key": "{{ secrets.key }}", "X-Both": "{{ secrets.user }}:{{ secrets.key | b64 }}"},
)


def spellings(value: str) -> list[str]:
    return [value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]]


@given(key=secret_text, user=secret_text, email=pii_text, name=pii_text)
def test_a_masked_render_never_holds_a_secret_nor_pii_in_the_url(key, user, email, name):
    context = context_with(
        {"email": email, "name": name, "zip": "60614"}, secrets={"key": key, "user": user}
    )
    masked = MASKED_TEMPLATE.render_masked(context, pii=frozenset({"email", "name"}))
    stored = "\n".join(
        [
            (masked.body or b"").decode("utf-8"),
            *(value for _, value in masked.query),
            *masked.headers.values(),
        ]
    )
    for secret in (key, user):
        for spelling in spellings(secret):
            assert spelling not in stored
    for _, value in masked.query:
        for personal in (email, name, email.lower(), name.title()):
            for spelling in spellings(personal):
                assert spelling not in value
    assert ("ok", "60614") in masked.query


@pytest.mark.parametrize("body_format", ["json", "xml", "form"])
@given(value=lead_text)
def test_a_template_with_no_code_renders_itself(body_format, value):
    documents = {
        "json": ('{"a": [1, "x"]}', b'{"a":[1,"x"]}'),
        "xml": ("<a>x</a>", b"<a>x</a>"),
        "form": ('{"a": "x y", "n": 1}', b"a=x+y&n=1"),
    }
    source, expected = documents[body_format]
    assert compile_request(body_format, source, {}, {}).render(context_with({"a": value})).body == (
        expected
    )
