"""Ops notifications: the events that matter, told once per window, by e-mail or Slack.

The writes behind notifications.events. The task `routing.tasks.dispatch_notification`
(notifications.tasks) calls `notification_dispatch`, which builds the event (names, key facts, a
link to the admin page of its subject: notifications.selectors), finds the subscriptions that
want it, claims each one's de-duplication window with one conditional insert-or-update
(`window_claim`), and records a NotificationDelivery per claim, which
`routing.tasks.send_notification` sends with bounded, jittered retries (`delivery_send`, through
notifications.channels).

An event's key is its kind and subject ("buyer_paused:contract:12"): a subscription hears of a key
at most once per its `dedup_minutes`. Repeats inside the window are counted; the next
notification of that key says "and 14 more since …", and when the window closes on repeats nobody
was told of, `notifications_sweep` tells the latest of them. "Restored" is another key than
"paused", so it always gets through.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from notifications import channels, selectors
from notifications.messages import Event, admin_path, render_email, render_slack
from notifications.models import (
    RATE_KINDS,
    DeliveryStatus,
    NotificationChannel,
    NotificationDelivery,
    NotificationKind,
    NotificationSubscription,
    NotificationWindow,
)

logger = logging.getLogger(__name__)

Kind = NotificationKind
MAX_ATTEMPTS = 6
# A delivery still pending this long after its last attempt lost its task (a broker restarted
# empty, a worker killed mid-send): the sweep queues it again. Longer than any retry's backoff.
STALE_PENDING = timedelta(minutes=10)
# Windows unseen this long are forgotten: longer than the longest de-duplication window.
WINDOW_RETENTION = timedelta(days=30)
SWEEP_LIMIT = 200


# --- Dispatch -----------------------------------------------------------------------------------


def notification_dispatch(*, kind: str, params: Mapping[str, Any]) -> list[NotificationDelivery]:
    """Build the event a source reported and tell every subscription that wants it."""
    subscriptions = selectors.subscriptions_for([kind])
    if not subscriptions:
        return []  # nobody listens: not even the names are loaded
    event = selectors.event_build(kind, params)
    if event is None:  # its subject is gone (or no event is built for this kind)
        return []
    return event_dispatch(event, subscriptions=subscriptions)


def event_dispatch(
    event: Event,
    *,
    subscriptions: Iterable[NotificationSubscription] | None = None,
    now: datetime | None = None,
) -> list[NotificationDelivery]:
    """Record (and queue) a delivery for each subscription that wants the event and has not
    been told of its key within its window; count the repeat for the others."""
    if subscriptions is None:
        subscriptions = selectors.subscriptions_for([event.kind])
    deliveries = []
    for subscription in subscriptions:
        if not selectors.subscription_wants(subscription, event):
            continue
        with transaction.atomic():
            told = window_claim(subscription=subscription, key=event.key, now=now)
            if told is None:
                NotificationWindow.objects.filter(
                    subscription=subscription, event_key=event.key
                ).update(last_event=event.as_dict())
                continue
            deliveries.append(
                delivery_create(
                    subscription=subscription, event=event, repeats=told.repeats, since=told.since
                )
            )
    return deliveries


# --- De-duplication -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """This occurrence opened a new window; `repeats` of the key were not told since `since`."""

    repeats: int = 0
    since: datetime | None = None


# One statement, whichever the vendor (PostgreSQL, SQLite ≥ 3.35): insert the window, or take
# it over when it has expired, or else count a repeat. PostgreSQL re-evaluates the update on the
# newest row version after waiting for a concurrent writer, so of racing identical events exactly
# one finds the window expired (or inserts it) and its claim token is the one returned.
# SET expressions all read the row as it was before this statement.
_CLAIM_SQL = """
INSERT INTO {table} AS w (
    subscription_id, event_key, opened_at, claim, suppressed, last_seen_at, last_event,
    carried_suppressed, carried_since
)
VALUES (%(subscription)s, %(key)s, %(now)s, %(claim)s, 0, %(now)s, '{{}}', 0, NULL)
ON CONFLICT (subscription_id, event_key) DO UPDATE SET
    carried_suppressed = CASE WHEN w.opened_at <= %(cutoff)s
        THEN w.suppressed ELSE w.carried_suppressed END,
    carried_since = CASE WHEN w.opened_at <= %(cutoff)s THEN w.opened_at ELSE w.carried_since END,
    claim = CASE WHEN w.opened_at <= %(cutoff)s THEN %(claim)s ELSE w.claim END,
    suppressed = CASE WHEN w.opened_at <= %(cutoff)s THEN 0 ELSE w.suppressed + 1 END,
    opened_at = CASE WHEN w.opened_at <= %(cutoff)s THEN %(now)s ELSE w.opened_at END,
    last_seen_at = %(now)s
RETURNING claim, carried_suppressed, carried_since
"""


def _db_datetime(value: Any) -> datetime | None:
    """A timestamp as a raw query returns it: aware on PostgreSQL, text in UTC on SQLite."""
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def window_claim(
    *, subscription: NotificationSubscription, key: str, now: datetime | None = None
) -> Claim | None:
    """Open the subscription's window for this key and return the Claim, or count a repeat and
    return None when the key was told less than `dedup_minutes` ago."""
    now = now or timezone.now()
    token = secrets.randbits(62)
    cutoff = now - timedelta(minutes=subscription.dedup_minutes)
    adapt = connection.ops.adapt_datetimefield_value
    sql = _CLAIM_SQL.format(table=connection.ops.quote_name(NotificationWindow._meta.db_table))
    params = {
        "subscription": subscription.pk,
        "key": key[:255],
        "now": adapt(now),
        "cutoff": adapt(cutoff),
        "claim": token,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        claim, repeats, since = cursor.fetchone()
    if claim != token:
        return None
    return Claim(repeats=repeats, since=_db_datetime(since))


# --- Deliveries ---------------------------------------------------------------------------------


def delivery_create(
    *,
    subscription: NotificationSubscription,
    event: Event,
    repeats: int = 0,
    since: datetime | None = None,
    summary: bool = False,
    queue: bool = True,
) -> NotificationDelivery:
    """Record what the subscription is to be sent and (`queue`) queue its sending after
    commit."""
    recipient = subscription.recipient
    render = {"repeats": repeats, "since": since, "summary": summary}
    if subscription.channel == NotificationChannel.SLACK:
        payload = render_slack(subscription=subscription, event=event, **render)
        subject = payload["text"]
    else:
        payload = render_email(subscription=subscription, event=event, to=[recipient], **render)
        subject = payload["subject"]
    delivery = NotificationDelivery.objects.create(
        subscription=subscription,
        kind=event.kind,
        event_key=event.key[:255],
        channel=subscription.channel,
        recipient=recipient[:255],
        subject=subject[:255],
        payload=payload,
        repeats=repeats,
    )
    if queue:
        transaction.on_commit(partial(_enqueue_delivery, delivery.pk), robust=True)
    return delivery


def _enqueue_delivery(delivery_id: int) -> None:
    from notifications.tasks import send_notification

    # Not queued, it stays pending: notifications_sweep queues it again after STALE_PENDING.
    channels.message_queue(
        send_notification,
        delivery_id,
        logger=logger,
        log="notification delivery not queued",
        extra={"delivery_id": delivery_id},
    )


def delivery_send(*, delivery_id: int, retry: bool = True) -> str:
    """Make the next attempt at a pending delivery and record it.

    Return "sent", "retry" (a transient failure with attempts left, unless `retry` is off),
    "failed" or "skipped" (gone, or already sent or failed, or this attempt claimed by another
    worker).
    """
    delivery = (
        NotificationDelivery.objects.select_related("subscription").filter(pk=delivery_id).first()
    )
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return "skipped"
    subscription = delivery.subscription
    live = subscription is not None and subscription.active
    return channels.message_attempt(
        delivery,
        refusal="" if live else "the subscription was deleted or switched off",
        webhook_url=subscription.slack_webhook_url if live else "",
        subject=delivery.subject,
        max_attempts=MAX_ATTEMPTS,
        retry=retry,
        logger=logger,
        log="notification not delivered",
        extra={"delivery_id": delivery.pk},
    )


def delivery_resend(*, delivery: NotificationDelivery) -> NotificationDelivery | None:
    """Record and queue a copy of a delivery (the same message, through the same subscription);
    None when the subscription is gone, switched off or now uses another channel."""
    subscription = delivery.subscription
    if subscription is None or not subscription.active or subscription.channel != delivery.channel:
        return None
    with transaction.atomic():
        copy = NotificationDelivery.objects.create(
            subscription=subscription,
            kind=delivery.kind,
            event_key=delivery.event_key,
            channel=delivery.channel,
            recipient=delivery.recipient,
            subject=delivery.subject,
            payload=delivery.payload,
            repeats=delivery.repeats,
        )
        transaction.on_commit(partial(_enqueue_delivery, copy.pk), robust=True)
    return copy


def notification_test_send(*, subscription: NotificationSubscription) -> NotificationDelivery:
    """Send a test message to the subscription now, once, and return its recorded delivery.

    Synchronous, so that whoever pressed the button reads the answer on the page; call it
    outside a transaction (the admin's requests are not wrapped in one).
    """
    now = timezone.now()
    event = Event(
        kind=Kind.TEST,
        subject=f"subscription:{subscription.pk}:{secrets.token_hex(4)}",
        title="Test notification",
        headline=f"The subscription \u201c{subscription.name}\u201d reaches you.",
        facts=(
            ("Events", ", ".join(Kind(k).label for k in subscription.kinds if k in Kind.values)),
        ),
        link_path=admin_path(subscription),
        occurred_at=now.isoformat(),
    )
    delivery = delivery_create(subscription=subscription, event=event, queue=False)
    delivery_send(delivery_id=delivery.pk, retry=False)
    delivery.refresh_from_db()
    return delivery


# --- Source rates (beat) ----------------------------------------------------------------------


def source_rates_check(*, now: datetime | None = None, limit: int = SWEEP_LIMIT) -> int:
    """Tell the subscriptions whose threshold a source's error or duplicate rate reached.

    Return how many deliveries were recorded.
    """
    now = now or timezone.now()
    subscriptions = selectors.subscriptions_for(RATE_KINDS)
    if not subscriptions:
        return 0
    events = selectors.source_rate_events(subscriptions=subscriptions, now=now, limit=limit)
    return sum(len(event_dispatch(event, subscriptions=subscriptions, now=now)) for event in events)


# --- Sweep (beat) -------------------------------------------------------------------------------


def notifications_sweep(*, now: datetime | None = None, limit: int = SWEEP_LIMIT) -> dict[str, int]:
    """Tell the repeats of closed windows, queue deliveries whose task was lost, forget old
    windows. Return what was done, by name."""
    now = now or timezone.now()
    summaries = _windows_summarise(now=now, limit=limit)
    stale = channels.stale_pending(NotificationDelivery, before=now - STALE_PENDING, limit=limit)
    for delivery_id in stale:
        _enqueue_delivery(delivery_id)
    forgotten, _ = NotificationWindow.objects.filter(
        last_seen_at__lt=now - WINDOW_RETENTION, suppressed=0
    ).delete()
    return {"summaries": summaries, "requeued": len(stale), "forgotten": forgotten}


def _windows_summarise(*, now: datetime, limit: int) -> int:
    """Send the latest repeat of each window that closed on repeats nobody was told of."""
    sent = 0
    windows = (
        NotificationWindow.objects.filter(suppressed__gt=0, subscription__active=True)
        .select_related("subscription__contract", "subscription__user")
        .order_by("opened_at")[: limit * 5]
    )
    for window in windows:
        subscription = window.subscription
        if window.opened_at > now - timedelta(minutes=subscription.dedup_minutes):
            continue  # still open: a repeat now would be counted, not told
        if not window.last_event:
            continue
        with transaction.atomic():
            # Only if no event took the window over since it was read (that one tells the count).
            taken = NotificationWindow.objects.filter(
                pk=window.pk, opened_at=window.opened_at, suppressed=window.suppressed
            ).update(
                opened_at=now,
                claim=secrets.randbits(62),
                suppressed=0,
                carried_suppressed=window.suppressed,
                carried_since=window.opened_at,
            )
            if not taken:
                continue
            delivery_create(
                subscription=subscription,
                event=Event.from_dict(window.last_event),
                repeats=window.suppressed,
                since=window.opened_at,
                summary=True,
            )
        sent += 1
        if sent >= limit:
            break
    return sent
