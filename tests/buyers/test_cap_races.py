"""Concurrent routings racing for the last room under a cap, on PostgreSQL.

First with real threads (one connection each), then through a real Celery worker with several
prefork processes. Each routing sells a different lead; the caps must let through exactly as
many as they allow.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
import redis

from buyers.models import (
    BuyerCap,
    CapCounter,
    CapPeriod,
    CapReservation,
    Contract,
    ContractCap,
    ReservationStatus,
)
from buyers.services import CapRefusal, cap_release, cap_reserve
from leads.models import Lead, LeadStatus
from routing.models import Sale
from tests.buyers.factories import BuyerFactory, ContractFactory
from tests.leads.factories import LeadFactory, SourceFactory
from tests.threads import Go, all_at_once
from tests.workers import Service, needs_broker, worker_start

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ATTEMPTS = 50
CAP = 10
PRICE = Decimal("10.00")


def race(lead_and_contract_ids: list[tuple[object, int]], *, then_release: bool = False):
    """Reserve for every lead at once, one thread and connection each; return the outcomes."""

    def attempt(n: int, go: Go) -> CapReservation | CapRefusal:
        lead_id, contract_id = lead_and_contract_ids[n]
        lead = Lead.objects.get(pk=lead_id)
        contract = Contract.objects.select_related("buyer").get(pk=contract_id)
        go()  # connected and loaded: now all at once
        outcome = cap_reserve(lead=lead, contract=contract, price=PRICE)
        if then_release and isinstance(outcome, CapReservation):
            assert cap_release(reservation=outcome)
        return outcome

    return all_at_once(len(lead_and_contract_ids), attempt, who="a router")


def leads_for(*contracts: Contract, count: int = ATTEMPTS) -> list[tuple[object, int]]:
    source = SourceFactory()
    return [
        (
            LeadFactory(vertical=contract.vertical, source=source, status=LeadStatus.ROUTING).pk,
            contract.pk,
        )
        for contract in (contracts[number % len(contracts)] for number in range(count))
    ]


def held(outcomes) -> list[CapReservation]:
    return [o for o in outcomes if isinstance(o, CapReservation)]


def refused(outcomes) -> list[CapRefusal]:
    return [o for o in outcomes if isinstance(o, CapRefusal)]


def test_fifty_routings_racing_for_a_daily_cap_of_ten_reserve_exactly_ten():
    contract = ContractFactory()
    ContractCap.objects.create(contract=contract, period=CapPeriod.DAY, max_leads=CAP)

    outcomes = race(leads_for(contract))

    assert len(held(outcomes)) == CAP
    assert len(refused(outcomes)) == ATTEMPTS - CAP
    assert {r.reason for r in refused(outcomes)} == {f"daily cap {CAP}/{CAP} reached"}
    assert CapReservation.objects.filter(status=ReservationStatus.HELD).count() == CAP
    counter = CapCounter.objects.get(contract=contract)
    assert (counter.leads, counter.spend) == (CAP, CAP * PRICE)


def test_twenty_leads_of_one_consumer_racing_for_a_no_repeats_buyer_sell_once():
    buyer = BuyerFactory()
    first = ContractFactory(buyer=buyer, refuse_bought_within_days=30)
    second = ContractFactory(buyer=buyer, vertical=first.vertical, refuse_bought_within_days=30)
    source = SourceFactory()
    pairs = [
        (
            LeadFactory(
                vertical=first.vertical,
                source=source,
                status=LeadStatus.ROUTING,
                email="same.person@example.com",
                phone=f"+1312555{number:04d}",
            ).pk,
            (first, second)[number % 2].pk,
        )
        for number in range(20)
    ]

    outcomes = race(pairs)

    assert len(held(outcomes)) == 1
    assert {r.reason for r in refused(outcomes)} == {
        "already bought by this buyer (refuses repeats within 30 days)"
    }


def test_fifty_routings_racing_for_a_budget_of_ten_leads_reserve_exactly_ten():
    contract = ContractFactory()
    ContractCap.objects.create(contract=contract, period=CapPeriod.DAY, max_budget=CAP * PRICE)

    outcomes = race(leads_for(contract))

    assert len(held(outcomes)) == CAP
    assert CapCounter.objects.get(contract=contract).spend == Decimal("100.00")


def test_two_contracts_racing_for_their_buyers_cap_reserve_exactly_ten_between_them():
    buyer = BuyerFactory(time_zone="America/Los_Angeles")
    first, second = ContractFactory(buyer=buyer), ContractFactory(buyer=buyer)
    BuyerCap.objects.create(buyer=buyer, period=CapPeriod.DAY, max_leads=CAP)
    # Each contract has its own caps too: every reservation locks several counters, in one
    # order, and must never deadlock with another.
    for contract in (first, second):
        ContractCap.objects.create(contract=contract, period=CapPeriod.HOUR, max_leads=7)
        ContractCap.objects.create(contract=contract, period=CapPeriod.MONTH, max_leads=1000)

    outcomes = race(leads_for(first, second))

    assert len(held(outcomes)) == CAP
    assert CapCounter.objects.get(buyer=buyer).leads == CAP
    for contract in (first, second):
        bought = sum(1 for r in held(outcomes) if r.contract_id == contract.pk)
        assert 3 <= bought <= 7
        assert CapCounter.objects.get(contract=contract, period=CapPeriod.HOUR).leads == bought
        assert CapCounter.objects.get(contract=contract, period=CapPeriod.MONTH).leads == bought


def test_routings_that_release_concurrently_leave_the_counter_empty():
    contract = ContractFactory()
    ContractCap.objects.create(
        contract=contract, period=CapPeriod.DAY, max_leads=CAP, max_budget=Decimal(1000)
    )

    outcomes = race(leads_for(contract), then_release=True)

    assert len(held(outcomes)) >= CAP
    assert not CapReservation.objects.filter(status=ReservationStatus.HELD).exists()
    counter = CapCounter.objects.get(contract=contract)
    assert (counter.leads, counter.spend) == (0, Decimal("0.00"))


# --- Through Celery, with several worker processes ---------------------------------------------


@pytest.fixture
def celery_queue():
    """A queue of our own, so that no other worker on the broker takes these tasks."""
    name = f"cap-race-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    # Only the keys of our queue: the broker may be shared.
    client.delete(name, f"_kombu.binding.{name}", f"_kombu.binding_permanent.{name}")
    client.close()


@pytest.fixture
def celery_worker(transactional_db, celery_queue, tmp_path) -> Iterator[Service]:
    """Start a real prefork worker on the test database; stop it whatever happens."""
    worker = worker_start(
        tmp_path / "worker.log",
        name=f"{celery_queue}@%h",
        queues=celery_queue,
        pool="prefork",
        concurrency=4,
        include="tests.buyers.celery_tasks",
    )
    try:
        yield worker
    finally:
        # Prefork children outlive a parent that died; they must not keep the test database
        # open. The group id stays ours while any of them is alive: stop kills the group.
        worker.stop()


@needs_broker
def test_fifty_routings_through_celery_sell_exactly_ten_under_a_cap_of_ten(
    celery_worker, celery_queue
):
    from config.celery import app
    from tests.buyers.celery_tasks import RESERVE_AND_SELL

    worker = celery_worker
    contract = ContractFactory()
    ContractCap.objects.create(contract=contract, period=CapPeriod.DAY, max_leads=CAP)
    lead_ids = [lead_id for lead_id, _ in leads_for(contract)]

    for lead_id in lead_ids:
        app.send_task(
            RESERVE_AND_SELL, args=[str(lead_id), contract.pk, str(PRICE)], queue=celery_queue
        )

    deadline = time.monotonic() + 60
    finished = 0
    while time.monotonic() < deadline:
        finished = Lead.objects.filter(
            pk__in=lead_ids, status__in=[LeadStatus.SOLD, LeadStatus.UNSOLD]
        ).count()
        if finished == ATTEMPTS:
            break
        assert worker.alive(), f"the worker died:\n{worker.output()}"
        time.sleep(0.2)
    assert finished == ATTEMPTS, f"{finished}/{ATTEMPTS} routed in 60 s:\n{worker.output()}"

    sales = Sale.objects.filter(contract=contract)
    assert sales.count() == CAP
    assert Lead.objects.filter(pk__in=lead_ids, status=LeadStatus.SOLD).count() == CAP
    assert Lead.objects.filter(pk__in=lead_ids, status=LeadStatus.UNSOLD).count() == ATTEMPTS - CAP
    assert CapCounter.objects.get(contract=contract).leads == CAP
    assert CapReservation.objects.filter(status=ReservationStatus.COMMITTED).count() == CAP
    assert not CapReservation.objects.filter(status=ReservationStatus.HELD).exists()
    processes = set(sales.values_list("buyer_reference", flat=True))
    assert len(processes) > 1, "one worker process sold everything: nothing raced"
