"""Which pending messages a sweep queues again: untouched past the grace, oldest first."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from notifications.channels import MessageChannel, MessageStatus, stale_pending
from notifications.models import NotificationDelivery, NotificationKind

pytestmark = pytest.mark.django_db

GRACE = timedelta(minutes=10)


def delivery(*, age: timedelta, touched: timedelta | None = None, status: str = "pending"):
    """A delivery created `age` ago, last attempted `touched` ago (None: never)."""
    now = timezone.now()
    made = NotificationDelivery.objects.create(
        channel=MessageChannel.SLACK,
        recipient="https://hooks.slack.example/…",
        kind=NotificationKind.choices[0][0],
        event_key="k",
        subject="s",
        status=status,
    )
    NotificationDelivery.objects.filter(pk=made.pk).update(
        created_at=now - age, last_attempt_at=None if touched is None else now - touched
    )
    return made.pk


def test_a_pending_message_untouched_past_the_grace_is_picked_oldest_first():
    never_tried = delivery(age=timedelta(minutes=30))
    tried_long_ago = delivery(age=timedelta(hours=2), touched=timedelta(minutes=20))
    delivery(age=timedelta(hours=3), touched=timedelta(minutes=2))  # tried lately: its retry waits
    delivery(age=timedelta(minutes=3))  # new: its task may still be queued
    delivery(age=timedelta(hours=4), status=MessageStatus.SENT)
    delivery(age=timedelta(hours=4), touched=timedelta(hours=4), status=MessageStatus.FAILED)

    picked = stale_pending(NotificationDelivery, before=timezone.now() - GRACE, limit=10)

    assert picked == [tried_long_ago, never_tried]


def test_the_sweep_takes_at_most_its_limit():
    oldest = [delivery(age=timedelta(hours=hours)) for hours in (5, 4, 3)]

    picked = stale_pending(NotificationDelivery, before=timezone.now() - GRACE, limit=2)

    assert picked == oldest[:2]
