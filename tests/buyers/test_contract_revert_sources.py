"""A version's sources: the list an admin save left (not the one before its many-to-many rows were
saved), and history rows written without the list (services' bulk rows, before they recorded
it), which must neither show a list nobody set nor revert the contract's list to empty."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from buyers.models import Contract, SourceFilter
from buyers.services import contract_pause, contract_revert
from buyers.versions import contract_version
from tests.buyers.test_contract_revert import (
    a_contract_with_every_part,
    client_as,
    edit,
    last_version,
    revert_url,
)
from tests.leads.factories import SourceFactory

pytestmark = pytest.mark.django_db


def listed_only(contract: Contract, *sources) -> None:
    contract.source_filter = SourceFilter.ALLOW
    contract.save()
    contract.sources.set(sources)


def as_written_before_rows_kept_the_list(history_id: int) -> None:
    """Make a history row what services wrote in bulk before they recorded the sources."""
    rows = Contract.history.model.sources.model
    rows.objects.filter(history_id=history_id).delete()


def test_a_version_saved_with_other_sources_holds_the_list_the_save_left():
    contract = a_contract_with_every_part()
    before, saved_with, later = SourceFactory(), SourceFactory(), SourceFactory()
    listed_only(contract, before)
    # As an admin save writes it: the contract's row, then each change of its list a row.
    edit(contract, floor_price=Decimal("7.00"))
    half_saved = last_version(contract)
    contract.sources.set([saved_with])
    edit(contract, floor_price=Decimal("9.00"))
    contract.sources.set([later])

    plan = contract_version(contract=contract, to=half_saved)

    assert plan.source_ids == [saved_with.pk]
    assert (plan.sources_change.now, plan.sources_change.then) == (later.name, saved_with.name)
    assert [(c.label, c.then) for c in plan.changes] == [("Floor price", "7.00")]
    contract_revert(contract=contract, to=half_saved, actor=None, reason="undo")
    assert list(contract.sources.all()) == [saved_with]


def test_an_old_pause_row_without_the_list_keeps_the_sources_listed_before_it():
    contract = a_contract_with_every_part()
    source = SourceFactory()
    listed_only(contract, source)
    contract_pause(contract=contract, reason="invoice overdue")
    paused = last_version(contract)
    as_written_before_rows_kept_the_list(paused)
    edit(contract, floor_price=Decimal("9.00"))

    plan = contract_version(contract=contract, to=paused)

    assert (plan.source_ids, plan.sources_unknown, plan.problems) == (None, False, [])
    assert [c.label for c in plan.changes] == ["Floor price"]
    contract_revert(contract=contract, to=paused, actor=None, reason="undo")
    assert list(contract.sources.all()) == [source]


def test_a_version_whose_sources_were_never_recorded_says_so_and_keeps_todays():
    contract = a_contract_with_every_part()
    source = SourceFactory()
    listed_only(contract, source)
    contract.history.all().delete()  # its history began later, with a service's bulk row
    contract_pause(contract=contract, reason="invoice overdue")
    paused = last_version(contract)
    as_written_before_rows_kept_the_list(paused)
    edit(contract, floor_price=Decimal("9.00"))

    plan = contract_version(contract=contract, to=paused)

    assert (plan.source_ids, plan.sources_change, plan.sources_unknown) == (None, None, True)
    page = client_as("Ops").get(revert_url(contract, paused), secure=True)
    assert "Sources: not recorded then; they stay as they are now" in " ".join(page.text.split())
    contract_revert(contract=contract, to=paused, actor=None, reason="undo")
    assert list(contract.sources.all()) == [source]
    assert Contract.objects.get(pk=contract.pk).floor_price == Decimal("5.00")


def test_the_history_page_shows_no_list_change_a_row_did_not_make():
    contract = a_contract_with_every_part()
    source = SourceFactory(name="Acme Media")
    listed_only(contract, source)
    contract_pause(contract=contract, reason="invoice overdue")
    as_written_before_rows_kept_the_list(last_version(contract))
    edit(contract, floor_price=Decimal("9.00"))

    page = client_as("Ops").get(
        reverse("admin:buyers_contract_history", args=[contract.pk]), secure=True
    )

    assert page.status_code == 200
    changes = re.findall(r"<strong>Sources:</strong> (.*?) &nbsp;&rarr;&nbsp;&nbsp;(.*?) </li>",
                         " ".join(page.text.split()))  # fmt: skip
    assert changes == [("[]", "[Acme Media]")]  # when it was listed, and never since


def test_each_row_of_an_admin_save_that_changed_the_sources_reverts_to_the_whole_save(
    admin_client, settings
):
    from tests.test_admin import change_form_data

    settings.SECURE_SSL_REDIRECT = False
    contract = a_contract_with_every_part()
    before, saved_with = SourceFactory(), SourceFactory()
    listed_only(contract, before)
    start = last_version(contract)
    page = reverse("admin:buyers_contract_change", args=[contract.pk])
    data = change_form_data(admin_client.get(page))
    data |= {"floor_price": "7.00", "sources": [str(saved_with.pk)]}

    response = admin_client.post(page, data)

    assert response.status_code == 302, response.content.decode()[:2000]
    saved = list(contract.history.filter(history_id__gt=start).order_by("history_id"))
    assert len(saved) >= 2  # the contract's row, then its list's
    edit(contract, floor_price=Decimal("9.00"))
    contract.sources.set([before])
    for record in saved:
        plan = contract_version(contract=contract, to=record.history_id)
        assert plan.source_ids == [saved_with.pk], record.history_id
        assert [(c.label, c.then) for c in plan.changes] == [("Floor price", "7.00")]
