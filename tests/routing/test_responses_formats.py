"""Response rules over JSONPath, XML (XPath, namespaces, attributes) and regexes, the buyer's own
words for a decline, captures, and answers that must never break the parser."""

from __future__ import annotations

import json
from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buyers.models import ResponseRule
from routing import responses
from routing.responses import (
    ParseRule,
    accept_header,
    check_path,
    parse_namespaces,
    parse_response,
    rule_from_model,
)

XML_DEFAULT_NS = """<?xml version="1.0" encoding="UTF-8"?>
<PingResponse xmlns="urn:example:leads:v2" result="accepted">
  <Status>Accepted</Status>
  <Bid currency="USD">
    <Amount>$1,250.50</Amount>
    <PingId>P-77</PingId>
  </Bid>
</PingResponse>"""

XML_PREFIXED_NS = """<lp:PostResult xmlns:lp="urn:example:post" xmlns:t="urn:example:tracking"
    lp:leadId="L-9" t:token="tk-3">
  <lp:Accepted>true</lp:Accepted>
  <lp:Offers>
    <lp:Offer kind="backup"><lp:Price>3.00</lp:Price></lp:Offer>
    <lp:Offer kind="primary"><lp:Price>18.75</lp:Price></lp:Offer>
  </lp:Offers>
</lp:PostResult>"""


def xml_rule(**fields):
    return ParseRule(
        **{
            "answer_format": "xml",
            "success_values": ("accepted",),
            "price_path": "",
            "reason_path": "",
            "reference_path": "",
            **fields,
        }
    )


# XML


def test_unprefixed_names_read_an_answer_in_a_default_namespace():
    rule = xml_rule(
        success_path="PingResponse/Status",
        price_path="//Bid/Amount",
        reference_path="/PingResponse/Bid/PingId/text()",
    )
    parsed = parse_response(rule, 200, XML_DEFAULT_NS)
    assert (parsed.accepted, parsed.price, parsed.reference) == (True, Decimal("1250.50"), "P-77")


def test_a_declared_default_namespace_must_be_the_documents():
    ours = xml_rule(success_path="PingResponse/Status", namespaces=(("", "urn:example:leads:v2"),))
    other = xml_rule(success_path="PingResponse/Status", namespaces=(("", "urn:example:other"),))
    assert parse_response(ours, 200, XML_DEFAULT_NS).accepted
    assert not parse_response(other, 200, XML_DEFAULT_NS).accepted


def test_prefixes_are_the_rules_own_and_only_the_uri_must_match():
    rule = xml_rule(
        success_path="r:PostResult/r:Accepted",
        price_path=".//r:Offer[@kind='primary']/r:Price",
        reference_path="r:PostResult/@r:leadId",
        namespaces=(("r", "urn:example:post"), ("trk", "urn:example:tracking")),
        captures=(("token", "r:PostResult/@trk:token"), ("first", "//r:Offer[1]/r:Price")),
    )
    parsed = parse_response(rule, 200, XML_PREFIXED_NS)
    assert parsed.accepted  # the text "true" is XML's boolean true, whatever success_values say
    assert (parsed.price, parsed.reference) == (Decimal("18.75"), "L-9")
    assert parsed.captures == {"token": "tk-3", "first": "3.00"}


def test_wildcards_positions_and_attributes_read_as_in_elementtree():
    rule = xml_rule(
        success_path="{*}PostResult/@{*}leadId",
        success_values=("l-9",),
        price_path="{*}PostResult/{*}Offers/{*}Offer[last()]/{*}Price",
        captures=(("kind", "//Offer[2]/@kind"), ("clark", "//{urn:example:post}Price")),
    )
    parsed = parse_response(rule, 200, XML_PREFIXED_NS)
    assert (parsed.accepted, parsed.price) == (True, Decimal("18.75"))
    assert parsed.captures == {"kind": "primary", "clark": "3.00"}


def test_an_attribute_of_the_root_and_alternatives():
    rule = xml_rule(success_path="PingResponse/@result", reference_path="//BidId|//Bid/PingId")
    parsed = parse_response(rule, 200, XML_DEFAULT_NS)
    assert (parsed.accepted, parsed.reference) == (True, "P-77")


def test_xml_declines_keep_the_buyers_error_elements_in_any_case_and_namespace():
    body = """<r:Response xmlns:r="urn:x"><r:Status>Rejected</r:Status>
      <r:ERRORS><r:error code="12">Invalid ZIP</r:error><r:error>Duplicate lead</r:error></r:ERRORS>
    </r:Response>"""
    parsed = parse_response(xml_rule(success_path="//Status"), 200, body)
    assert not parsed.accepted
    assert parsed.reason == "Invalid ZIP; Duplicate lead"


def test_an_xml_message_ranks_before_an_error_flag_and_attributes_count():
    flag = "<Result><Error>false</Error><Message>Outside our hours</Message></Result>"
    assert parse_response(xml_rule(success_path="//Ok"), 200, flag).reason == "Outside our hours"
    attribute = '<Result status="declined" reason="Cap reached"/>'
    assert parse_response(xml_rule(success_path="Result/@status"), 200, attribute).reason == (
        "Cap reached"
    )


def test_the_word_at_the_success_path_is_a_reason_when_nothing_else_is():
    body = "<Response><Status>DUPLICATE</Status></Response>"
    assert parse_response(xml_rule(success_path="Response/Status"), 200, body).reason == (
        "DUPLICATE"
    )
    assert parse_response(ParseRule(), 200, '{"status": "no_coverage"}').reason == "no_coverage"


def test_xml_entity_bombs_and_external_entities_are_refused_as_a_decline():
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        "<Response><Status>accepted</Status><Reason>&lol3;</Reason></Response>"
    )
    external = (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        "<Response><Status>accepted</Status><Reason>&xxe;</Reason></Response>"
    )
    rule = xml_rule(success_path="//Status", reason_path="//Reason")
    for body in (laughs, external):
        parsed = parse_response(rule, 200, body)
        assert not parsed.accepted
        assert parsed.reason == (
            "not accepted (the answer is not well-formed XML without entities)"
        )


# JSON


BIDS = {
    "result": {"ok": True},
    "bids": [
        {"id": "b-1", "status": "lost", "amount": 4},
        {"id": "b-2", "status": "won", "amount": "12.40", "tracking": {"auction_id": "A-5"}},
    ],
}


def test_jsonpath_reads_filters_indices_and_descendants():
    rule = ParseRule(
        success_path="$.result.ok",
        price_path="$.bids[?(@.status == 'won')].amount",
        reference_path="$.bids[-1].id",
        captures=(("auction", "$..auction_id"), ("first", "$.bids[0].id")),
    )
    parsed = parse_response(rule, 200, json.dumps(BIDS))
    assert (parsed.accepted, parsed.price, parsed.reference) == (True, Decimal("12.40"), "b-2")
    assert parsed.captures == {"auction": "A-5", "first": "b-1"}


def test_jsonpath_and_dotted_alternatives_mix_and_a_filter_may_hold_a_bar():
    rule = ParseRule(
        reference_path="$.missing|bids.1.id",
        captures=(("piped", "$.bids[?(@.status == 'won|lost')].id|$.bids[0].id"),),
    )
    parsed = parse_response(rule, 200, json.dumps(BIDS))
    assert parsed.reference == "b-2"
    assert parsed.captures == {"piped": "b-1"}


def test_a_filter_passes_over_values_it_cannot_compare():
    rule = ParseRule(price_path="$.bids[?(@.amount > 10)].amount")
    body = json.dumps({"status": "bid", "bids": [{"amount": "ten"}, {"amount": 11}]})
    assert parse_response(rule, 200, body).price == Decimal("11.00")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        # JSON:API and RFC 9457 problem details keep their words under "detail"
        ('{"errors": [{"status": "422", "detail": "Phone is not valid"}]}', "Phone is not valid"),
        ('{"type": "about:blank", "title": "Bad Request", "detail": "zip missing"}', "zip missing"),
        ('{"errors": {"zip": ["is invalid"], "email": ["is taken", "bounced"]}}',
         "zip: is invalid; email: is taken; bounced"),
        ('{"Errors": ["Duplicate", "Duplicate", "Outside area"]}', "Duplicate; Outside area"),
        ('{"success": false, "data": {"Message": "Daily cap reached"}}', "Daily cap reached"),
        ('{"error": true, "error_message": "Invalid api key"}', "Invalid api key"),
        ('{"status": "fail", "statusMessage": "  Lead\\n too   old "}', "Lead too old"),
        ('"Not interested"', "Not interested"),
    ],
)  # fmt: skip
def test_a_json_decline_keeps_the_buyers_words_from_the_usual_places(body, reason):
    parsed = parse_response(ParseRule(reason_path="nothing.here"), 400, body)
    assert (parsed.accepted, parsed.reason) == (False, reason)


def test_a_reason_path_to_a_list_joins_its_texts():
    rule = ParseRule(reason_path="$.result.problems")
    body = '{"result": {"problems": [{"code": 7, "text": "bad zip"}, "dup"]}}'
    assert parse_response(rule, 200, body).reason == "text: bad zip; dup"


NOT_JSON = "not accepted (the answer is not JSON)"


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (200, "Duplicate lead", "Duplicate lead"),
        (403, "  Invalid\n  API key\n", "Invalid API key"),
        (200, "REJECTED|Outside service area", "REJECTED|Outside service area"),
        (502, "<html><body><h1>Bad Gateway</h1></body></html>", "HTTP 502"),
        (200, "<!DOCTYPE html><html><p>Thanks!</p></html>", NOT_JSON),
        (200, "Sorry, <b>no</b>", NOT_JSON),
        (200, "x" * 201, NOT_JSON),
        (500, "", "HTTP 500"),
        (200, "", "not accepted"),
        (200, "   ", "not accepted"),
        (200, '{"status": "declined"}', "declined"),
        (200, "{}", "not accepted"),
    ],
)  # fmt: skip
def test_a_short_plain_text_body_is_the_reason_and_markup_never_is(status, body, reason):
    assert parse_response(ParseRule(), status, body).reason == reason


def test_an_answer_in_another_format_than_the_rule_reads_still_gives_its_reason():
    xml_error = "<Error><Code>401</Code><Description>Unknown vendor</Description></Error>"
    assert parse_response(ParseRule(), 401, xml_error).reason == "Unknown vendor"
    json_error = '{"message": "Missing field: phone"}'
    assert parse_response(xml_rule(success_path="//Status"), 400, json_error).reason == (
        "Missing field: phone"
    )


def test_a_rule_of_status_codes_only_still_finds_the_reason():
    rule = ParseRule(success_status_codes=(201,), success_path="", reason_path="")
    assert parse_response(rule, 409, '{"error": "already sold"}').reason == "already sold"


def test_a_deeply_nested_answer_is_a_decline_not_a_crash():
    for body in ("[" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000):
        parsed = parse_response(ParseRule(captures=(("x", "$..a"),)), 200, body)
        assert not parsed.accepted


# Regexes and text answers


def test_regex_paths_read_the_raw_body_in_any_format():
    body = "<R><Status>OK</Status></R><!-- ping_id=9f2 -->"
    rule = xml_rule(
        success_path="//Status",
        success_values=("ok",),
        reference_path=r"re:ping_id=(\w+)",
        captures=(("whole", r"re:ping_id=\w+"), ("none", r"re:nope=(\d+)")),
    )
    parsed = parse_response(rule, 200, body)
    assert (parsed.accepted, parsed.reference) == (True, "9f2")
    assert parsed.captures == {"whole": "ping_id=9f2"}


def test_a_text_answer_is_read_by_regexes():
    rule = ParseRule(
        answer_format="text",
        success_path=r"re:^(ACCEPTED|REJECTED)",
        success_values=("accepted",),
        price_path=r"re:price=([0-9.]+)",
        reason_path=r"re:reason=([^|]+)",
        reference_path=r"re:lead=(\w+)",
        captures=(("lead", r"re:lead=(\w+)"),),
    )
    accepted = parse_response(rule, 200, "ACCEPTED|price=9.25|lead=A1")
    assert (accepted.accepted, accepted.price, accepted.reference) == (True, Decimal("9.25"), "A1")
    assert accepted.captures == {"lead": "A1"}
    rejected = parse_response(rule, 200, "REJECTED|reason=Duplicate lead")
    assert (rejected.accepted, rejected.reason) == (False, "Duplicate lead")


def test_a_path_that_is_not_a_regex_reads_nothing_from_a_text_answer():
    rule = ParseRule(answer_format="text", success_path="status")
    assert parse_response(rule, 200, '{"status": "accepted"}').accepted is False


# Captures


def test_captures_are_text_at_most_255_characters_and_missing_ones_are_absent():
    body = json.dumps(
        {"id": 42, "ok": True, "price": 1.5, "meta": {"b": 1, "a": [2]}, "long": "z" * 300}
    )
    rule = ParseRule(
        captures=(
            ("id", "id"),
            ("ok", "ok"),
            ("price", "price"),
            ("meta", "meta"),
            ("long", "long"),
            ("gone", "nope"),
            ("null", "$.none"),
        )
    )
    assert parse_response(rule, 200, body).captures == {
        "id": "42",
        "ok": "true",
        "price": "1.5",
        "meta": '{"a":[2],"b":1}',
        "long": "z" * 255,
    }


def test_a_path_is_compiled_once(monkeypatch):
    calls = []

    def counting(path):
        calls.append(path)
        return real(path)

    real = responses.jsonpath_parse
    monkeypatch.setattr(responses, "jsonpath_parse", counting)
    responses._reader.cache_clear()
    for _ in range(3):  # a rule rebuilt for each answer (the contract page's tools) too
        rule = ParseRule(captures=(("bid", "$.bids[0].id"),))
        assert parse_response(rule, 200, json.dumps(BIDS)).captures == {"bid": "b-1"}
    assert calls == ["$.bids[0].id"]


# Rules, paths, Accept


def test_rule_from_model_reads_the_formats_namespaces_and_captures():
    row = SimpleNamespace(
        **{
            field: getattr(ResponseRule(), field)
            for field in (
                "success_path", "success_values", "success_regex", "success_status_codes",
                "price_path", "price_regex", "reason_path", "reference_path",
            )
        },
        answer_format="xml",
        namespaces="p=urn:example:post\n\nxmlns:t='urn:example:tracking'\n",
        captures={"ping_id": "//p:PingId", "skip": ""},
    )  # fmt: skip
    rule = rule_from_model(row)
    assert rule.answer_format == "xml"
    assert rule.namespaces == (("p", "urn:example:post"), ("t", "urn:example:tracking"))
    assert rule.captures == (("ping_id", "//p:PingId"),)
    assert rule_from_model(ResponseRule()).answer_format == "json"


def test_namespaces_are_read_line_by_line_and_a_bad_line_is_named_when_strict():
    text = 'p = urn:a\nxmlns="urn:default"\n=urn:also-default\nxmlns:q="urn:q"'
    assert parse_namespaces(text) == (
        ("p", "urn:a"),
        ("", "urn:default"),
        ("", "urn:also-default"),
        ("q", "urn:q"),
    )
    assert parse_namespaces("p=urn:a\nnot a namespace") == (("p", "urn:a"),)
    with pytest.raises(ValueError, match="Line 2"):
        parse_namespaces("p=urn:a\nnot a namespace", strict=True)


@pytest.mark.parametrize(
    ("path", "answer_format", "problem"),
    [
        ("$.bids[", "json", "Not a valid JSONPath"),
        ("re:(unclosed", "json", "Not a valid regular expression"),
        ("Response/[", "xml", "Not a valid XPath"),
        ("p:Response", "xml", "prefix 'p' is not among"),
        ("status", "text", "re:<regex>"),
        ("|", "json", "empty"),
    ],
)
def test_a_path_that_cannot_be_read_is_named_for_the_rules_form(path, answer_format, problem):
    with pytest.raises(ValueError, match=problem):
        check_path(path, answer_format=answer_format)
    rule = ParseRule(answer_format=answer_format, success_path=path, reason_path=path)
    assert not parse_response(rule, 200, '{"status": "accepted"}').accepted


@pytest.mark.parametrize(
    "path", ["result.bids.0.amount", "$.bids[?(@.a == 1)].b", "re:id=(\\d+)", "a|$.b"]
)
def test_good_json_paths_pass_the_check(path):
    check_path(path, answer_format="json")


@pytest.mark.parametrize(
    "path", ["/R/S", "//p:Price/@p:id", "R/S/text()", ".//{*}Price[2]", "R[@t='a|b']/S|//S"]
)
def test_good_xpaths_pass_the_check(path):
    check_path(path, answer_format="xml", namespaces=(("p", "urn:p"),))


def test_the_accept_header_asks_for_the_rules_format_first():
    assert accept_header("json") == "application/json, */*;q=0.1"
    assert accept_header("xml") == "application/xml, text/xml;q=0.9, */*;q=0.1"
    assert accept_header("text") == "text/plain, */*;q=0.1"


# Whatever the buyer answers


XML_PIECES = [
    "<R>",
    "</R>",
    "<Status>accepted</Status>",
    "<Price>12.5</Price>",
    "<Error>bad</Error>",
    '<p:X xmlns:p="urn:p" p:id="1">',
    "</p:X>",
    "<![CDATA[x]]>",
    "<!-- c -->",
    "&amp;",
    "&lol;",
    "&#0;",
    "<?xml version='1.0' encoding='utf-16'?>",
    '<!DOCTYPE R [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>',
    '<!DOCTYPE R [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    '<!DOCTYPE R SYSTEM "http://127.0.0.1:9/dtd">',
    "\x00",
    "\ufeff",
    "é",
]
bodies = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(XML_PIECES) | st.text(max_size=5), max_size=12).map("".join),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.sampled_from(["error", "errors", "Message", "x", "0"]), children)
        ),
        max_leaves=15,
    ).map(json.dumps),
)
paths = st.sampled_from(
    [
        "",
        "status",
        "a.0.b",
        "$.a[?(@.b > 1)]",
        "$..error",
        "$[",
        "//Status",
        "R/@p:id",
        "{*}R/Price[last()]",
        "R/[",
        "re:(\\d+)",
        "re:(",
        "re:x|y",
        "a|$.b|//c",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    status=st.integers(min_value=100, max_value=599),
    body=bodies,
    rule=st.builds(
        ParseRule,
        answer_format=st.sampled_from(["json", "xml", "text"]),
        success_path=paths,
        success_regex=st.sampled_from(["", "^ok", "(", "accepted"]),
        price_path=paths,
        price_regex=st.sampled_from(["", "price=([0-9.]+)", "no-group", "["]),
        reason_path=paths,
        reference_path=paths,
        namespaces=st.sampled_from([(), (("p", "urn:p"),), (("", "urn:p"),)]),
        captures=st.lists(st.tuples(st.sampled_from(["a", "b"]), paths), max_size=3).map(tuple),
    ),
)
def test_no_answer_in_any_format_makes_the_parser_raise(status, body, rule):
    parsed = parse_response(rule, status, body)
    assert parsed.price is None or parsed.price >= 0
    assert len(parsed.reason) <= 500
    assert parsed.accepted or parsed.reason
    assert not (parsed.accepted and not 200 <= status < 300 and not rule.success_status_codes)
    assert all(len(value) <= 255 for value in parsed.captures.values())
    assert "root:" not in parsed.reason  # no external entity was ever read
