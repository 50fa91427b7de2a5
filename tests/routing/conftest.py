"""Fixtures for routing flows: a vertical of our own, its source, and buyers on the simulator.

Each buyer whose traffic a test counts gets a simulator of its own (`start_simulator`), so the
simulator's ledger says exactly what that buyer received.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.core.cache import cache

from buyers.models import Buyer, Contract, DeliveryEndpoint, EndpointKind, PriceModel
from leads.models import FieldType, Lead, Source, Vertical
from leads.selectors import clear_field_specs_cache
from simulator.server import SimulatorThread
from tests.buyers.factories import BuyerFactory, ContractFactory

# The demo's partner and buyer, for leads submitted through the API; the simulator that the
# buyers whose traffic no test counts share.
from tests.leads.conftest import buyer_contract, demo, partner, simulator  # noqa: F401
from tests.leads.factories import LeadFactory, SourceFactory, VerticalFactory, VerticalFieldFactory
from tests.workers import routing_queue, start_worker  # noqa: F401 - fixtures

SOURCE_PAYOUT = Decimal("4.00")


@pytest.fixture(autouse=True)
def _routing_runs_in_process(settings, eager_celery) -> None:
    """Tasks run inline unless a test starts a worker; no state left over from other tests."""
    settings.SECURE_SSL_REDIRECT = False
    cache.delete("lock:sweep_stuck_leads")
    clear_field_specs_cache()


@pytest.fixture
def start_simulator() -> Iterator[Callable[..., SimulatorThread]]:
    """Start simulators of our own (one per buyer whose requests a test counts)."""
    started: list[SimulatorThread] = []

    def start(seed: int | None = 1) -> SimulatorThread:
        running = SimulatorThread(seed=seed).start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@dataclass
class Market:
    """A vertical with PII and ping fields, a source paid $4.00 a lead, and buyers to add."""

    vertical: Vertical
    source: Source
    simulator: SimulatorThread  # for buyers whose traffic the test does not count

    def contract(
        self,
        *,
        ping: str = "bid=10",
        post: str = "",
        sim: SimulatorThread | None = None,
        buyer: Buyer | None = None,
        post_timeouts_ms: tuple[int, int] | None = None,
        **fields,
    ) -> Contract:
        """A contract whose ping and post endpoints carry its behaviour in their query strings."""
        base = (sim or self.simulator).base_url
        fields.setdefault("floor_price", Decimal("0.00"))
        contract = ContractFactory(buyer=buyer or BuyerFactory(), vertical=self.vertical, **fields)
        if contract.price_model == PriceModel.PING_POST:
            DeliveryEndpoint.objects.create(
                contract=contract, kind=EndpointKind.PING, url=f"{base}/ping?{ping}"
            )
        post_endpoint = DeliveryEndpoint(
            contract=contract, kind=EndpointKind.POST, url=f"{base}/post?{post}"
        )
        if post_timeouts_ms is not None:
            post_endpoint.connect_timeout_ms, post_endpoint.read_timeout_ms = post_timeouts_ms
        post_endpoint.save()
        return contract

    def lead(self, **fields) -> Lead:
        """An accepted lead of this vertical and source, waiting for routing."""
        return LeadFactory(vertical=self.vertical, source=self.source, **fields)


@pytest.fixture
def market(db, simulator) -> Iterator[Market]:  # noqa: F811 (an imported fixture)
    """A fresh vertical (auction, exclusive, no margin) and its source, without buyers."""
    vertical = VerticalFactory()
    for name, field_type, in_ping, is_pii in (
        ("first_name", FieldType.STRING, False, True),
        ("last_name", FieldType.STRING, False, True),
        ("email", FieldType.EMAIL, False, True),
        ("phone", FieldType.PHONE, False, True),
        ("zip_code", FieldType.ZIP, True, False),
        ("state", FieldType.STATE, True, False),
    ):
        VerticalFieldFactory(
            vertical=vertical, name=name, field_type=field_type, in_ping=in_ping, is_pii=is_pii
        )
    # Round robin counts per vertical in the cache (Redis on PostgreSQL runs): from zero, and
    # leave nothing behind.
    rotation_key = f"round-robin:{vertical.pk}"
    cache.delete(rotation_key)
    source = SourceFactory(
        verticals=[vertical], payout_amount=SOURCE_PAYOUT, rate_limit_per_second=1000
    )
    yield Market(vertical=vertical, source=source, simulator=simulator)
    cache.delete(rotation_key)
