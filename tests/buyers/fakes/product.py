"""The product's own path to a fake buyer: a contract filled from a preset the way ops fill one,
and a lead's ping or post made, sent and read by the calls routing makes.

    contract, applied = preset_contract("leadprosper", fake.base_url, secrets)
    ping = exchange(contract, "ping", lead)
    post = exchange(contract, "post", lead, ping=ping_answer(ping.parsed))
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from buyers.models import Contract, ContractSecret
from buyers.presets import PresetApplied, preset_apply, presets
from leads.models import Lead, Vertical
from outbound.http import send_all
from outbound.rules import Outcome
from routing.engine.mapping import request_for, rule_for
from routing.mapping import OutgoingRequest
from routing.responses import ParsedResponse, parse_response
from tests.buyers.factories import BuyerFactory, ContractFactory
from tests.demo import demo_vertical

# What a buyer in these tests may take to answer: fakes answer at once.
ANSWER_WITHIN_S = 10
# The demo verticals' questions, answered alike for every lead of these tests (a lead's contact
# fields are its own).
ANSWERS: dict[str, dict[str, Any]] = {
    "auto-insurance": {
        "date_of_birth": "1980-04-02",
        "gender": "female",
        "marital_status": "married",
        "homeowner": True,
        "currently_insured": True,
        "vehicle_year": 2019,
        "vehicle_make": "Toyota",
        "vehicle_model": "Camry",
    },
    "solar": {
        "homeowner": True,
        "monthly_electric_bill": 182.5,
        "utility_provider": "Arizona Public Service",
        "roof_type": "tile",
        "roof_shade": "partial_shade",
        "property_type": "townhouse",
        "credit_score_range": "680_719",
        "purchase_timeline": "within_3_months",
    },
}


def at(url: str, base_url: str) -> str:
    """The preset's URL on another host: its path is the buyer's, the host is the fake's."""
    base = urlsplit(base_url)
    return urlsplit(url)._replace(scheme=base.scheme, netloc=base.netloc).geturl()


def preset_contract(
    slug: str,
    base_url: str,
    secrets: Mapping[str, str],
    *,
    fixed_price: Decimal | None = None,
) -> tuple[Contract, PresetApplied]:
    """A new contract filled from the preset on its demo vertical, its secrets added and its
    endpoints pointed at `base_url`; still paused (resuming it is the caller's step). Return it
    with what applying the preset said."""
    preset = presets()[slug]
    contract = ContractFactory(
        buyer=BuyerFactory(company=f"{preset.name} buyer"),
        vertical=demo_vertical(preset.vertical),
        fixed_price=fixed_price,
        floor_price=Decimal("5.00"),
        # A busy 2-core machine must not open the buyer's breaker on latency.
        latency_limit_ms=10_000,
    )
    applied = preset_apply(contract=contract, slug=slug)
    contract.refresh_from_db()
    for name, value in secrets.items():
        ContractSecret.objects.create(contract=contract, name=name, value=value)
    for endpoint in contract.endpoints.all():
        endpoint.url = at(endpoint.url, base_url)
        endpoint.save()
    return contract, applied


def ping_fields(vertical: Vertical) -> frozenset[str]:
    return frozenset(vertical.fields.filter(in_ping=True).values_list("name", flat=True))


@dataclass(frozen=True)
class Exchange:
    """A ping or post as routing sends it, the buyer's answer, and what the rule read of it."""

    request: OutgoingRequest
    result: Outcome
    parsed: ParsedResponse


def build(
    contract: Contract, kind: str, lead: Lead, *, ping: Mapping[str, Any] | None = None
) -> OutgoingRequest:
    """The contract's ping or post of the lead, as routing makes it."""
    request = request_for(
        contract,
        kind,
        lead,
        ping_fields(lead.vertical),
        bid=contract.fixed_price,
        ping=ping,
    )
    assert request is not None, f"the contract has no {kind} endpoint"
    return request


def exchange(
    contract: Contract, kind: str, lead: Lead, *, ping: Mapping[str, Any] | None = None
) -> Exchange:
    """Make the contract's ping or post of the lead, send it and read the answer."""
    request = build(contract, kind, lead, ping=ping)
    (result,) = send_all([request], deadline=time.monotonic() + ANSWER_WITHIN_S)
    assert result.status is not None, result.error
    parsed = parse_response(rule_for(contract, kind), result.status, result.body)
    return Exchange(request=request, result=result, parsed=parsed)
