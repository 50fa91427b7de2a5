from __future__ import annotations

import json
from decimal import Decimal

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from buyers.models import ResponseRule
from routing.responses import DEFAULT_RULE, ParseRule, json_path, parse_response, rule_from_model
from simulator.server import SimulatorThread


@pytest.mark.parametrize(
    ("body", "accepted", "price", "reason", "reference"),
    [
        ('{"status": "bid", "price": 12.5, "bid_id": "b-1"}', True, Decimal("12.50"), "", "b-1"),
        ('{"status": "decline", "reason": "budget reached"}', False, None, "budget reached", ""),
        ('{"status": "accepted", "price": 20, "lead_id": "L9"}', True, Decimal("20.00"), "", "L9"),
        ('{"status": "accepted", "lead_id": "L9"}', True, None, "", "L9"),
        ('{"status": "rejected", "reason": "duplicate"}', False, None, "duplicate", ""),
    ],
)
def test_the_default_rule_reads_the_simulators_answers(body, accepted, price, reason, reference):
    parsed = parse_response(DEFAULT_RULE, 200, body)
    assert (parsed.accepted, parsed.price, parsed.reason, parsed.reference) == (
        accepted,
        price,
        reason,
        reference,
    )


def test_a_new_contracts_rule_is_the_default_rule():
    assert rule_from_model(ResponseRule()) == DEFAULT_RULE
    assert rule_from_model(None) == DEFAULT_RULE


def test_it_never_accepts_a_server_error_even_with_an_accepting_body():
    parsed = parse_response(DEFAULT_RULE, 500, '{"status": "accepted"}')
    assert not parsed.accepted


def test_it_names_the_http_status_when_a_failure_gives_no_reason():
    assert parse_response(DEFAULT_RULE, 503, "<html>down</html>").reason == "HTTP 503"
    assert parse_response(DEFAULT_RULE, 503, "").reason == "HTTP 503"
    assert parse_response(DEFAULT_RULE, 200, "").reason == "not accepted"


def test_it_reads_nested_paths_and_list_indexes():
    document = {"result": {"bids": [{"amount": "$1,250.50"}]}}
    assert json_path(document, "result.bids.0.amount") == "$1,250.50"
    rule = ParseRule(success_path="result.ok", price_path="result.bids.0.amount")
    body = json.dumps({"result": {"ok": True, "bids": [{"amount": "$1,250.50"}]}})
    parsed = parse_response(rule, 200, body)
    assert parsed.accepted
    assert parsed.price == Decimal("1250.50")


def test_it_takes_the_first_present_of_alternative_paths():
    assert json_path({"bid_id": "b"}, "lead_id|bid_id") == "b"
    assert json_path({"lead_id": "l", "bid_id": "b"}, "lead_id|bid_id") == "l"


def test_it_reads_a_regex_answer_and_a_status_code_answer():
    regex_rule = ParseRule(success_regex=r"^ACCEPT", price_regex=r"price=([0-9.]+)")
    parsed = parse_response(regex_rule, 200, "ACCEPT|price=17.25|id=99")
    assert (parsed.accepted, parsed.price) == (True, Decimal("17.25"))
    code_rule = ParseRule(success_status_codes=(201,))
    assert parse_response(code_rule, 201, "").accepted
    assert not parse_response(code_rule, 200, "").accepted


@pytest.mark.parametrize("price", ["-3", "NaN", "Infinity", "abc", "true", "[1]"])
def test_it_ignores_a_price_that_is_not_a_non_negative_amount(price):
    body = '{"status": "bid", "price": %s}' % (price if price in {"true", "[1]"} else f'"{price}"')
    assert parse_response(DEFAULT_RULE, 200, body).price is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(
    status=st.integers(min_value=100, max_value=599),
    body=st.one_of(st.text(max_size=200), json_values.map(json.dumps)),
    rule=st.builds(
        ParseRule,
        success_path=st.sampled_from(["status", "a.b", "0", ""]),
        price_path=st.sampled_from(["price", "a.0.b", ""]),
        reason_path=st.sampled_from(["reason", "x|y", ""]),
    ),
)
def test_it_never_raises_on_whatever_a_buyer_answers(status, body, rule):
    parsed = parse_response(rule, status, body)
    assert parsed.price is None or parsed.price >= 0
    assert len(parsed.reason) <= 500
    assert not (parsed.accepted and not 200 <= status < 300)


@pytest.mark.parametrize(
    ("path", "query", "accepted", "has_price"),
    [
        ("ping", "bid=12.50", True, True),
        ("ping", "decline=1", False, False),
        ("ping", "fail=1", False, False),
        ("post", "accept=1&price=20", True, True),
        ("post", "accept=1", True, False),
        ("post", "accept=0", False, False),
    ],
)
def test_a_new_contracts_rule_reads_the_real_simulator(path, query, accepted, has_price):
    with SimulatorThread() as sim, requests.Session() as http:
        answer = http.post(f"{sim.base_url}/{path}?{query}", json={"zip_code": "60601"}, timeout=5)
    parsed = parse_response(rule_from_model(ResponseRule()), answer.status_code, answer.text)
    assert parsed.accepted is accepted
    assert (parsed.price is not None) is has_price
    if accepted:
        assert parsed.reference.startswith("bid_" if path == "ping" else "lead_")
    else:
        assert parsed.reason
