"""A contract's revert racing other writes, on PostgreSQL: routing's cap reservations go on while
it runs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from buyers import services
from buyers.models import CapReservation
from buyers.services import cap_reserve, contract_revert
from leads.models import LeadStatus
from tests.buyers.test_contract_revert import a_contract_with_every_part, edit, last_version
from tests.leads.factories import LeadFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def in_thread(call: Callable[[], Any], outcome: dict[str, Any], name: str) -> threading.Thread:
    def run() -> None:
        try:
            outcome[name] = call()
        except BaseException as exc:  # the test reads it
            outcome[name] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread


@pytest.fixture
def revert_held(monkeypatch):
    """contract_revert stops once it holds the contract's lock, until `release` is set."""
    locked, release = threading.Event(), threading.Event()
    plan = services.contract_version

    def held_plan(**kwargs: Any):
        locked.set()
        assert release.wait(timeout=20)
        return plan(**kwargs)

    monkeypatch.setattr(services, "contract_version", held_plan)
    return locked, release


def test_routing_reserves_room_while_a_revert_runs(revert_held):
    locked, release = revert_held
    contract = a_contract_with_every_part()
    contract.caps.all().delete()
    version = last_version(contract)
    edit(contract, floor_price=Decimal("9.00"))
    lead = LeadFactory(vertical=contract.vertical, status=LeadStatus.ROUTING)
    outcome: dict[str, Any] = {}
    reverting = in_thread(
        lambda: contract_revert(contract=contract, to=version, actor=None, reason="undo"),
        outcome,
        "revert",
    )
    assert locked.wait(timeout=20)

    reserving = in_thread(
        lambda: cap_reserve(lead=lead, contract=contract, price=Decimal("20.00")),
        outcome,
        "reserve",
    )
    reserving.join(timeout=5)
    done_during_revert = not reserving.is_alive()
    release.set()
    reverting.join(timeout=30)
    reserving.join(timeout=30)

    assert done_during_revert, "a cap reservation waited for the revert to finish"
    assert isinstance(outcome["reserve"], CapReservation)
    assert not isinstance(outcome["revert"], BaseException), outcome["revert"]
