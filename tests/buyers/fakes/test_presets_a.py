"""The boberdoo, Lead Prosper and LeadsPedia presets are well-formed, and each makes requests its
fake buyer accepts and reads that buyer's answers, the ping's id carried into the post.

Until the template engine of issue 18 (routing/templating.py) lands, the templates are rendered
here the way the design specifies (a JSON leaf that is one expression keeps its type, undefined
names are errors as when a template is saved), with the filters these presets use; the context
is the real one (routing/context.py), so a ping sees only what a ping may carry.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from defusedxml.ElementTree import fromstring
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from routing.context import lead_context
from tests.buyers.fakes.boberdoo import BoberdooFake
from tests.buyers.fakes.fake_server import FakeBuyer
from tests.buyers.fakes.leadprosper import LeadProsperFake
from tests.buyers.fakes.leadspedia import LeadsPediaFake

PRESETS = Path(__file__).resolve().parents[3] / "buyers" / "presets"
SLUGS = ("boberdoo", "leadprosper", "leadspedia")
TIMEOUT = 5

# A lead of the demo solar vertical (simulator/demo.py), normalised as intake stores it.
SOLAR_LEAD = SimpleNamespace(
    pk=4711,
    received_at=datetime(2026, 5, 1, 14, 3, tzinfo=UTC),
    sub_id="spring-campaign",
    source=SimpleNamespace(name="BrightPath Media"),
    source_id=3,
    vertical=SimpleNamespace(slug="solar"),
    is_test=False,
    score=72,
    tier="Warm",
    data={
        "first_name": "Dana",
        "last_name": "O'Ruiz & Sons",
        "email": "dana.ruiz@example.com",
        "phone": "+16025550143",
        "street_address": '12 "Palm" Lane',
        "zip_code": "85004",
        "state": "AZ",
        "city": "Phoenix",
        "county": "Maricopa",
        "homeowner": True,
        "monthly_electric_bill": 182.5,
        "utility_provider": "Arizona Public Service",
        "roof_type": "tile",
        "roof_shade": "partial_shade",
        "property_type": "townhouse",
        "credit_score_range": "680_719",
        "purchase_timeline": "within_3_months",
    },
    consent={
        "text": "I agree to be contacted by Sun Harbor Solar.",
        "timestamp": "2026-05-01T14:02:00Z",
        "ip": "203.0.113.7",
        "trustedform_cert_url": "https://cert.trustedform.com/0123456789abcdef",
        "jornaya_leadid": "0C2F5E7A-1B3D-4E6F-8A9B-0C1D2E3F4A5B",
        "page_url": "https://solar.example/quote",
        "user_agent": "Mozilla/5.0",
    },
)
PING_FIELDS = frozenset(
    {
        "zip_code",
        "state",
        "homeowner",
        "monthly_electric_bill",
        "utility_provider",
        "roof_type",
        "roof_shade",
        "property_type",
        "credit_score_range",
        "purchase_timeline",
    }
)
PERSONAL = ("Dana", "Ruiz", "dana.ruiz", "5550143", "Palm", "203.0.113.7", "Mozilla")


def _phone(value: Any, style: str = "e164") -> str:
    digits = re.sub(r"\D", "", str(value))
    digits = digits[1:] if len(digits) == 11 and digits.startswith("1") else digits
    return {"10": digits, "e164": f"+1{digits}"}[style]


ENVIRONMENT = SandboxedEnvironment(undefined=StrictUndefined)
ENVIRONMENT.filters.update(
    phone=_phone,
    zip5=lambda value: re.sub(r"\D", "", str(value))[:5],
    onezero=lambda value: 1 if value else 0,
    lookup=lambda value, mapping, default="": mapping.get(value, default),
)
WHOLE_EXPRESSION = re.compile(r"\s*\{\{(?P<expression>(?:(?!\}\}).)*)\}\}\s*", re.DOTALL)


def _leaves(node: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        return {key: _leaves(value, context) for key, value in node.items()}
    if isinstance(node, str):
        whole = WHOLE_EXPRESSION.fullmatch(node)
        if whole:
            return ENVIRONMENT.compile_expression(whole["expression"])(**context)
        return ENVIRONMENT.from_string(node).render(context)
    return node


def load(slug: str) -> dict[str, Any]:
    with (PRESETS / f"{slug}.toml").open("rb") as file:
        return tomllib.load(file)


def endpoint_of(preset: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    (endpoint,) = [e for e in preset["endpoints"] if e["kind"] == kind]
    return endpoint


def rule_of(preset: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    (rule,) = [r for r in preset["response_rules"] if r["kind"] == kind]
    return rule


def context(kind: str, secrets: Mapping[str, str], ping: Mapping[str, Any] | None = None) -> Any:
    return lead_context(
        SOLAR_LEAD, kind=kind, ping_fields=PING_FIELDS, ping=ping, secrets=dict(secrets)
    )


def send(
    fake: FakeBuyer, preset: Mapping[str, Any], kind: str, context: Mapping[str, Any]
) -> requests.Response:
    """Render the preset's endpoint for `kind` and send it to the fake (at the URL's path)."""
    endpoint = endpoint_of(preset, kind)
    query = {name: _leaves(value, context) for name, value in endpoint["query"].items()}
    options: dict[str, Any] = {}
    if endpoint["body_template"].strip():
        body = _leaves(json.loads(endpoint["body_template"]), context)
        if endpoint["body_format"] == "json":
            options["json"] = body
        else:
            options["data"] = {name: str(value) for name, value in body.items()}
    path = "/" + endpoint["url"].split("/", 3)[3]
    return requests.request(
        endpoint["method"], fake.url(path), params=query, timeout=TIMEOUT, **options
    )


def read(rule: Mapping[str, Any], path: str, answer: requests.Response) -> str | None:
    """What a rule's path finds in an answer, read as the design specifies (None: nothing)."""
    if path.startswith("re:"):
        found = re.search(path[3:], answer.text)
        return None if found is None else found.group(1)
    if rule["answer_format"] == "xml":
        element = fromstring(answer.content).find(path)
        return None if element is None else element.text
    node: Any = answer.json()
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node.get(part)
    return None if node is None else str(node)


def outcome(preset: Mapping[str, Any], kind: str, answer: requests.Response) -> dict[str, Any]:
    rule = rule_of(preset, kind)
    values = {value.strip().lower() for value in rule["success_values"].split(",")}
    return {
        "accepted": (read(rule, rule["success_path"], answer) or "").lower() in values,
        "price": read(rule, rule["price_path"], answer),
        "reason": read(rule, rule["reason_path"], answer),
        "reference": read(rule, rule["reference_path"], answer),
        "captures": {name: read(rule, path, answer) for name, path in rule["captures"].items()},
    }


@pytest.mark.parametrize("slug", SLUGS)
def test_a_preset_says_what_it_follows_and_what_ops_fill_in(slug: str) -> None:
    preset = load(slug)

    assert preset["slug"] == slug
    assert preset["name"]
    assert preset["spec"].startswith("https://")
    assert "What ops fill in" in preset["description"]
    assert preset["price_model"] == "ping_post"
    assert sorted(e["kind"] for e in preset["endpoints"]) == ["ping", "post"]
    assert sorted(r["kind"] for r in preset["response_rules"]) == ["ping", "post"]


@pytest.mark.parametrize("slug", SLUGS)
def test_a_preset_declares_every_secret_its_templates_use(slug: str) -> None:
    preset = load(slug)

    used = set(re.findall(r"secrets\.(\w+)", json.dumps(preset["endpoints"])))

    assert used == {secret["name"] for secret in preset["secrets"]}
    assert all(secret["help"] for secret in preset["secrets"])


@pytest.mark.parametrize("slug", SLUGS)
def test_a_presets_ping_says_nothing_personal(slug: str) -> None:
    preset = load(slug)
    secrets = {secret["name"]: "s" for secret in preset["secrets"]}
    endpoint = endpoint_of(preset, "ping")

    rendered = json.dumps(
        [
            _leaves(json.loads(endpoint["body_template"] or "{}"), context("ping", secrets)),
            _leaves(endpoint["query"], context("ping", secrets)),
        ]
    )

    assert not [word for word in PERSONAL if word in rendered]


# Each platform preset against its fake buyer.

BOBERDOO_SECRETS = {"api_key": "bbd-4f1c2a", "src": "leadswitch", "lead_type": "12"}
LEADPROSPER_SECRETS = {"lp_campaign_id": "6309", "lp_supplier_id": "12465", "lp_key": "yq0h0jphvp5"}
LEADSPEDIA_SECRETS = {"lp_campaign_id": "64c9a3f1b2e7d", "lp_campaign_key": "Q7vXk2LmP9sRt4WyZb8N"}
FAKES: dict[str, tuple[Callable[[], AbstractContextManager[Any]], dict[str, str]]] = {
    "boberdoo": (BoberdooFake, BOBERDOO_SECRETS),
    "leadprosper": (LeadProsperFake, LEADPROSPER_SECRETS),
    "leadspedia": (LeadsPediaFake, LEADSPEDIA_SECRETS),
}


@pytest.fixture(params=SLUGS)
def platform(request: pytest.FixtureRequest) -> Iterator[tuple[dict[str, Any], Any, dict]]:
    make, secrets = FAKES[request.param]
    with make() as fake:
        yield load(request.param), fake, secrets


def test_a_preset_sells_to_its_buyer_with_the_pings_id_in_the_post(platform: Any) -> None:
    preset, fake, secrets = platform

    ping = outcome(preset, "ping", send(fake, preset, "ping", context("ping", secrets)))
    assert ping["accepted"], fake.received[-1].answer_body
    assert ping["price"] is not None
    assert ping["reference"] in fake.pings.issued
    captured = {"reference": ping["reference"], "price": ping["price"], **ping["captures"]}
    post = outcome(preset, "post", send(fake, preset, "post", context("post", secrets, captured)))

    assert post["accepted"], fake.received[-1].answer_body
    assert post["price"] == ping["price"]
    assert post["reference"]


def test_a_preset_keeps_the_buyers_reason_for_a_rejected_post(platform: Any) -> None:
    preset, fake, secrets = platform
    ping = outcome(preset, "ping", send(fake, preset, "ping", context("ping", secrets)))
    fake.reject_post = "Duplicate lead"

    captured = {"reference": ping["reference"], **ping["captures"]}
    post = outcome(preset, "post", send(fake, preset, "post", context("post", secrets, captured)))

    assert not post["accepted"]
    assert post["reason"] == "Duplicate lead"


def test_a_preset_without_the_ping_id_is_refused_with_the_buyers_reason(platform: Any) -> None:
    preset, fake, secrets = platform
    send(fake, preset, "ping", context("ping", secrets))

    answer = send(fake, preset, "post", context("post", secrets, {"ping_id": "", "lead_id": ""}))

    post = outcome(preset, "post", answer)
    assert not post["accepted"]
    assert post["reason"]


def test_the_leadspedia_preset_sends_the_lead_in_the_get_query() -> None:
    preset = load("leadspedia")
    with LeadsPediaFake() as fake:
        ping = outcome(
            preset, "ping", send(fake, preset, "ping", context("ping", LEADSPEDIA_SECRETS))
        )
        send(fake, preset, "post", context("post", LEADSPEDIA_SECRETS, ping["captures"]))

    request = fake.requests_to("/post.do")[0].request
    assert request.method == "GET"
    assert request.body == b""
    assert request.query["phone_home"] == ["6025550143"]
    assert request.query["last_name"] == ["O'Ruiz & Sons"]
    assert request.query["lp_ping_id"] == [ping["captures"]["ping_id"]]


def test_the_leadprosper_preset_sends_typed_credentials() -> None:
    preset = load("leadprosper")
    with LeadProsperFake() as fake:
        send(fake, preset, "ping", context("ping", LEADPROSPER_SECRETS))

    body = fake.received[0].request.json()
    assert body["lp_campaign_id"] == 6309
    assert body["lp_supplier_id"] == 12465
    assert body["monthly_electric_bill"] == "$151-$200"
    assert body["property_type"] == "Townhome"


def test_the_boberdoo_preset_reads_an_unmatched_ping_as_declined() -> None:
    preset = load("boberdoo")
    with BoberdooFake(decline=True) as fake:
        answer = send(fake, preset, "ping", context("ping", BOBERDOO_SECRETS))

    ping = outcome(preset, "ping", answer)
    assert not ping["accepted"]
    assert ping["reason"] == "Unmatched"
