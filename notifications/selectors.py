"""Reads for ops notifications: which subscriptions want an event, and the events themselves,
built from the rows they are about (a contract, a cap counter, a postback, a source's leads).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from django.db.models import Count, Q
from django.urls import reverse

from buyers.caps import PERIOD_WORDS, CapLimitSpec, CapUsage, period_bounds
from buyers.models import CapCounter, Contract
from leads.models import Lead, LeadStatus, Postback, Source
from notifications.messages import Event, admin_path
from notifications.models import RATE_KINDS, NotificationKind, NotificationSubscription

logger = logging.getLogger(__name__)

Kind = NotificationKind


# --- Who wants what -----------------------------------------------------------------------------


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


# --- Building events (in the dispatch task, off the hot path) ---------------------------------


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
        link_path=admin_path(contract),
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
        link_path=admin_path(owner),
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
        link_path=admin_path(lead),
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


def event_build(kind: str, params: Mapping[str, Any]) -> Event | None:
    """Return the event a part of the platform reported (see notifications.events), or None
    when its subject is gone or no event is built for this kind."""
    build = BUILDERS.get(kind)
    if build is None:
        # Source rates are measured by their own task, and a test has no event to build.
        logger.error("no event is built for this notification kind", extra={"kind": kind})
        return None
    return build(kind, params)


# --- Source rates (beat) ----------------------------------------------------------------------


def source_rate_events(
    *, subscriptions: Iterable[NotificationSubscription], now: datetime, limit: int
) -> list[Event]:
    """Return the events of sources whose error or duplicate rate reached a threshold of one of
    these subscriptions, at most `limit`.

    Per source, over each window some subscription measures, with one grouped query; test leads
    do not count.
    """
    subscriptions = list(subscriptions)
    if not subscriptions:
        return []
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
    sources = Source.objects.in_bulk({e.source_id for e in candidates[:limit]})
    return [
        _rate_event(event, source=sources[event.source_id], now=now)
        for event in candidates[:limit]
        if event.source_id in sources
    ]


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
