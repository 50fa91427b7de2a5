"""A contract's revert racing other writes, on PostgreSQL: routing's cap reservations go on while
it runs, and a page or tool that changes a part and touches the contract does not deadlock
with it."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.admin import site
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test import RequestFactory

from buyers import services
from buyers.models import (
    CapReservation,
    ScheduleWindow,
    TerritoryKind,
    TerritoryMode,
    TerritoryRule,
)
from buyers.services import cap_reserve, contract_revert, contract_zips_set
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


def during_a_revert(
    revert_held, contract, version: int, other: Callable[[], Any], *, waited: float
) -> tuple[Any, bool]:
    """Run `other` while a revert of the contract holds its lock; wait `waited` seconds for it
    before letting the revert go on. Return what `other` returned and whether it had finished by
    then; fail if either raised or hung."""
    locked, release = revert_held
    outcome: dict[str, Any] = {}
    reverting = in_thread(
        lambda: contract_revert(contract=contract, to=version, actor=None, reason="undo"),
        outcome,
        "revert",
    )
    assert locked.wait(timeout=20)
    running = in_thread(other, outcome, "other")
    running.join(timeout=waited)
    finished_first = not running.is_alive()
    release.set()
    reverting.join(timeout=30)
    running.join(timeout=30)
    assert not reverting.is_alive()
    assert not running.is_alive()
    assert not isinstance(outcome["revert"], BaseException), outcome["revert"]
    assert not isinstance(outcome["other"], BaseException), outcome["other"]
    return outcome["other"], finished_first


def test_routing_reserves_room_while_a_revert_runs(revert_held):
    contract = a_contract_with_every_part()
    contract.caps.all().delete()
    version = last_version(contract)
    edit(contract, floor_price=Decimal("9.00"))
    lead = LeadFactory(vertical=contract.vertical, status=LeadStatus.ROUTING)

    reservation, done_during_revert = during_a_revert(
        revert_held,
        contract,
        version,
        lambda: cap_reserve(lead=lead, contract=contract, price=Decimal("20.00")),
        waited=5,
    )

    assert done_during_revert, "a cap reservation waited for the revert to finish"
    assert isinstance(reservation, CapReservation)


def test_a_zip_list_set_during_a_revert_does_not_deadlock_with_it(revert_held):
    contract = a_contract_with_every_part()
    TerritoryRule.objects.create(
        contract=contract, mode=TerritoryMode.INCLUDE, kind=TerritoryKind.ZIPS, values="60601"
    )
    version = last_version(contract)
    edit(contract, floor_price=Decimal("9.00"))
    rule = contract.territory.get(kind=TerritoryKind.ZIPS)
    rule.values = "60602"
    rule.save()

    during_a_revert(  # the tool waits for the revert, holding what it holds
        revert_held,
        contract,
        version,
        lambda: contract_zips_set(
            contract=contract, mode=TerritoryMode.INCLUDE, zips=["60603"], replace=False
        ),
        waited=1,
    )

    # The tool ran after the revert, on the rule as reverted.
    assert TerritoryRule.objects.get(pk=rule.pk).values == "60601\n60603"


def test_a_part_saved_on_its_own_page_during_a_revert_does_not_deadlock_with_it(revert_held):
    contract = a_contract_with_every_part()
    version = last_version(contract)
    edit(contract, floor_price=Decimal("9.00"))
    window = contract.schedule.get()
    window.closes_at = dt.time(20)
    window.save()
    part_admin = site._registry[ScheduleWindow]
    request = RequestFactory().post("/")
    request.user = get_user_model().objects.create(username="ops-own-page", is_staff=True)

    def own_page_save():
        with transaction.atomic():  # as the admin's change view
            row = ScheduleWindow.objects.get(pk=window.pk)
            row.closes_at = dt.time(21)
            part_admin.save_model(request, row, None, True)

    during_a_revert(revert_held, contract, version, own_page_save, waited=1)

    assert ScheduleWindow.objects.get(pk=window.pk).closes_at == dt.time(21)


def test_parts_deleted_from_their_list_lock_their_contracts_in_a_transaction_of_their_own():
    contract = a_contract_with_every_part()
    request = RequestFactory().post("/")
    request.user = get_user_model().objects.create(username="ops-list", is_staff=True)

    # As the list's "delete selected" action, which runs outside any transaction.
    site._registry[ScheduleWindow].delete_queryset(request, contract.schedule.all())

    assert not contract.schedule.exists()
