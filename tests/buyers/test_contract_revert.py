"""A contract is reverted to an earlier version of itself, with every part of it, from its history
page: validated as an admin save, recorded with who and why, seen by routing at once."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from buyers.models import (
    AuthType,
    CapCounter,
    CapPeriod,
    ClosedDate,
    Contract,
    ContractSecret,
    ContractStatus,
    EndpointKind,
    FieldCriterion,
    FieldMapping,
    PriceModel,
    ResponseRule,
    ScheduleWindow,
    SourceFilter,
    TerritoryKind,
    TerritoryRule,
)
from buyers.services import contract_clone, contract_pause, contract_revert
from buyers.versions import ContractRevertRefused, contract_version
from leads.models import VerticalField
from routing.selectors import explain
from tests.buyers.factories import ContractCapFactory, ContractFactory
from tests.leads.factories import LeadFactory, SourceFactory, VerticalFieldFactory
from tests.staff import staff_user

pytestmark = pytest.mark.django_db


def a_contract_with_every_part() -> Contract:
    contract = ContractFactory(
        deliverable=True, price_model=PriceModel.FIXED, fixed_price=Decimal("20.00")
    )
    VerticalFieldFactory(vertical=contract.vertical, name="first_name")
    ContractCapFactory(contract=contract, period=CapPeriod.DAY, max_leads=50)
    ScheduleWindow.objects.create(
        contract=contract, weekday=0, opens_at=dt.time(8), closes_at=dt.time(18)
    )
    ClosedDate.objects.create(contract=contract, date=dt.date(2026, 12, 25), note="Christmas")
    TerritoryRule.objects.create(contract=contract, kind=TerritoryKind.STATES, values="IL")
    FieldCriterion.objects.create(contract=contract, field="first_name", operator="exists")
    FieldMapping.objects.create(contract=contract, source_field="first_name", target_field="fn")
    ResponseRule.objects.create(contract=contract, kind=EndpointKind.POST)
    ContractSecret.objects.create(contract=contract, name="api_key", value="k-0123456789")
    return contract


def last_version(contract: Contract) -> int:
    return contract.history.latest().history_id


def a_version_and_a_later_edit() -> tuple[Contract, int]:
    """A contract with every part, and its version before its floor went from 5.00 to 9.00."""
    contract = a_contract_with_every_part()
    version = last_version(contract)
    edit(contract, floor_price=Decimal("9.00"))
    return contract, version


def edit(contract: Contract, **fields) -> None:
    for name, value in fields.items():
        setattr(contract, name, value)
    contract.save()


def parts_of(contract: Contract) -> dict[str, list[tuple]]:
    return {
        "caps": list(contract.caps.values_list("period", "max_leads")),
        "schedule": list(contract.schedule.values_list("weekday", "opens_at", "closes_at")),
        "closed": list(contract.closed_dates.values_list("date", "note")),
        "territory": list(contract.territory.values_list("kind", "values")),
        "criteria": list(contract.criteria.values_list("field", "operator", "value")),
        "endpoints": list(contract.endpoints.values_list("kind", "url", "read_timeout_ms")),
        "mappings": list(contract.mappings.values_list("source_field", "target_field")),
        "rules": list(contract.response_rules.values_list("kind", "success_path")),
        "secrets": list(contract.secrets.values_list("name", "value")),
    }


def test_it_puts_back_the_contracts_fields_and_every_kind_of_part():
    contract = a_contract_with_every_part()
    version = last_version(contract)
    before = parts_of(contract)
    edit(contract, fixed_price=Decimal("35.00"), floor_price=Decimal("9.00"), priority=3)
    contract.caps.update(max_leads=500)
    contract.caps.get().save()  # a saved change, recorded
    for relation, changes in {
        "schedule": {"closes_at": dt.time(20)},
        "closed_dates": {"note": "Noel"},
        "territory": {"values": "IL\nIN"},
        "criteria": {"operator": "missing"},
        "mappings": {"target_field": "first"},
        "response_rules": {"success_path": "result"},
    }.items():
        part = getattr(contract, relation).get()
        for name, value in changes.items():
            setattr(part, name, value)
        part.save()
    post = contract.endpoints.get(kind=EndpointKind.POST)
    post.read_timeout_ms = 9000
    post.save()
    secret = contract.secrets.get()
    secret.name = "token"
    secret.save()
    ContractCapFactory(contract=contract, period=CapPeriod.HOUR, max_leads=5)
    assert parts_of(contract) != before

    reverted = contract_revert(contract=contract, to=version, actor=None, reason="bad edit")

    contract.refresh_from_db()
    assert (contract.fixed_price, contract.floor_price, contract.priority) == (
        Decimal("20.00"),
        Decimal("5.00"),
        1,
    )
    assert parts_of(contract) == before
    assert not reverted.unchanged


def test_it_cannot_bring_back_a_deleted_secret_and_changes_nothing():
    contract, version = a_version_and_a_later_edit()
    contract.secrets.get().delete()
    history_rows = contract.history.count()

    with pytest.raises(ContractRevertRefused) as refused:
        contract_revert(contract=contract, to=version, actor=None, reason="bad edit")

    assert any("secret api_key" in p and "not kept in history" in p for p in refused.value.problems)
    contract.refresh_from_db()
    assert contract.floor_price == Decimal("9.00")
    assert contract.history.count() == history_rows


def test_a_secret_added_again_under_its_name_keeps_its_new_value():
    contract, version = a_version_and_a_later_edit()
    contract.secrets.get().delete()
    ContractSecret.objects.create(contract=contract, name="api_key", value="k-new-9876543210")

    contract_revert(contract=contract, to=version, actor=None, reason="bad edit")

    assert list(contract.secrets.values_list("name", "value")) == [("api_key", "k-new-9876543210")]
    assert Contract.objects.get(pk=contract.pk).floor_price == Decimal("5.00")


def test_parts_added_since_are_deleted_and_parts_deleted_since_come_back():
    contract, version = a_version_and_a_later_edit()
    window_id = contract.schedule.get().pk
    rule_id = contract.territory.get().pk
    contract.schedule.get().delete()
    contract.territory.get().delete()
    ClosedDate.objects.create(contract=contract, date=dt.date(2027, 1, 1))
    FieldMapping.objects.create(contract=contract, static_value="x", target_field="src")

    contract_revert(contract=contract, to=version, actor=None, reason="undo")

    assert list(contract.schedule.values_list("pk", "weekday")) == [(window_id, 0)]
    assert list(contract.territory.values_list("pk", flat=True)) == [rule_id]
    assert list(contract.closed_dates.values_list("date", flat=True)) == [dt.date(2026, 12, 25)]
    assert list(contract.mappings.values_list("target_field", flat=True)) == ["fn"]


def test_it_keeps_status_cap_counters_and_credentials():
    contract = a_contract_with_every_part()
    post = contract.endpoints.get(kind=EndpointKind.POST)
    post.auth_type, post.auth_secret = AuthType.BEARER, "token-0123456789"
    post.save()
    version = last_version(contract)
    counter = CapCounter.objects.create(
        contract=contract,
        period=CapPeriod.DAY,
        period_start=dt.datetime(2026, 12, 7, 6, tzinfo=dt.UTC),
        leads=7,
        spend=Decimal("140.00"),
    )
    edit(contract, floor_price=Decimal("9.00"))
    contract_pause(contract=contract, reason="invoice overdue")
    post.url = "http://127.0.0.1:9100/elsewhere"
    post.save()

    contract_revert(contract=contract, to=version, actor=None, reason="undo")

    contract.refresh_from_db()
    assert (contract.status, contract.paused_reason) == (ContractStatus.PAUSED, "invoice overdue")
    assert contract.floor_price == Decimal("5.00")
    counter.refresh_from_db()
    assert (counter.leads, counter.spend) == (7, Decimal("140.00"))
    post.refresh_from_db()
    assert (post.url, post.auth_secret) == (
        "http://127.0.0.1:9100/post?accept=1",
        "token-0123456789",
    )


def test_it_refuses_to_put_back_another_authentication_with_todays_credential():
    contract = a_contract_with_every_part()
    post = contract.endpoints.get(kind=EndpointKind.POST)
    post.auth_type, post.auth_username, post.auth_secret = AuthType.BASIC, "acme", "pass-0123456789"
    post.save()
    version = last_version(contract)
    edit(contract, floor_price=Decimal("9.00"))
    post.auth_type, post.auth_secret = AuthType.BEARER, "token-0123456789"
    post.save()

    with pytest.raises(ContractRevertRefused) as refused:
        contract_revert(contract=contract, to=version, actor=None, reason="undo")

    assert any(
        "from Bearer" in p and "with today's credential" in p for p in refused.value.problems
    ), refused.value.problems
    post.refresh_from_db()
    assert (post.auth_type, post.auth_secret) == (AuthType.BEARER, "token-0123456789")


def test_it_refuses_a_mapping_of_a_field_the_vertical_no_longer_has_changing_nothing():
    contract, version = a_version_and_a_later_edit()
    mapping = contract.mappings.get()
    mapping.source_field = "email"
    mapping.save()
    VerticalField.objects.filter(vertical=contract.vertical, name="first_name").delete()
    contract.criteria.all().delete()

    with pytest.raises(ContractRevertRefused) as refused:
        contract_revert(contract=contract, to=version, actor=None, reason="undo")

    assert refused.value.problems == [
        f"Field mapping first_name → fn: {contract.vertical} has no field first_name any more."
    ]
    assert contract.mappings.get().source_field == "email"
    assert not contract.criteria.exists()


def test_its_history_carries_the_actor_and_the_reason():
    ops = staff_user("Ops", username="olga")
    contract, version = a_version_and_a_later_edit()
    cap = contract.caps.get()
    cap.max_leads = 10
    cap.save()

    result = contract_revert(contract=contract, to=version, actor=ops, reason="price typo")

    latest = contract.history.latest()
    said = f"reverted to {result.moment:%Y-%m-%d %H:%M:%S} UTC: price typo"
    assert (latest.history_user, latest.history_change_reason) == (ops, said)
    cap_record = cap.history.latest()
    assert (cap_record.max_leads, cap_record.history_user) == (50, ops)
    assert cap_record.history_change_reason == said


def test_a_version_written_by_a_pause_keeps_the_sources_listed_then():
    contract = a_contract_with_every_part()
    source = SourceFactory()
    contract.source_filter = SourceFilter.ALLOW
    contract.save()
    contract.sources.set([source])
    contract_pause(contract=contract, reason="invoice overdue")
    paused = last_version(contract)
    edit(contract, floor_price=Decimal("9.00"))

    plan = contract_version(contract=contract, to=paused)

    assert (plan.source_ids, plan.problems) == (None, [])
    assert [c.label for c in plan.changes] == ["Floor price"]


def test_a_copys_parts_are_recorded_so_a_copy_reverts_too():
    copy = contract_clone(contract=a_contract_with_every_part(), name="Copy").contract
    version = last_version(copy)
    edit(copy, floor_price=Decimal("9.00"))
    cap = copy.caps.get()
    cap.max_leads = 10
    cap.save()

    contract_revert(contract=copy, to=version, actor=None, reason="undo")

    assert list(copy.caps.values_list("max_leads", flat=True)) == [50]
    assert cap.history.earliest().history_type == "+"


def test_reverting_to_the_present_changes_nothing():
    contract = a_contract_with_every_part()
    rows = contract.history.count()

    result = contract_revert(
        contract=contract, to=last_version(contract), actor=None, reason="no-op"
    )

    assert result.unchanged
    assert contract.history.count() == rows


def test_a_version_holds_the_whole_admin_save_that_made_it():
    contract = a_contract_with_every_part()
    edit(contract, floor_price=Decimal("7.00"))
    version = last_version(contract)
    # The parts saved with that contract row, as the admin's inlines are, belong to its version.
    ContractCapFactory(contract=contract, period=CapPeriod.WEEK, max_leads=300)
    edit(contract, floor_price=Decimal("9.00"))

    plan = contract_version(contract=contract, to=version)

    assert [(c.label, c.now, c.then) for c in plan.changes] == [("Floor price", "9.00", "7.00")]
    assert plan.part_changes == []


# Inside the contract's hours (Mondays 08:00-18:00 in its buyer's time zone), whenever it runs.
OPEN = dt.datetime(2026, 12, 7, 16, 0, tzinfo=dt.UTC)


def test_routing_sees_the_reverted_state_at_once(settings):
    settings.ELIGIBILITY_RULES_TTL = 60  # compiled rules kept between leads, as in production
    contract = a_contract_with_every_part()
    version = last_version(contract)
    edit(contract, floor_price=Decimal("6.00"))
    lead = LeadFactory(vertical=contract.vertical, state="IL", zip_code="60601")
    lead.data["first_name"] = "Jane"
    lead.save()
    rule = contract.territory.get()
    rule.values = "CA"
    rule.save()
    contract.save()  # as an admin save of the contract page
    (verdict,) = explain(lead, now=OPEN)
    assert not verdict.eligible

    contract_revert(contract=contract, to=version, actor=None, reason="wrong state")

    (verdict,) = explain(lead, now=OPEN)
    assert verdict.eligible, verdict.reason


# --- The admin: "Revert to this version" on the contract's history page ---


def client_as(role: str) -> Client:
    client = Client()
    client.force_login(staff_user(role, username=f"{role.lower()}-reverter"))
    return client


def revert_url(contract: Contract, version: int) -> str:
    return reverse("admin:buyers_contract_revert", args=[contract.pk, version])


def test_the_history_page_offers_to_revert_to_each_earlier_version():
    contract, version = a_version_and_a_later_edit()

    page = client_as("Ops").get(
        reverse("admin:buyers_contract_history", args=[contract.pk]), secure=True
    )

    assert page.status_code == 200
    assert revert_url(contract, version) in page.text
    assert revert_url(contract, last_version(contract)) not in page.text


def test_the_confirmation_page_lists_what_will_change():
    contract, version = a_version_and_a_later_edit()
    ContractCapFactory(contract=contract, period=CapPeriod.HOUR, max_leads=5)
    contract.closed_dates.get().delete()

    page = client_as("Ops").get(revert_url(contract, version), secure=True)

    assert page.status_code == 200
    text = " ".join(page.text.split())
    assert "Floor price: 9.00 → 5.00" in text
    assert "Removed: Contract cap 5 leads per hour" in text
    assert "Added back: Closed date Closed Fri 2026-12-25 (Christmas)" in text
    assert 'name="reason"' in text


@pytest.mark.parametrize(
    ("reason", "field_dropped", "error"),
    [
        ("", False, "This field is required."),
        ("typo", True, "has no field first_name any more"),
    ],
    ids=["a reason is required", "an invalid version is refused"],
)
def test_the_form_says_what_stops_a_revert(reason, field_dropped, error):
    contract, version = a_version_and_a_later_edit()
    if field_dropped:
        VerticalField.objects.filter(vertical=contract.vertical, name="first_name").delete()

    page = client_as("Ops").post(revert_url(contract, version), {"reason": reason}, secure=True)

    assert page.status_code == 200
    assert error in page.text
    assert Contract.objects.get(pk=contract.pk).floor_price == Decimal("9.00")


def test_sales_may_not_revert():
    contract, version = a_version_and_a_later_edit()
    sales = client_as("Sales")

    assert sales.get(revert_url(contract, version), secure=True).status_code == 403
    assert (
        sales.post(revert_url(contract, version), {"reason": "x"}, secure=True).status_code == 403
    )
    assert Contract.objects.get(pk=contract.pk).floor_price == Decimal("9.00")


def test_ops_revert_and_are_told_so():
    contract, version = a_version_and_a_later_edit()
    client = client_as("Ops")

    response = client.post(
        revert_url(contract, version), {"reason": "floor typo"}, secure=True, follow=True
    )

    assert response.redirect_chain[-1][0].endswith(
        reverse("admin:buyers_contract_change", args=[contract.pk])
    )
    assert "Reverted" in response.text
    assert "floor typo" in response.text
    assert Contract.objects.get(pk=contract.pk).floor_price == Decimal("5.00")
    latest = contract.history.latest()
    assert latest.history_user.username == "ops-reverter"


def test_a_revert_confirmed_on_a_list_that_has_changed_since_is_refused():
    contract, version = a_version_and_a_later_edit()
    client = client_as("Ops")
    page = client.get(revert_url(contract, version), secure=True)
    shown = re.search(r'name="shown" value="(\w+)"', page.text).group(1)
    edit(contract, fixed_price=Decimal("25.00"))  # someone else, meanwhile

    refused = client.post(
        revert_url(contract, version), {"reason": "typo", "shown": shown}, secure=True
    )

    assert refused.status_code == 200
    assert "changed after the list of changes was shown" in refused.text
    assert "Fixed price: 25.00 → 20.00" in " ".join(refused.text.split())
    assert Contract.objects.get(pk=contract.pk).floor_price == Decimal("9.00")
    shown_now = re.search(r'name="shown" value="(\w+)"', refused.text).group(1)
    assert shown_now != shown
    client.post(revert_url(contract, version), {"reason": "typo", "shown": shown_now}, secure=True)
    assert Contract.objects.get(pk=contract.pk).floor_price == Decimal("5.00")


def test_a_version_of_another_contract_is_not_found():
    contract, other = a_contract_with_every_part(), ContractFactory()

    page = client_as("Ops").get(revert_url(contract, last_version(other)), secure=True)

    assert page.status_code == 404


def test_a_part_coming_back_waits_for_the_part_holding_its_key_to_move_back():
    contract = a_contract_with_every_part()
    ContractCapFactory(contract=contract, period=CapPeriod.WEEK, max_leads=300)
    ClosedDate.objects.create(contract=contract, date=dt.date(2026, 12, 24), note="Eve")
    version = last_version(contract)
    edit(contract, floor_price=Decimal("9.00"))
    # The day cap deleted and the week cap made a day cap; Christmas deleted and Eve moved to it.
    contract.caps.get(period=CapPeriod.DAY).delete()
    contract.caps.filter(period=CapPeriod.WEEK).update(period=CapPeriod.DAY)
    contract.caps.get().save()
    christmas = contract.closed_dates.get(date=dt.date(2026, 12, 25))
    christmas_id = christmas.pk
    christmas.delete()
    eve = contract.closed_dates.get()
    eve.date = dt.date(2026, 12, 25)
    eve.save()

    contract_revert(contract=contract, to=version, actor=None, reason="undo")

    assert sorted(contract.caps.values_list("period", "max_leads")) == [
        (CapPeriod.DAY, 50),
        (CapPeriod.WEEK, 300),
    ]
    assert sorted(contract.closed_dates.values_list("pk", "date", "note")) == sorted(
        [(eve.pk, dt.date(2026, 12, 24), "Eve"), (christmas_id, dt.date(2026, 12, 25), "Christmas")]
    )


def test_parts_that_swapped_keys_swap_back():
    contract = a_contract_with_every_part()
    eve = ClosedDate.objects.create(contract=contract, date=dt.date(2026, 12, 24), note="Eve")
    christmas = contract.closed_dates.get(date=dt.date(2026, 12, 25))
    version = last_version(contract)
    edit(contract, floor_price=Decimal("9.00"))
    for row, day in ((eve, 31), (christmas, 24), (eve, 25)):  # through a free day, as ops would
        row.date = dt.date(2026, 12, day)
        row.save()

    contract_revert(contract=contract, to=version, actor=None, reason="undo")

    assert sorted(contract.closed_dates.values_list("pk", "date", "note")) == sorted(
        [(eve.pk, dt.date(2026, 12, 24), "Eve"), (christmas.pk, dt.date(2026, 12, 25), "Christmas")]
    )
