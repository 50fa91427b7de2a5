"""The presets written alongside the `_b` fake buyers are well-formed, and each platform preset
makes requests its fake buyer accepts and reads that buyer's answers. The presets are rendered
here the way issue 18's design specifies templates (a JSON leaf that is one expression keeps
its type, XML is auto-escaped, a form field may hold an XML document), with the few filters they
use, and read the way it specifies response rules, so they are proven against the fakes
whatever engine renders them."""

from __future__ import annotations

import datetime as dt
import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests
from defusedxml.ElementTree import fromstring
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from simulator.server import SimulatorThread
from tests.buyers.fakes.doublepositive_b import DoublePositiveInsertLead
from tests.buyers.fakes.novo_b import NovoPartnerLead
from tests.buyers.fakes.zoho_crm_b import ZohoCrmInsertRecords

PRESETS = Path(__file__).resolve().parents[3] / "buyers" / "presets"
SLUGS = (
    "novo-partner-lead",
    "doublepositive-insertlead",
    "zoho-crm-insertrecords",
    "generic-json-ping-post",
    "generic-xml-ping-post",
    "generic-form-post",
    "leadconduit",
)
TIMEOUT = 5
PRICE_MODELS = {"fixed", "ping_post"}

CONTEXT: dict[str, Any] = {
    "fields": {
        "first_name": "Mary",
        "last_name": "O'Neil & <Sons>",
        "email": "mary@example.com",
        "phone": "+16175550101",
        "street_address": '1 "Main" St',
        "city": "Boston",
        "county": "Suffolk",
        "state": "MA",
        "zip_code": "02134",
        "date_of_birth": "1980-04-02",
        "gender": "female",
        "marital_status": "married",
        "homeowner": True,
        "months_at_residence": 30,
    },
    "lead": {
        "id": "42",
        "created": "2024-05-01T10:30:00+00:00",
        "sub_id": "s-1",
        "source": {"id": 7, "name": "Acme & Co"},
        "vertical": "auto-insurance",
        "test": False,
        "score": 81,
        "tier": "Hot",
    },
    "consent": {
        "text": "By clicking, I agree to be contacted.",
        "timestamp": "2024-05-01T10:29:00+00:00",
        "ip": "203.0.113.7",
        "trustedform_cert_url": "https://cert.trustedform.com/abc",
        "jornaya_leadid": "D9F44AB8-A18D-D99E-3345-D17070728846",
        "page_url": "https://quotes.example/auto",
        "user_agent": "Mozilla/5.0",
        "sellers": [],
    },
    "auction": {"bid": None, "floor": None},
    "ping": {},
    "secrets": {},
}


def _phone(value: Any, style: str = "e164") -> str:
    digits = re.sub(r"\D", "", str(value))
    digits = digits[1:] if len(digits) == 11 and digits.startswith("1") else digits
    return {"10": digits, "e164": f"+1{digits}"}[style]


def _date(value: Any, fmt: str = "%Y-%m-%d") -> str:
    return dt.datetime.fromisoformat(str(value)).strftime(fmt)


def _environment(*, autoescape: bool) -> SandboxedEnvironment:
    environment = SandboxedEnvironment(undefined=StrictUndefined, autoescape=autoescape)
    environment.filters.update(
        phone=_phone,
        zip5=lambda value: re.sub(r"\D", "", str(value))[:5],
        date=_date,
        datetime=_date,
        yn=lambda value: "Y" if value else "N",
    )
    return environment


TEXT = _environment(autoescape=False)
XML = _environment(autoescape=True)
WHOLE_EXPRESSION = re.compile(r"\s*\{\{(?P<expression>(?:(?!\}\}).)*)\}\}\s*", re.DOTALL)


def _json_leaves(node: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        return {key: _json_leaves(value, context) for key, value in node.items()}
    if isinstance(node, list):
        return [_json_leaves(value, context) for value in node]
    if isinstance(node, str):
        whole = WHOLE_EXPRESSION.fullmatch(node)
        if whole:
            return TEXT.compile_expression(whole["expression"])(**context)
        return TEXT.from_string(node).render(context)
    return node


def render_body(endpoint: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """requests' keyword arguments for the endpoint's body, rendered from its template."""
    template = endpoint["body_template"]
    if endpoint["body_format"] == "json":
        return {"json": _json_leaves(json.loads(template), context)}
    if endpoint["body_format"] == "xml":
        return {"data": XML.from_string(template).render(context).encode()}
    form = {}
    for name, value in json.loads(template).items():
        if isinstance(value, str) and value.startswith("<"):
            form[name] = XML.from_string(value).render(context)
        elif isinstance(value, str):
            form[name] = TEXT.from_string(value).render(context)
        else:
            form[name] = json.dumps(_json_leaves(value, context))
    return {"data": form}


def send(
    preset: Mapping[str, Any], kind: str, url: str, context: Mapping[str, Any]
) -> requests.Response:
    (endpoint,) = [e for e in preset["endpoints"] if e["kind"] == kind]
    headers = {name: TEXT.from_string(v).render(context) for name, v in endpoint["headers"].items()}
    return requests.request(
        endpoint["method"],
        url,
        headers=headers,
        timeout=TIMEOUT,
        **render_body(endpoint, context),
    )


def read(rule: Mapping[str, Any], path: str, answer: bytes | requests.Response) -> str | None:
    """The value a rule's path finds in an answer (None when it finds nothing)."""
    body = answer.content if isinstance(answer, requests.Response) else answer
    if not path:
        return None
    if path.startswith("re:"):
        found = re.search(path[3:], body.decode())
        return None if found is None else (found.group(1) if found.groups() else found.group())
    if rule["answer_format"] == "xml":
        namespaces = dict(
            line.strip().split("=", 1) for line in rule["namespaces"].splitlines() if line.strip()
        )
        element = fromstring(body).find(path, namespaces)
        return None if element is None else (element.text or "")
    for alternative in path.split("|"):
        node: Any = json.loads(body)
        for key in alternative.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            return str(node)
    return None


def accepted(rule: Mapping[str, Any], response: bytes | requests.Response) -> bool:
    values = {v.strip().lower() for v in rule["success_values"].split(",") if v.strip()}
    return (read(rule, rule["success_path"], response) or "").strip().lower() in values


def rule_for(preset: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    (rule,) = [r for r in preset["response_rules"] if r["kind"] == kind]
    return rule


def load(slug: str) -> dict[str, Any]:
    with (PRESETS / f"{slug}.toml").open("rb") as file:
        return tomllib.load(file)


def with_secrets(**secrets: str) -> dict[str, Any]:
    return {**CONTEXT, "secrets": secrets}


# Every preset file of this set.


@pytest.mark.parametrize("slug", SLUGS)
def test_a_preset_says_what_it_is_and_what_ops_fill_in(slug: str) -> None:
    preset = load(slug)

    assert preset["slug"] == slug
    assert preset["name"]
    assert preset["spec"]
    assert "Ops fill in" in preset["description"]
    assert preset["price_model"] in PRICE_MODELS
    kinds = sorted(endpoint["kind"] for endpoint in preset["endpoints"])
    assert kinds == (["ping", "post"] if preset["price_model"] == "ping_post" else ["post"])
    assert sorted(rule["kind"] for rule in preset["response_rules"]) == kinds


@pytest.mark.parametrize("slug", SLUGS)
def test_a_presets_templates_are_documents_of_their_format(slug: str) -> None:
    preset = load(slug)

    for endpoint in preset["endpoints"]:
        template = endpoint["body_template"]
        if not template:
            assert preset.get("mappings"), "a post without a template is built from mappings"
        elif endpoint["body_format"] == "json":
            assert isinstance(json.loads(template), dict)
        elif endpoint["body_format"] == "xml":
            fromstring(template.encode())
        else:
            for value in json.loads(template).values():
                if isinstance(value, str) and value.startswith("<"):
                    fromstring(value)


@pytest.mark.parametrize("slug", SLUGS)
def test_a_preset_declares_every_secret_its_templates_use(slug: str) -> None:
    preset = load(slug)
    text = json.dumps(preset["endpoints"])

    used = set(re.findall(r"secrets\.([A-Za-z_][A-Za-z0-9_]*)", text))

    assert used == {secret["name"] for secret in preset.get("secrets", [])}
    assert all(secret["help"] for secret in preset.get("secrets", []))


# The platform presets against their fake buyers.


@pytest.fixture
def novo() -> Iterator[NovoPartnerLead]:
    with NovoPartnerLead(api_key="novo-key") as fake:
        yield fake


def test_the_novo_preset_posts_a_lead_novo_accepts(novo: NovoPartnerLead) -> None:
    preset = load("novo-partner-lead")

    response = send(preset, "post", novo.url(), with_secrets(api_key="novo-key"))

    rule = rule_for(preset, "post")
    assert accepted(rule, response), response.text
    assert read(rule, rule["reference_path"], response) == novo.transactions[0]
    driver = novo.received[0].request.json()["application"]["drivers"][0]
    assert driver["residence"]["length_in_months"] == 30
    assert driver["address"]["zip"] == "02134"
    assert driver["name"]["last_name"] == "O'Neil & <Sons>"
    assert driver["contact_info"]["phone"] == "6175550101"


def test_the_novo_preset_keeps_novos_reason(novo: NovoPartnerLead) -> None:
    preset = load("novo-partner-lead")
    novo.refuse("eligible_vehicle_not_found", "No eligible vehicle was found.")

    response = send(preset, "post", novo.url(), with_secrets(api_key="novo-key"))

    rule = rule_for(preset, "post")
    assert not accepted(rule, response)
    assert read(rule, rule["reason_path"], response) == "No eligible vehicle was found."


@pytest.fixture
def dp() -> Iterator[DoublePositiveInsertLead]:
    with DoublePositiveInsertLead(supplier_id="77", supplier_password="pw<&>") as fake:
        yield fake


def test_the_doublepositive_preset_makes_a_soap_call_it_accepts(
    dp: DoublePositiveInsertLead,
) -> None:
    preset = load("doublepositive-insertlead")

    response = send(
        preset, "post", dp.url(), with_secrets(supplier_id="77", supplier_password="pw<&>")
    )

    rule = rule_for(preset, "post")
    assert accepted(rule, response), response.text
    (lead,) = dp.leads
    assert lead["LastName"] == "O'Neil & <Sons>"
    assert lead["HomePhone"] == "6175550101"
    assert lead["OriginalLeadDate"] == "2024-05-01T10:30:00"


def test_the_doublepositive_preset_keeps_a_rejection_and_a_faults_words(
    dp: DoublePositiveInsertLead,
) -> None:
    preset = load("doublepositive-insertlead")
    rule = rule_for(preset, "post")
    dp.reject("Rejected: duplicate lead")

    rejected = send(
        preset, "post", dp.url(), with_secrets(supplier_id="77", supplier_password="pw<&>")
    )
    faulted = send(preset, "post", dp.url(), with_secrets(supplier_id="77", supplier_password="x"))

    assert not accepted(rule, rejected)
    assert read(rule, rule["reason_path"], rejected) == "Rejected: duplicate lead"
    assert faulted.status_code == 500
    assert read(rule, rule["reason_path"], faulted) == "Invalid SupplierID or SupplierPassword."


@pytest.fixture
def zoho() -> Iterator[ZohoCrmInsertRecords]:
    # The preset maps no Company: the buyer's account makes it optional (see the preset).
    with ZohoCrmInsertRecords(authtoken="zoho-token", mandatory=("Last Name",)) as fake:
        yield fake


def test_the_zoho_preset_inserts_a_record_zoho_accepts(zoho: ZohoCrmInsertRecords) -> None:
    preset = load("zoho-crm-insertrecords")

    response = send(preset, "post", zoho.url(), with_secrets(authtoken="zoho-token"))

    rule = rule_for(preset, "post")
    assert accepted(rule, response), response.text
    record_id = read(rule, rule["reference_path"], response)
    assert record_id is not None
    assert zoho.records[record_id]["Last Name"] == "O'Neil & <Sons>"
    assert zoho.records[record_id]["Lead Source"] == "Acme & Co"
    assert zoho.records[record_id]["Zip Code"] == "02134"


def test_the_zoho_preset_keeps_zohos_reason(zoho: ZohoCrmInsertRecords) -> None:
    preset = load("zoho-crm-insertrecords")

    response = send(preset, "post", zoho.url(), with_secrets(authtoken="expired"))

    rule = rule_for(preset, "post")
    assert not accepted(rule, response)
    assert read(rule, rule["reason_path"], response) == (
        "Invalid ticket. Also check if ticket has expired."
    )


# The generic JSON ping/post preset reads the buyer simulator's answers.


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorThread]:
    with SimulatorThread(seed=18) as running:
        yield running


def test_the_generic_json_preset_carries_the_pings_bid_id_into_the_post(
    simulator: SimulatorThread,
) -> None:
    preset = load("generic-json-ping-post")
    context = with_secrets(api_key="k")
    ping_rule, post_rule = rule_for(preset, "ping"), rule_for(preset, "post")

    ping = send(preset, "ping", f"{simulator.base_url}/ping?bid=12.50", context)
    assert accepted(ping_rule, ping)
    assert read(ping_rule, ping_rule["price_path"], ping) == "12.5"
    captured = {name: read(ping_rule, path, ping) for name, path in ping_rule["captures"].items()}
    post = send(
        preset,
        "post",
        f"{simulator.base_url}/post?price=12.50",
        {**context, "ping": {"reference": captured["bid_id"], "price": "12.5", **captured}},
    )

    assert captured["bid_id"]
    assert accepted(post_rule, post)
    assert read(post_rule, post_rule["reference_path"], post)


@pytest.mark.parametrize(
    ("path", "rule_kind", "reason"),
    [
        ("/ping?decline=1&reason=no+coverage", "ping", "no coverage"),
        ("/post?accept=0&reason=dup", "post", "dup"),
    ],
)
def test_the_generic_json_preset_keeps_the_buyers_reason(
    simulator: SimulatorThread, path: str, rule_kind: str, reason: str
) -> None:
    preset = load("generic-json-ping-post")
    context = {**with_secrets(api_key="k"), "ping": {"bid_id": "b-1"}}

    response = send(preset, rule_kind, f"{simulator.base_url}{path}", context)

    rule = rule_for(preset, rule_kind)
    assert not accepted(rule, response)
    assert read(rule, rule["reason_path"], response) == reason


def test_the_generic_xml_preset_renders_escaped_well_formed_documents() -> None:
    preset = load("generic-xml-ping-post")
    context = {**with_secrets(api_key='k"&<'), "ping": {"bid_id": "b<1>"}}

    for endpoint in preset["endpoints"]:
        root = fromstring(render_body(endpoint, context)["data"])
        assert root.find("Auth").get("key") == 'k"&<'  # type: ignore[union-attr]

    post = fromstring(render_body(preset["endpoints"][1], context)["data"])
    assert post.findtext("BidId") == "b<1>"
    assert post.findtext("Contact/LastName") == "O'Neil & <Sons>"


# The flat presets' rules read their platforms' answers.


def test_the_leadconduit_rule_reads_leadconduits_answers() -> None:
    rule = rule_for(load("leadconduit"), "post")
    success = json.dumps(
        {
            "outcome": "success",
            "lead": {"id": "550e8400-e29b-41d4-a716-446655440000", "price": 25.0},
            "reason": "Lead accepted and processed successfully",
        }
    ).encode()
    standard = json.dumps({"outcome": "success", "lead": {"id": "5f1"}, "price": 3.5}).encode()
    failure = json.dumps(
        {
            "outcome": "failure",
            "lead": {"id": "5f2"},
            "reason": "Lead rejected: Invalid email format",
        }
    ).encode()

    assert accepted(rule, success)
    assert read(rule, rule["price_path"], success) == "25.0"
    assert read(rule, rule["reference_path"], success) == "550e8400-e29b-41d4-a716-446655440000"
    assert read(rule, rule["price_path"], standard) == "3.5"
    assert not accepted(rule, failure)
    assert read(rule, rule["reason_path"], failure) == "Lead rejected: Invalid email format"


@pytest.mark.parametrize(
    ("answer", "is_accepted", "price", "reason", "reference"),
    [
        (b"status=accepted&lead_id=A-17&price=4.50", True, "4.50", None, "A-17"),
        (b"SUCCESS", True, None, None, None),
        (b"Rejected\nreason=Duplicate lead\n", False, None, "Duplicate lead", None),
        (b"error: outside service area", False, None, "outside service area", None),
    ],
)
def test_the_generic_form_rule_reads_text_answers(
    answer: bytes, is_accepted: bool, price: str | None, reason: str | None, reference: str | None
) -> None:
    rule = rule_for(load("generic-form-post"), "post")

    assert bool(re.search(rule["success_regex"], answer.decode())) is is_accepted
    found = re.search(rule["price_regex"], answer.decode())
    assert (found.group(1) if found else None) == price
    assert read(rule, rule["reason_path"], answer) == reason
    assert read(rule, rule["reference_path"], answer) == reference
