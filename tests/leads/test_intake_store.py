"""Intake's store (leads/store.py): the one-message PostgreSQL store against its ORM twin.

Both decide the same verdict (suppressed, duplicate of which lead, or accepted) for the same
lead, open and close their own transaction when outside one, and leave the connection usable
when the database refuses the lead. The ORM twin runs on whichever backend the suite runs on
(it is SQLite's store, and PostgreSQL's with server-side binding); the PostgreSQL store on
PostgreSQL; both against the same expected values.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DatabaseError, connection
from django.utils import timezone

from leads.intake import consumer_hash
from leads.models import (
    ContactKind,
    DuplicateScope,
    Lead,
    LeadStatus,
    SuppressedContact,
    SuppressionList,
)
from leads.store import (
    SUPPRESSED_REASON,
    IntakeChecks,
    _one_message_store,
    _store_checked_orm,
    _store_checked_postgres,
    suppression_hash,
)
from tests.leads.factories import LeadFactory, SourceFactory, VerticalFactory

STORES = {"orm": _store_checked_orm, "postgres": _store_checked_postgres}
# Each test that takes a store runs once per store its backend has.
EACH_STORE = pytest.mark.parametrize(
    "store_name", ["orm", pytest.param("postgres", marks=pytest.mark.postgres)]
)


def new_lead(vertical, source, *, email="mary@example.com", phone="+13125550101", **fields):
    data = {"email": email, "phone": phone, "zip_code": "60601", **fields.pop("data", {})}
    return Lead(
        vertical=vertical,
        source=source,
        status=LeadStatus.ACCEPTED,
        email=email,
        phone=phone,
        email_sha256=consumer_hash(email),
        phone_sha256=consumer_hash(phone),
        zip_code="60601",
        data=data,
        raw_body="{}",
        **fields,
    )


def verdict(store_name, vertical, source, **lead_fields):
    """Store one lead with the named store; return (status, reason, duplicate_of id)."""
    lead = new_lead(vertical, source, **lead_fields)
    earlier = STORES[store_name](lead, IntakeChecks.of(lead, vertical=vertical))
    stored = Lead.objects.get(pk=lead.pk)
    assert (stored.status, stored.reason) == (lead.status, lead.reason)
    assert stored.received_at == lead.received_at
    assert (stored.email_sha256, stored.phone_sha256) == (lead.email_sha256, lead.phone_sha256)
    assert stored.duplicate_of_id == (earlier.pk if earlier else None)
    if earlier is not None:
        assert earlier.source_id == Lead.objects.get(pk=earlier.pk).source_id
    return stored.status, stored.reason, stored.duplicate_of_id


SCENARIOS = {
    "another email and phone": (
        {},
        {"email": "other@example.com", "phone": "+13125550199"},
        LeadStatus.ACCEPTED,
    ),
    "same email": ({}, {"phone": "+13125550199"}, LeadStatus.DUPLICATE),
    "same phone": ({}, {"email": "other@example.com"}, LeadStatus.DUPLICATE),
    "earlier lead was invalid": ({"status": LeadStatus.INVALID}, {}, LeadStatus.ACCEPTED),
    "earlier lead was sold": ({"status": LeadStatus.SOLD}, {}, LeadStatus.DUPLICATE),
    "earlier lead is older than the lookback": (
        {"received_at": timezone.now() - timedelta(days=40)},
        {},
        LeadStatus.ACCEPTED,
    ),
    "earlier lead was a test": ({"is_test": True}, {}, LeadStatus.ACCEPTED),
    "earlier lead from another source, scope global": (
        {"other_source": True},
        {},
        LeadStatus.DUPLICATE,
    ),
    "earlier lead from the same source, scope source": (
        {"scope": DuplicateScope.SOURCE},
        {},
        LeadStatus.DUPLICATE,
    ),
    "earlier lead from another source, scope source": (
        {"other_source": True, "scope": DuplicateScope.SOURCE},
        {},
        LeadStatus.ACCEPTED,
    ),
    "same value of a field kept only in data": (
        {"fields": ["email", "vin"], "data": {"vin": "1HGCM82633A004352"}},
        {"email": "other@example.com", "data": {"vin": "1HGCM82633A004352"}},
        LeadStatus.DUPLICATE,
    ),
    "no lookback": ({"lookback": 0}, {}, LeadStatus.ACCEPTED),
}


@pytest.mark.django_db
@EACH_STORE
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_both_stores_reach_the_same_verdict(store_name, scenario):
    earlier_options, new_fields, expected = SCENARIOS[scenario]
    options = dict(earlier_options)
    vertical = VerticalFactory(
        duplicate_fields=options.pop("fields", ["email", "phone"]),
        duplicate_lookback_days=options.pop("lookback", 30),
        duplicate_scope=options.pop("scope", DuplicateScope.GLOBAL),
    )
    source = SourceFactory()
    earlier_source = SourceFactory() if options.pop("other_source", False) else source
    data = {"email": "mary@example.com", "phone": "+13125550101", **options.pop("data", {})}
    earlier = LeadFactory(
        vertical=vertical,
        source=earlier_source,
        email="mary@example.com",
        phone="+13125550101",
        data=data,
        **options,
    )
    status, reason, duplicate_of = verdict(store_name, vertical, source, **new_fields)
    assert status == expected
    if expected == LeadStatus.DUPLICATE:
        assert duplicate_of == earlier.pk
        names = " or ".join(vertical.duplicate_fields)
        assert reason == f"A lead with the same {names} was accepted in the last 30 days."
    else:
        assert (reason, duplicate_of) == ("", None)


@pytest.mark.django_db
@EACH_STORE
def test_both_stores_point_a_duplicate_at_the_earliest_lead_and_check_suppression_first(
    store_name,
):
    vertical, source = VerticalFactory(duplicate_lookback_days=30), SourceFactory()
    first = LeadFactory(
        vertical=vertical,
        source=source,
        email="mary@example.com",
        received_at=timezone.now() - timedelta(days=2),
    )
    LeadFactory(vertical=vertical, source=source, email="mary@example.com")
    assert verdict(store_name, vertical, source)[2] == first.pk

    listed = SuppressionList.objects.create(name="DNC")
    SuppressedContact.objects.create(
        suppression_list=listed,
        kind=ContactKind.PHONE,
        value_hash=suppression_hash(ContactKind.PHONE, "+13125550101"),
    )
    assert verdict(store_name, vertical, source) == (LeadStatus.SUPPRESSED, SUPPRESSED_REASON, None)
    SuppressionList.objects.filter(pk=listed.pk).update(active=False)
    assert verdict(store_name, vertical, source)[0] == LeadStatus.DUPLICATE


@pytest.mark.django_db(transaction=True)
@EACH_STORE
def test_outside_a_transaction_each_store_commits_its_own_and_survives_a_refusal(store_name):
    vertical, source = VerticalFactory(duplicate_lookback_days=30), SourceFactory()
    assert verdict(store_name, vertical, source)[0] == LeadStatus.ACCEPTED
    assert verdict(store_name, vertical, source)[0] == LeadStatus.DUPLICATE

    refused = new_lead(vertical, source, email="new@example.com", phone="+13125550177")
    refused.score = 101  # the database's check constraint refuses it inside the transaction
    with pytest.raises(DatabaseError):
        STORES[store_name](refused, IntakeChecks.of(refused, vertical=vertical))
    # The failed transaction was rolled back: the connection takes the next lead at once.
    assert not Lead.objects.filter(pk=refused.pk).exists()
    status = verdict(store_name, vertical, source, email="new@example.com", phone="+13125550177")
    assert status[0] == LeadStatus.ACCEPTED


@pytest.mark.postgres
def test_with_server_side_binding_intake_falls_back_to_the_orm_store(monkeypatch):
    # Server-side binding cannot send several statements with parameters in one message.
    assert _one_message_store()
    options = {**connection.settings_dict.get("OPTIONS", {}), "server_side_binding": True}
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", options)
    assert not _one_message_store()
