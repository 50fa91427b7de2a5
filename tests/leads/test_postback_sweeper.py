from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from leads import tasks
from leads.models import Lead, LeadStatus, Postback, PostbackStatus
from leads.services import leads_missing_postbacks, postback_enqueue
from tests.leads.factories import LeadFactory, SourceFactory

pytestmark = pytest.mark.django_db


def settled(lead: Lead, *, seconds_ago: int) -> Lead:
    Lead.objects.filter(pk=lead.pk).update(
        updated_at=timezone.now() - timedelta(seconds=seconds_ago)
    )
    return lead


def test_a_routed_lead_without_a_postback_on_record_is_found_once_it_has_settled():
    source = SourceFactory(postback_url="https://partner.example/postback")
    missing = settled(LeadFactory(source=source, status=LeadStatus.SOLD), seconds_ago=120)
    just_now = settled(LeadFactory(source=source, status=LeadStatus.UNSOLD), seconds_ago=5)
    delivered = settled(LeadFactory(source=source, status=LeadStatus.SOLD), seconds_ago=120)
    Postback.objects.create(
        lead=delivered, url=source.postback_url, lead_status="sold", status=PostbackStatus.FAILED
    )
    settled(LeadFactory(source=source, status=LeadStatus.ROUTING), seconds_ago=120)
    settled(LeadFactory(source=source, status=LeadStatus.INVALID), seconds_ago=120)
    settled(LeadFactory(status=LeadStatus.SOLD), seconds_ago=120)  # its source has no URL

    assert leads_missing_postbacks() == [str(missing.pk)]
    assert just_now.pk not in leads_missing_postbacks()


def test_a_broker_that_is_down_does_not_break_the_caller_of_a_postback(monkeypatch):
    def broker_down(*args, **kwargs):
        raise ConnectionRefusedError("the broker is down")

    monkeypatch.setattr(tasks.send_postback, "delay", broker_down)

    assert postback_enqueue("00000000-0000-0000-0000-000000000000") is False


def test_the_sweeper_queues_each_missing_postback(monkeypatch):
    source = SourceFactory(postback_url="https://partner.example/postback")
    leads = [
        settled(LeadFactory(source=source, status=LeadStatus.SOLD), seconds_ago=120)
        for _ in range(3)
    ]
    queued: list[str] = []
    monkeypatch.setattr(tasks.send_postback, "delay", queued.append)

    assert tasks.sweep_missing_postbacks() == 3
    assert sorted(queued) == sorted(str(lead.pk) for lead in leads)
