"""The ops notifications' models moved from routing to this app with their rows: a database
migrated back to before the move, given a subscription, a window and a delivery under routing's
models, keeps them (and their content types, permissions and grants) once migrated forward."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.utils import timezone

from notifications.models import (
    DeliveryStatus,
    NotificationChannel,
    NotificationDelivery,
    NotificationKind,
    NotificationSubscription,
    NotificationWindow,
)
from tests.migrating import migrate

# Before the move: no migration of this app, so routing's 0004 (which needs our 0001) is undone.
BEFORE = [("notifications", None)]
MODELS = ("notificationsubscription", "notificationwindow", "notificationdelivery")
WEBHOOK = "https://hooks.slack.com/services/T0001/B0001/s3cr3tT0ken"


def tables() -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor))


@pytest.fixture
def before_the_move():
    """A database at the state before the move; migrated forward again, whatever happens."""
    yield migrate(BEFORE).apps
    migrate()


@pytest.mark.django_db(transaction=True)
def test_moving_the_models_keeps_their_rows_content_types_and_grants(before_the_move):
    old = before_the_move
    assert {"routing_notificationsubscription", "routing_notificationdelivery"} <= tables()
    User = old.get_model("auth", "User")
    OldGroup = old.get_model("auth", "Group")
    OldPermission = old.get_model("auth", "Permission")
    OldContentType = old.get_model("contenttypes", "ContentType")
    Subscription = old.get_model("routing", "NotificationSubscription")
    Window = old.get_model("routing", "NotificationWindow")
    Delivery = old.get_model("routing", "NotificationDelivery")
    now = timezone.now().replace(microsecond=0)
    user = User.objects.create(username="ana", email="ana@leadswitch.example")
    by_email = Subscription.objects.create(
        name="Ana: buyers", channel="email", user=user, kinds=["buyer_paused"], dedup_minutes=30
    )
    by_slack = Subscription.objects.create(
        name="Ops on-call", channel="slack", slack_webhook_url=WEBHOOK, kinds=["cap_reached"]
    )
    Window.objects.create(
        subscription=by_slack,
        event_key="cap_reached:cap-counter:7",
        opened_at=now,
        claim=42,
        suppressed=3,
        last_seen_at=now + timedelta(minutes=5),
        last_event={"kind": "cap_reached", "subject": "cap-counter:7"},
    )
    Delivery.objects.create(
        subscription=by_email,
        kind="buyer_paused",
        event_key="buyer_paused:contract:12",
        channel="email",
        recipient="ana@leadswitch.example",
        subject="[Leadswitch] Buyer auto-paused",
        payload={"subject": "[Leadswitch] Buyer auto-paused", "to": ["ana@leadswitch.example"]},
        status="sent",
        attempts=2,
        response_status=250,
    )
    content_types = {}
    for model in MODELS:
        content_type, _ = OldContentType.objects.get_or_create(app_label="routing", model=model)
        content_types[model] = content_type.pk
    change, _ = OldPermission.objects.get_or_create(
        content_type_id=content_types["notificationsubscription"],
        codename="change_notificationsubscription",
        defaults={"name": "Can change notification subscription"},
    )
    OldGroup.objects.create(name="On-call editors").permissions.add(change)

    migrate()
    ContentType.objects.clear_cache()

    assert not {name for name in tables() if name.startswith("routing_notification")}
    assert {
        "notifications_notificationsubscription",
        "notifications_notificationwindow",
        "notifications_notificationdelivery",
    } <= tables()
    counts = [m.objects.count() for m in (NotificationSubscription, NotificationWindow)]
    assert [*counts, NotificationDelivery.objects.count()] == [2, 1, 1]
    email, slack = NotificationSubscription.objects.select_related("user").order_by("pk")
    assert (email.pk, email.name, email.channel, email.user.username, email.email) == (
        by_email.pk,
        "Ana: buyers",
        NotificationChannel.EMAIL,
        "ana",
        "",
    )
    assert (email.kinds, email.dedup_minutes, email.recipient) == (
        [NotificationKind.BUYER_PAUSED],
        30,
        "ana@leadswitch.example",
    )
    # Still encrypted with the same key, still read back.
    assert (slack.pk, slack.channel, slack.slack_webhook_url) == (
        by_slack.pk,
        NotificationChannel.SLACK,
        WEBHOOK,
    )
    window = NotificationWindow.objects.get()
    assert (window.subscription, window.event_key, window.claim, window.suppressed) == (
        slack,
        "cap_reached:cap-counter:7",
        42,
        3,
    )
    assert (window.opened_at, window.last_seen_at) == (now, now + timedelta(minutes=5))
    assert window.last_event == {"kind": "cap_reached", "subject": "cap-counter:7"}
    delivery = NotificationDelivery.objects.get()
    assert (delivery.subscription, delivery.event_key, delivery.status, delivery.attempts) == (
        email,
        "buyer_paused:contract:12",
        DeliveryStatus.SENT,
        2,
    )
    assert delivery.payload["to"] == ["ana@leadswitch.example"]
    assert list(email.deliveries.all()) == [delivery]
    # The same content type rows, relabelled: permissions and grants point at them still.
    for model in (NotificationSubscription, NotificationWindow, NotificationDelivery):
        moved = ContentType.objects.get_for_model(model)
        assert (moved.app_label, moved.pk) == ("notifications", content_types[moved.model])
    assert not ContentType.objects.filter(app_label="routing", model__in=MODELS).exists()
    editors = Group.objects.get(name="On-call editors")
    assert list(editors.permissions.values_list("content_type__app_label", "codename")) == [
        ("notifications", "change_notificationsubscription")
    ]
    assert (
        Permission.objects.get(pk=change.pk).content_type_id
        == content_types["notificationsubscription"]
    )
