from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from leads.models import (
    FINAL_STATUSES,
    LEAD_TRANSITIONS,
    FieldType,
    Lead,
    LeadStatus,
    PayoutModel,
    SourceApiKey,
    VerticalField,
)
from leads.services import (
    InvalidTransition,
    lead_transition,
    source_api_key_authenticate,
    source_api_key_create,
    source_api_key_revoke,
)
from tests.leads.factories import (
    LeadFactory,
    SourceFactory,
    VerticalFactory,
    VerticalFieldFactory,
)
from tests.threads import Go, all_at_once

pytestmark = pytest.mark.django_db

ALL_PAIRS = [(a, b) for a in LeadStatus.values for b in LeadStatus.values if a != b]


@pytest.mark.parametrize(("start", "target"), ALL_PAIRS)
def test_it_changes_a_lead_status_only_along_allowed_transitions(start, target):
    lead = LeadFactory(status=start)
    allowed = start in LEAD_TRANSITIONS.get(target, frozenset())
    if target not in LEAD_TRANSITIONS:
        with pytest.raises(InvalidTransition):
            lead_transition(lead=lead, to=target)
    else:
        assert lead_transition(lead=lead, to=target) is allowed
    lead.refresh_from_db()
    assert lead.status == (target if allowed else start)


def test_the_allowed_transitions_are_exactly_the_documented_ones():
    documented = {
        ("accepted", "routing"),
        ("unsold", "routing"),
        ("routing", "sold"),
        ("routing", "unsold"),
        ("routing", "accepted"),
        ("failed", "accepted"),
        ("unsold", "accepted"),
        ("routing", "failed"),
        ("accepted", "failed"),
        ("failed", "routing"),
        ("sold", "returned"),
    }
    allowed = {(start, target) for target, starts in LEAD_TRANSITIONS.items() for start in starts}
    assert allowed == documented


def test_it_never_leaves_the_intake_rejections():
    for rejected in (LeadStatus.INVALID, LeadStatus.DUPLICATE, LeadStatus.SUPPRESSED):
        assert all(rejected not in sources for sources in LEAD_TRANSITIONS.values())
        assert rejected in FINAL_STATUSES


def test_it_records_fields_with_the_transition():
    lead = LeadFactory(status=LeadStatus.ROUTING)
    assert lead_transition(lead=lead, to=LeadStatus.SOLD, sale_price=Decimal("21.50"))
    lead.refresh_from_db()
    assert (lead.status, lead.sale_price) == (LeadStatus.SOLD, Decimal("21.50"))
    assert lead.is_final


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_lets_exactly_one_of_many_concurrent_workers_claim_a_lead():
    lead = LeadFactory(status=LeadStatus.ACCEPTED)

    def claim(n: int, go: Go) -> bool:
        go()
        with transaction.atomic():
            return lead_transition(lead=Lead(pk=lead.pk), to=LeadStatus.ROUTING)

    wins = all_at_once(8, claim)
    assert sorted(wins) == [False] * 7 + [True]


def test_it_stores_only_the_hash_of_a_minted_key():
    source = SourceFactory()
    api_key, raw_key = source_api_key_create(source=source, name="web form")
    api_key.refresh_from_db()
    assert raw_key.startswith("lsk_")
    assert len(raw_key) > 40
    assert api_key.hashed_key == hashlib.sha256(raw_key.encode()).hexdigest()
    assert raw_key.startswith(api_key.prefix)
    assert raw_key not in {api_key.prefix, api_key.hashed_key, api_key.name}
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM leads_sourceapikey")
        assert not any(raw_key in str(value) for row in cursor.fetchall() for value in row)


def test_it_authenticates_a_live_key_and_notes_its_use():
    source = SourceFactory()
    api_key, raw_key = source_api_key_create(source=source)
    found = source_api_key_authenticate(raw_key=raw_key)
    assert found == api_key
    assert found.source == source
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


@pytest.mark.parametrize("raw_key", ["", "lsk_wrong", "Bearer lsk_x", "not-a-key"])
def test_it_refuses_unknown_keys(raw_key):
    source_api_key_create(source=SourceFactory())
    assert source_api_key_authenticate(raw_key=raw_key) is None


def test_it_refuses_a_revoked_key_and_revokes_only_once():
    api_key, raw_key = source_api_key_create(source=SourceFactory())
    assert source_api_key_revoke(api_key=api_key) is True
    assert source_api_key_revoke(api_key=api_key) is False
    assert source_api_key_authenticate(raw_key=raw_key) is None
    assert not SourceApiKey.objects.get(pk=api_key.pk).is_active


def test_it_pays_a_fixed_cpl_or_a_revenue_share():
    fixed = SourceFactory(payout_model=PayoutModel.FIXED_CPL, payout_amount=Decimal("7.00"))
    share = SourceFactory(
        payout_model=PayoutModel.REVENUE_SHARE, revenue_share_percent=Decimal("60")
    )
    assert fixed.payout_for(Decimal("30.00")) == Decimal("7.00")
    assert share.payout_for(Decimal("30.00")) == Decimal("18.00")
    assert share.payout_for(Decimal("12.35")) == Decimal("7.41")


def test_it_refuses_a_revenue_share_source_without_a_percentage():
    with pytest.raises(ValidationError, match="revenue_share_percent"):
        SourceFactory.build(payout_model=PayoutModel.REVENUE_SHARE).full_clean()


def test_it_forbids_pinging_a_pii_field_in_the_database():
    vertical = VerticalFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        VerticalFieldFactory(vertical=vertical, name="email", in_ping=True, is_pii=True)


@pytest.mark.parametrize(
    ("attrs", "error_field"),
    [
        ({"name": "First Name"}, "name"),
        ({"name": "9lives"}, "name"),
        ({"field_type": FieldType.CHOICE, "choices": []}, "choices"),
        ({"field_type": FieldType.CHOICE, "choices": ["a", "a"]}, "choices"),
        ({"field_type": FieldType.STRING, "choices": ["a"]}, "choices"),
        ({"field_type": FieldType.STRING, "min_value": Decimal("1")}, "min_value"),
        (
            {"field_type": FieldType.INTEGER, "min_value": Decimal("5"), "max_value": Decimal("1")},
            "max_value",
        ),
        ({"in_ping": True, "is_pii": True}, "in_ping"),
    ],
)
def test_it_explains_an_invalid_field_definition(attrs, error_field):
    field = VerticalField(vertical=VerticalFactory(), **{"name": "ok_name", **attrs})
    with pytest.raises(ValidationError) as excinfo:
        field.full_clean()
    assert error_field in excinfo.value.message_dict


def test_it_refuses_duplicate_fields_that_are_not_a_list_of_names():
    with pytest.raises(ValidationError, match="list of field names"):
        VerticalFactory.build(duplicate_fields={"email": True}).full_clean()
