"""Hundreds of concurrent routings race for one cap from several processes: exactly the cap is
sold. A negative control with a naive reservation (count, then post) must oversell, which shows
the check can fail."""

from __future__ import annotations

import pytest

from buyers.models import CapPeriod, ContractCap
from routing.models import Sale, SaleStatus
from tests.faults import invariants
from tests.faults.conftest import PATIENT, submit, wait_all_final

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(300),
]
CAP = 10


def race(stack, market, start_simulator, *, app: str, numbers) -> tuple[int, invariants.Invariants]:
    capped_buyer, fallback_buyer = start_simulator(), start_simulator()
    capped = market.contract(sim=capped_buyer, ping="bid=20", post="delay_ms=50", **PATIENT)
    ContractCap.objects.create(contract=capped, period=CapPeriod.DAY, max_leads=CAP)
    market.contract(sim=fallback_buyer, ping="bid=5", **PATIENT)
    stack.start_web()
    lead_ids = submit(stack, market, numbers)
    # Two workers of four processes each: the reservations race across processes.
    workers = [stack.start_worker(app=app, pool="prefork", concurrency=4) for _ in range(2)]
    took = wait_all_final(stack, lead_ids, seconds=120, what="every lead routed", watch=workers)
    sold = Sale.objects.filter(contract=capped, status=SaleStatus.SOLD).count()
    result = invariants.check(lead_ids, [capped_buyer, fallback_buyer], label=f"cap race, {app}")
    print(
        f"[cap race, {app}] {len(lead_ids)} leads over 8 processes in {took:.1f} s: "
        f"{sold} sold under a daily cap of {CAP}"
    )
    return sold, result


def test_concurrent_routings_from_several_processes_sell_exactly_the_cap(
    stack, market, start_simulator
):
    sold, result = race(stack, market, start_simulator, app="config", numbers=range(4000, 4100))
    assert sold == CAP
    assert not result.broken


def test_the_negative_control_a_naive_reservation_oversells_the_cap(stack, market, start_simulator):
    sold, result = race(
        stack, market, start_simulator, app="tests.faults.naive_caps_app", numbers=range(5000, 5100)
    )
    assert sold > CAP
    assert result.caps_exceeded >= 1
