"""The transition table is the only law of a lead's status: the suite's database enforces it."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, transaction

from leads.models import LEAD_TRANSITIONS, Lead, LeadStatus
from leads.services import lead_transition
from tests.leads.factories import LeadFactory


@pytest.mark.django_db
def test_a_status_change_outside_the_table_is_refused_by_the_database():
    lead = LeadFactory(status=LeadStatus.DUPLICATE)

    with pytest.raises(DatabaseError), transaction.atomic():
        Lead.objects.filter(pk=lead.pk).update(status=LeadStatus.SOLD)

    lead.refresh_from_db()
    assert lead.status == LeadStatus.DUPLICATE


@pytest.mark.django_db
def test_every_transition_in_the_table_is_allowed_by_the_database():
    for to, sources in LEAD_TRANSITIONS.items():
        for source in sources:
            lead = LeadFactory(status=source)
            Lead.objects.filter(pk=lead.pk).update(status=to)
            lead.refresh_from_db()
            assert lead.status == to


@pytest.mark.django_db
def test_lead_transition_moves_only_from_the_states_the_table_names():
    lead = LeadFactory(status=LeadStatus.INVALID)

    assert lead_transition(lead=lead, to=LeadStatus.ROUTING) is False
    lead.refresh_from_db()
    assert lead.status == LeadStatus.INVALID
