"""Notifications for ops: the events that matter, told once per window, by e-mail or Slack.

Each event source makes one call (`breaker_changed`, `cap_reached`, `leads_stuck`,
`postback_failed`; source rates come from the beat task `source_rates_check`). The call queues
`routing.tasks.dispatch_notification` once the caller's transaction commits and never raises: a
notifier that fails costs routing, intake and postbacks nothing. The dispatch, off the hot path,
builds the event (names, key facts, a link to the admin page of its subject), finds the
subscriptions that want it, claims each one's de-duplication window with one conditional
insert-or-update (`window_claim`), and records a NotificationDelivery per claim, which
`routing.tasks.send_notification` sends with bounded, jittered retries.

An event's key is its kind and subject ("buyer_paused:contract:12"): a subscription hears of a key
at most once per its `dedup_minutes`. Repeats inside the window are counted; the next
notification of that key says "and 14 more since …", and when the window closes on repeats nobody
was told of, `notifications_sweep` tells the latest of them. "Restored" is another key than
"paused", so it always gets through.

`slack_message_send` and `email_message_send` are the two senders, plain functions that anything
else telling staff something may use.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from buyers.caps import PERIOD_WORDS, CapLimitSpec, CapUsage, period_bounds
from buyers.models import CapCounter, Contract
from leads.models import Lead, LeadStatus, Postback, Source
from outbound import http
from outbound.email import email_send
from outbound.rules import Outcome, retryable
from routing.breaker import Transition
from routing.models import (
    DeliveryStatus,
    NotificationChannel,
    NotificationDelivery,
    NotificationKind,
    NotificationSubscription,
    NotificationWindow,
)
from teams.rules import slack_escape

logger = logging.getLogger(__name__)

Kind = NotificationKind
RATE_KINDS = (Kind.SOURCE_ERROR_RATE, Kind.SOURCE_DUPLICATE_RATE)
SLACK_TIMEOUT = (2.0, 5.0)  # connect, read (seconds)
MAX_ATTEMPTS = 6
# A delivery still pending this long after its last attempt lost its task (a broker restarted
# empty, a worker killed mid-send): the sweep queues it again. Longer than any retry's backoff.
STALE_PENDING = timedelta(minutes=10)
# Windows unseen this long are forgotten: longer than the longest de-duplication window.
WINDOW_RETENTION = timedelta(days=30)
SWEEP_LIMIT = 200


# --- Events -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """Something ops may want to hear of, with what to tell and whom it concerns."""

    kind: str
    subject: str  # what it is about, stable across repeats: "contract:12", "source:4"
    title: str  # "Buyer auto-paused"
    headline: str  # one sentence: "Acme · Auto CA (contract 12): 5 consecutive failures"
    facts: tuple[tuple[str, str], ...] = ()
    link_path: str = ""  # the admin page of the subject
    occurred_at: str = ""  # ISO 8601
    buyer_id: int | None = None
    contract_id: int | None = None
    source_id: int | None = None
    # Source rates: {"window_minutes", "received", "count", "percent"}; thresholds are each
    # subscription's own.
    rate: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.subject}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        values = dict(data)
        values["facts"] = tuple(tuple(pair) for pair in values.get("facts", ()))
        return cls(**values)


def subscription_wants(subscription: NotificationSubscription, event: Event) -> bool:
    """Return whether the subscription asks for this event: its kind, scope and thresholds."""
    if not subscription.active or event.kind not in (subscription.kinds or []):
        return False
    if not _in_scope(subscription, event):
        return False
    if event.kind not in RATE_KINDS:
        return True
    rate = event.rate
    threshold = (
        subscription.error_rate_percent
        if event.kind == Kind.SOURCE_ERROR_RATE
        else subscription.duplicate_rate_percent
    )
    return (
        rate.get("window_minutes") == subscription.rate_window_minutes
        and rate.get("received", 0) >= subscription.rate_min_leads
        and Decimal(str(rate.get("percent", 0))) >= threshold
    )


def _in_scope(subscription: NotificationSubscription, event: Event) -> bool:
    if subscription.source_id is not None and event.source_id != subscription.source_id:
        return False
    if subscription.buyer_id is not None and event.buyer_id != subscription.buyer_id:
        return False
    if subscription.contract_id is None:
        return True
    if event.contract_id is not None:
        return event.contract_id == subscription.contract_id
    # A buyer-wide event (its cap) stops every contract of the buyer.
    return event.buyer_id is not None and event.buyer_id == subscription.contract.buyer_id


def subscriptions_for(kinds: Iterable[str]) -> list[NotificationSubscription]:
    """Return the active subscriptions asking for any of these kinds (few: read them all)."""
    wanted = set(kinds)
    return [
        subscription
        for subscription in NotificationSubscription.objects.filter(active=True).select_related(
            "contract", "user"
        )
        if wanted & set(subscription.kinds or [])
    ]


# --- The calls event sources make -------------------------------------------------------------


def notify(kind: str, **params: Any) -> None:
    """Queue the notification of an event once the caller's transaction commits; never raise."""
    try:
        params.setdefault("at", timezone.now().isoformat())
        transaction.on_commit(partial(_enqueue_dispatch, str(kind), params), robust=True)
    except Exception:
        logger.exception("notification not queued", extra={"kind": str(kind)})


def _enqueue_dispatch(kind: str, params: dict[str, Any]) -> None:
    from routing.tasks import dispatch_notification

    try:
        dispatch_notification.delay(kind, params)
    except Exception:
        # The broker is down, or (running in-process) the dispatch itself failed: the event is
        # lost, never the caller's work.
        logger.exception("notification not dispatched", extra={"kind": kind})


def breaker_changed(*, contract_id: int, transition: Transition, actor: str = "") -> None:
    """A contract's breaker opened or closed.

    Opened automatically (failures, slowness, a failed probe): buyer_paused. Closed, by a probe
    or by hand: buyer_restored. Opened by hand: nothing, ops did it and its history says so.
    """
    if transition.closed:
        notify(Kind.BUYER_RESTORED, contract_id=contract_id, reason=transition.reason, actor=actor)
    elif transition.opened and not actor:
        notify(
            Kind.BUYER_PAUSED,
            contract_id=contract_id,
            reason=transition.reason,
            cool_down_s=transition.state.cool_down_s,
        )


def cap_reached(*, counter_id: int, contract_id: int, spec: CapLimitSpec) -> None:
    """A reservation took the last room under a cap in its period."""
    notify(
        Kind.CAP_REACHED,
        counter_id=counter_id,
        contract_id=contract_id,
        max_leads=spec.max_leads,
        max_budget=None if spec.max_budget is None else str(spec.max_budget),
    )


def leads_stuck(*, lead_ids: Sequence[Any]) -> None:
    """The sweeper found leads whose routing run lost its worker and handed them on."""
    notify(Kind.LEADS_STUCK, count=len(lead_ids), lead_ids=[str(i) for i in lead_ids[:10]])


def postback_failed(*, postback_id: int) -> None:
    """A source's postback was given up (retries exhausted, or refused for good)."""
    notify(Kind.POSTBACK_FAILED, postback_id=postback_id)


# --- Building events (in the dispatch task, off the hot path) ---------------------------------


def _when(value: datetime | str | None) -> str:
    if not value:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _admin_path(obj: Any) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])


def _seconds_words(seconds: float) -> str:
    if seconds >= 60:
        minutes = round(seconds / 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds:g} s"


def _breaker_event(kind: str, params: Mapping[str, Any]) -> Event | None:
    contract = (
        Contract.objects.select_related("buyer", "vertical")
        .filter(pk=params["contract_id"])
        .first()
    )
    if contract is None:
        return None
    reason = params.get("reason") or ""
    facts = [
        ("Buyer", contract.buyer.company),
        ("Contract", f"{contract.name} (#{contract.pk})"),
        ("Vertical", contract.vertical.name),
    ]
    if kind == Kind.BUYER_PAUSED:
        facts += [
            ("Why", reason),
            ("Probe", f"one lead after {_seconds_words(params.get('cool_down_s') or 60)}"),
        ]
        title = "Buyer auto-paused"
        headline = f"{contract.buyer.company} · {contract.name} gets no leads: {reason}"
    else:
        actor = params.get("actor") or ""
        facts.append(("How", f"closed by hand by {actor}" if actor else reason))
        title = "Buyer restored"
        headline = f"{contract.buyer.company} · {contract.name} gets leads again ({reason})"
    return Event(
        kind=kind,
        subject=f"contract:{contract.pk}",
        title=title,
        headline=headline,
        facts=tuple(facts),
        link_path=_admin_path(contract),
        occurred_at=params["at"],
        buyer_id=contract.buyer_id,
        contract_id=contract.pk,
    )


def _cap_event(kind: str, params: Mapping[str, Any]) -> Event | None:
    counter = (
        CapCounter.objects.select_related("contract__buyer", "buyer")
        .filter(pk=params["counter_id"])
        .first()
    )
    if counter is None:
        return None
    contract = counter.contract
    buyer = contract.buyer if contract is not None else counter.buyer
    zone = ZoneInfo(buyer.time_zone)
    max_budget = params.get("max_budget")
    spec = CapLimitSpec(
        scope="contract" if contract is not None else "buyer",
        owner_id=contract.pk if contract is not None else buyer.pk,
        period=counter.period,
        max_leads=params.get("max_leads"),
        max_budget=None if max_budget is None else Decimal(max_budget),
    )
    start, end = period_bounds(spec.period, counter.period_start, zone)
    usage = CapUsage(spec, start, end, counter.leads, counter.spend)
    limits = []
    if spec.max_leads is not None:
        limits.append(f"{spec.max_leads} leads")
    if spec.max_budget is not None:
        limits.append(f"${spec.max_budget:,.2f}")
    period = PERIOD_WORDS.get(spec.period, spec.period)
    facts = [("Buyer", buyer.company)]
    if contract is not None:
        facts.append(("Contract", f"{contract.name} (#{contract.pk})"))
    else:
        facts.append(("Contracts", "all of the buyer's (a buyer-wide cap)"))
    facts += [
        ("Cap", f"{period}: {' and '.join(limits)}"),
        ("Used", f"{counter.leads} leads, ${counter.spend:,.2f}"),
    ]
    if spec.period != "total":
        local_end = end.astimezone(zone)
        facts.append(("Opens again", f"{local_end:%a %Y-%m-%d %H:%M} {buyer.time_zone}"))
    owner = contract if contract is not None else buyer
    return Event(
        kind=kind,
        subject=f"cap-counter:{counter.pk}",
        title="Cap reached",
        headline=f"{buyer.company}"
        + (f" · {contract.name}" if contract is not None else "")
        + f": {usage.describe()}",
        facts=tuple(facts),
        link_path=_admin_path(owner),
        occurred_at=params["at"],
        buyer_id=buyer.pk,
        contract_id=contract.pk if contract is not None else None,
    )


def _stuck_event(kind: str, params: Mapping[str, Any]) -> Event:
    count = params.get("count", 0)
    examples = params.get("lead_ids") or []
    facts = [("Leads", str(count))]
    if examples:
        facts.append(("For example", ", ".join(examples[:3])))
    several = count != 1
    return Event(
        kind=kind,
        subject="routing",
        title="Leads stuck in routing",
        headline=f"{count} lead{'s' if several else ''} lost {'their' if several else 'its'} "
        f"routing worker (killed, out of memory, host down) and {'were' if several else 'was'} "
        "handed to a live one",
        facts=tuple(facts),
        link_path=reverse("admin:leads_lead_changelist") + "?status__exact=routing",
        occurred_at=params["at"],
    )


def _url_without_secrets(url: str) -> str:
    """Return a URL without its query string and credentials, which may carry a partner's key."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _postback_event(kind: str, params: Mapping[str, Any]) -> Event | None:
    postback = (
        Postback.objects.select_related("lead__source").filter(pk=params["postback_id"]).first()
    )
    if postback is None:
        return None
    lead, source = postback.lead, postback.lead.source
    answer = postback.error or (
        f"HTTP {postback.response_status}" if postback.response_status else "no answer"
    )
    return Event(
        kind=kind,
        subject=f"source:{source.pk}",
        title="Postback given up",
        headline=f"{source.name} was not told the outcome of lead {lead.pk}: {answer}",
        facts=(
            ("Source", source.name),
            ("Lead", f"{lead.pk} ({postback.lead_status})"),
            ("URL", _url_without_secrets(postback.url)),
            ("Attempts", str(postback.attempt)),
            ("Last answer", answer),
        ),
        link_path=_admin_path(lead),
        occurred_at=params["at"],
        source_id=source.pk,
    )


BUILDERS = {
    Kind.BUYER_PAUSED: _breaker_event,
    Kind.BUYER_RESTORED: _breaker_event,
    Kind.CAP_REACHED: _cap_event,
    Kind.LEADS_STUCK: _stuck_event,
    Kind.POSTBACK_FAILED: _postback_event,
}


def notification_dispatch(*, kind: str, params: Mapping[str, Any]) -> list[NotificationDelivery]:
    """Build the event a source reported and tell every subscription that wants it."""
    subscriptions = subscriptions_for([kind])
    if not subscriptions:
        return []  # nobody listens: not even the names are loaded
    build = BUILDERS.get(kind)
    if build is None:
        # Source rates are checked by their own task, and a test has no event to build.
        logger.error("no event is built for this notification kind", extra={"kind": kind})
        return []
    event = build(kind, params)
    if event is None:  # its subject is gone
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
        subscriptions = subscriptions_for([event.kind])
    deliveries = []
    for subscription in subscriptions:
        if not subscription_wants(subscription, event):
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


# --- Rendering ---------------------------------------------------------------------------------


def site_link(path: str) -> str:
    return f"{settings.SITE_URL}{path}" if path else ""


def _repeats_line(repeats: int, since: datetime | None, *, summary: bool, at: str) -> str:
    if not repeats:
        return ""
    times = f"{repeats} more time{'s' if repeats != 1 else ''}"
    if summary:
        return f"Happened {times} since {_when(since)}; the latest at {_when(at)}."
    return f"And {repeats} more since {_when(since)}."


def _facts_for(subscription: NotificationSubscription, event: Event) -> list[tuple[str, str]]:
    facts = list(event.facts)
    if event.kind in RATE_KINDS:
        threshold = (
            subscription.error_rate_percent
            if event.kind == Kind.SOURCE_ERROR_RATE
            else subscription.duplicate_rate_percent
        )
        facts.append(
            (
                "Alert at",
                f"{threshold.normalize():f}% over {subscription.rate_window_minutes} minutes, "
                f"from {subscription.rate_min_leads} leads",
            )
        )
    return facts


def render_slack(
    *,
    subscription: NotificationSubscription,
    event: Event,
    repeats: int = 0,
    since: datetime | None = None,
    summary: bool = False,
) -> dict[str, Any]:
    """Return the Slack message: `text` (notifications, search) and blocks with the facts."""
    title = f"{event.title} (repeated)" if summary else event.title
    repeated = _repeats_line(repeats, since, summary=summary, at=event.occurred_at)
    text = f"{title}: {event.headline}" + (f" ({repeated.rstrip('.')})" if repeated else "")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(event.headline)}},
    ]
    facts = _facts_for(subscription, event)
    if facts:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {
                        "type": "mrkdwn",
                        "text": f"*{slack_escape(label)}*\n{slack_escape(value)}"[:2000],
                    }
                    for label, value in facts[:10]
                ],
            }
        )
    if repeated:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": slack_escape(repeated)}]}
        )
    link = site_link(event.link_path)
    if link:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open in the admin"},
                        "url": link,
                    }
                ],
            }
        )
    footer = f"Leadswitch · {_when(event.occurred_at)} · {subscription.name}"
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": slack_escape(footer)}]}
    )
    return {"text": slack_escape(text)[:3000], "blocks": blocks}


def render_email(
    *,
    subscription: NotificationSubscription,
    event: Event,
    to: list[str],
    repeats: int = 0,
    since: datetime | None = None,
    summary: bool = False,
) -> dict[str, Any]:
    """Return the e-mail: subject, recipients and a plain-text body."""
    title = f"{event.title} (repeated)" if summary else event.title
    repeated = _repeats_line(repeats, since, summary=summary, at=event.occurred_at)
    lines = [title, event.headline, ""]
    lines += [f"{label}: {value}" for label, value in _facts_for(subscription, event)]
    if repeated:
        lines += ["", repeated]
    link = site_link(event.link_path)
    if link:
        lines += ["", f"Open in the admin: {link}"]
    manage = site_link(_admin_path(subscription)) if subscription.pk else ""
    lines += [
        "",
        "-- ",
        f"Leadswitch, {_when(event.occurred_at)}. Sent through the subscription "
        f"\u201c{subscription.name}\u201d" + (f": {manage}" if manage else "."),
    ]
    subject = " ".join(f"[Leadswitch] {title}: {event.headline}".split())
    return {"subject": subject[:255], "to": to, "body": "\n".join(lines) + "\n"}


# --- Deliveries --------------------------------------------------------------------------------


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
    from routing.tasks import send_notification

    try:
        send_notification.delay(delivery_id)
    except Exception:
        # Still pending: notifications_sweep queues it again once it has waited STALE_PENDING.
        logger.exception("notification delivery not queued", extra={"delivery_id": delivery_id})


def slack_message_send(*, webhook_url: str, payload: Mapping[str, Any]) -> Outcome:
    """POST a message to a Slack incoming webhook; return what happened, never raise.

    Through the outbound seam (outbound.http): the address guard checks the address it connects
    to, and redirects are not followed.
    """
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Leadswitch/1"}
    return http.send("POST", webhook_url, body=body, headers=headers, timeout=SLACK_TIMEOUT)


def email_message_send(*, to: Sequence[str], subject: str, body: str) -> Outcome:
    """Send a plain-text e-mail through Django's mail backend; never raise (status 250 = taken)."""
    return email_send(to=to, subject=subject, body=body)


def _worth_retrying(result: Outcome) -> bool:
    """Network errors, timeouts, 5xx, 408 and 429 may pass later; a refusal or other 4xx won't.

    Unlike a buyer's post, a message whose answer was lost is sent again: a repeated
    notification is better than a missing one.
    """
    return retryable(result, idempotent=True)


def _delivered(channel: str, result: Outcome) -> bool:
    if channel == NotificationChannel.EMAIL:
        return result.status == 250
    return result.status is not None and 200 <= result.status < 300


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
    attempt = delivery.attempts + 1
    started_at = timezone.now()
    # Claim this attempt: a task delivered twice (or queued again by the sweep while its retry
    # was still on its way) sends once.
    claimed = NotificationDelivery.objects.filter(
        pk=delivery.pk, status=DeliveryStatus.PENDING, attempts=delivery.attempts
    ).update(attempts=attempt, last_attempt_at=started_at)
    if not claimed:
        return "skipped"
    subscription = delivery.subscription
    if subscription is None or not subscription.active:
        result = Outcome(error="the subscription was deleted or switched off", refused=True)
    elif delivery.channel == NotificationChannel.SLACK:
        result = slack_message_send(
            webhook_url=subscription.slack_webhook_url, payload=delivery.payload
        )
    else:
        result = email_message_send(
            to=delivery.payload.get("to") or [delivery.recipient],
            subject=delivery.payload.get("subject", delivery.subject),
            body=delivery.payload.get("body", ""),
        )
    sent = _delivered(delivery.channel, result)
    error = result.error or ("" if sent else f"HTTP {result.status}")
    if sent:
        status = DeliveryStatus.SENT
    elif retry and _worth_retrying(result) and attempt < MAX_ATTEMPTS:
        status = DeliveryStatus.PENDING
    else:
        status = DeliveryStatus.FAILED
    log_entry = {
        "attempt": attempt,
        "at": started_at.isoformat(),
        "status": result.status,
        "error": error,
        "latency_ms": result.latency_ms,
    }
    NotificationDelivery.objects.filter(pk=delivery.pk).update(
        status=status,
        response_status=result.status,
        response_body=result.body[:4096],
        error=error[:500],
        latency_ms=result.latency_ms,
        attempt_log=[*delivery.attempt_log, log_entry],
        sent_at=timezone.now() if sent else None,
    )
    if status == DeliveryStatus.FAILED:
        logger.warning(
            "notification not delivered",
            extra={"delivery_id": delivery.pk, "attempts": attempt, "error": error},
        )
    return {DeliveryStatus.SENT: "sent", DeliveryStatus.PENDING: "retry"}.get(status, "failed")


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
        link_path=_admin_path(subscription),
        occurred_at=now.isoformat(),
    )
    delivery = delivery_create(subscription=subscription, event=event, queue=False)
    delivery_send(delivery_id=delivery.pk, retry=False)
    delivery.refresh_from_db()
    return delivery


# --- Source rates (beat) ----------------------------------------------------------------------


def source_rates_check(*, now: datetime | None = None, limit: int = SWEEP_LIMIT) -> int:
    """Tell the subscriptions whose threshold a source's error or duplicate rate reached.

    Per source, over each window some subscription measures, with one grouped query; test leads
    do not count. Return how many deliveries were recorded.
    """
    now = now or timezone.now()
    subscriptions = subscriptions_for(RATE_KINDS)
    if not subscriptions:
        return 0
    windows = sorted({s.rate_window_minutes for s in subscriptions})
    counts: dict[str, Any] = {}
    for minutes in windows:
        recent = Q(received_at__gte=now - timedelta(minutes=minutes))
        counts[f"received_{minutes}"] = Count("pk", filter=recent)
        counts[f"invalid_{minutes}"] = Count("pk", filter=recent & Q(status=LeadStatus.INVALID))
        counts[f"duplicate_{minutes}"] = Count("pk", filter=recent & Q(status=LeadStatus.DUPLICATE))
    rows = (
        Lead.objects.filter(
            received_at__gte=now - timedelta(minutes=windows[-1]),
            received_at__lte=now,
            is_test=False,
        )
        .values("source_id")
        .annotate(**counts)
        .order_by("source_id")
    )
    candidates: list[Event] = []
    for row in rows:
        for minutes in windows:
            received = row[f"received_{minutes}"]
            for kind, counted in (
                (Kind.SOURCE_ERROR_RATE, row[f"invalid_{minutes}"]),
                (Kind.SOURCE_DUPLICATE_RATE, row[f"duplicate_{minutes}"]),
            ):
                if not received or not counted:
                    continue
                percent = round(100 * counted / received, 1)
                event = Event(
                    kind=kind,
                    subject=f"source:{row['source_id']}",
                    title="",
                    headline="",
                    source_id=row["source_id"],
                    rate={
                        "window_minutes": minutes,
                        "received": received,
                        "count": counted,
                        "percent": percent,
                    },
                )
                if any(subscription_wants(s, event) for s in subscriptions):
                    candidates.append(event)
    deliveries = 0
    sources = Source.objects.in_bulk({e.source_id for e in candidates[:limit]})
    for event in candidates[:limit]:
        source = sources.get(event.source_id)
        if source is not None:
            deliveries += len(
                event_dispatch(
                    _rate_event(event, source=source, now=now),
                    subscriptions=subscriptions,
                    now=now,
                )
            )
    return deliveries


def _rate_event(candidate: Event, *, source: Source, now: datetime) -> Event:
    rate = candidate.rate
    minutes = rate["window_minutes"]
    since = now - timedelta(minutes=minutes)
    error = candidate.kind == Kind.SOURCE_ERROR_RATE
    what = "invalid" if error else "duplicates"
    facts = [
        ("Source", source.name),
        (
            "Rate",
            f"{rate['percent']:g}% {what}: {rate['count']} of {rate['received']} leads in the "
            f"last {minutes} minutes",
        ),
    ]
    if error:
        # Which fields fail, by name only: the values are a consumer's personal data.
        fields = Counter(
            name
            for errors in Lead.objects.filter(
                source=source,
                status=LeadStatus.INVALID,
                is_test=False,
                received_at__gte=since,
                received_at__lte=now,
            ).values_list("errors", flat=True)[:500]
            if isinstance(errors, dict)
            for name in errors
        )
        if fields:
            facts.append(
                ("Failing fields", ", ".join(f"{n} ({c})" for n, c in fields.most_common(3)))
            )
    changelist = reverse("admin:leads_lead_changelist")
    status = LeadStatus.INVALID if error else LeadStatus.DUPLICATE
    return Event(
        kind=candidate.kind,
        subject=candidate.subject,
        title="Source error rate high" if error else "Source duplicate rate high",
        headline=f"{source.name}: {rate['percent']:g}% of its leads "
        f"{'invalid' if error else 'duplicates'} in the last {minutes} minutes",
        facts=tuple(facts),
        link_path=f"{changelist}?source__id__exact={source.pk}&status__exact={status}",
        occurred_at=now.isoformat(),
        source_id=source.pk,
        rate=rate,
    )


# --- Sweep (beat) -------------------------------------------------------------------------------


def notifications_sweep(*, now: datetime | None = None, limit: int = SWEEP_LIMIT) -> dict[str, int]:
    """Tell the repeats of closed windows, queue deliveries whose task was lost, forget old
    windows. Return what was done, by name."""
    now = now or timezone.now()
    summaries = _windows_summarise(now=now, limit=limit)
    stale = list(
        NotificationDelivery.objects.filter(status=DeliveryStatus.PENDING)
        .annotate(last_touched=Coalesce("last_attempt_at", "created_at"))
        .filter(last_touched__lt=now - STALE_PENDING)
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
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
