from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from leads.models import Lead, Source, Vertical
from leads.selectors import clear_field_specs_cache
from simulator.demo import demo_load
from simulator.server import SimulatorThread
from tests.leads.factories import SourceFactory, api_key_for

LEADS = "/api/v1/leads/"


@pytest.fixture(autouse=True)
def _fresh_intake_state(settings):
    settings.SECURE_SSL_REDIRECT = False
    cache.clear()
    clear_field_specs_cache()


@pytest.fixture(scope="session")
def simulator() -> Iterator[SimulatorThread]:
    """The buyers on 127.0.0.1 whose traffic no test counts."""
    with SimulatorThread(seed=7) as running:
        yield running


@pytest.fixture
def demo(db, simulator):
    """The demo verticals, buyers and contracts, pointed at a running simulator."""
    return demo_load(simulator_url=simulator.base_url, password="pw-for-tests-only-1234")


@pytest.fixture
def partner(demo) -> tuple[Source, str]:
    source = SourceFactory(verticals=list(Vertical.objects.all()), payout_amount="5.00")
    return source, api_key_for(source)


def submit(
    client: Client,
    key: str | None,
    body: Any,
    *,
    content_type: str = "application/json",
    **headers: str,
):
    """POST a submission; `body` is sent as JSON unless it is already text or bytes."""
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    extra = {f"HTTP_{name.upper()}": value for name, value in headers.items()}
    # The test client leaves the content type out of an empty body; a real client sends it.
    extra["CONTENT_TYPE"] = content_type
    if key is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client.post(LEADS, data=data, content_type=content_type, **extra)


def lead_url(lead_id: object) -> str:
    return f"http://testserver{LEADS}{lead_id}/"


def sold_answer(lead: Lead) -> dict[str, Any]:
    """The answer about a lead the demo's buyer bought at $12.50 (its partner is paid $5): the
    partner, not set to see buyers' prices, is told only its payout."""
    return {
        "id": str(lead.pk),
        "status": "sold",
        "payout": "5.00",
        "score": lead.score,
        "tier": lead.tier,
        "url": lead_url(lead.pk),
    }


def auto_lead(n: int = 0, **fields) -> dict:
    """A valid auto-insurance submission; n varies the contact details."""
    return {
        "vertical": "auto-insurance",
        "sub_id": "spring",
        "fields": {
            "first_name": "mary",
            "last_name": "MAJOR",
            "email": f"Mary.Major{n}@Example.com",
            "phone": f"(212) 555-{n % 10000:04d}",
            "zip_code": "10001",
            "date_of_birth": "1980-04-02",
            "currently_insured": True,
            "street_address": "1 Main Street",
            "vehicle_year": 2019,
            "vehicle_make": "Toyota",
            "vehicle_model": "Camry",
            **fields,
        },
        "consent": {
            "text": "I agree to be contacted by Acme Insurance and its partners.",
            "timestamp": "2026-05-01T14:03:00Z",
            "ip": "203.0.113.7",
        },
    }


@pytest.fixture
def buyer_contract(demo, simulator):
    """Make auto-insurance sellable: pause the demo's contracts and add one that always buys.

    Its ping bids $12.50 and its post accepts, both at the running simulator; no schedule,
    territory or caps.
    """
    from buyers.models import Contract, ContractStatus, DeliveryEndpoint, EndpointKind
    from tests.buyers.factories import BuyerFactory, ContractFactory

    Contract.objects.update(status=ContractStatus.PAUSED, paused_reason="not under test")
    vertical = Vertical.objects.get(slug="auto-insurance")
    contract = ContractFactory(
        buyer=BuyerFactory(company="Test Buyer Inc"), vertical=vertical, accepts_test_leads=True
    )
    for kind, path in ((EndpointKind.PING, "/ping?bid=12.50"), (EndpointKind.POST, "/post")):
        DeliveryEndpoint.objects.create(contract=contract, kind=kind, url=simulator.base_url + path)
    return contract
