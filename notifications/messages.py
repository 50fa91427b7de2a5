"""What a notification says: the event, and the Slack message or e-mail that tells it.

Rendering is plain: it reads the subscription and the event it is given and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.urls import reverse

from notifications.channels import slack_escape
from notifications.models import RATE_KINDS, NotificationKind, NotificationSubscription


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


def _when(value: datetime | str | None) -> str:
    if not value:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def admin_path(obj: Any) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])


def site_link(path: str) -> str:
    return f"{settings.SITE_URL}{path}" if path else ""


def _repeats_line(repeats: int, since: datetime | None, *, summary: bool, at: str) -> str:
    if not repeats:
        return ""
    times = f"{repeats} more time{'s' if repeats != 1 else ''}"
    if summary:
        return f"Happened {times} since {_when(since)}; the latest at {_when(at)}."
    return f"And {repeats} more since {_when(since)}."


def _heading(
    event: Event, repeats: int, since: datetime | None, *, summary: bool
) -> tuple[str, str]:
    """Return the message's title and its line on the repeats ("" when there were none)."""
    title = f"{event.title} (repeated)" if summary else event.title
    return title, _repeats_line(repeats, since, summary=summary, at=event.occurred_at)


def _facts_for(subscription: NotificationSubscription, event: Event) -> list[tuple[str, str]]:
    facts = list(event.facts)
    if event.kind in RATE_KINDS:
        threshold = (
            subscription.error_rate_percent
            if event.kind == NotificationKind.SOURCE_ERROR_RATE
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
    title, repeated = _heading(event, repeats, since, summary=summary)
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
    title, repeated = _heading(event, repeats, since, summary=summary)
    lines = [title, event.headline, ""]
    lines += [f"{label}: {value}" for label, value in _facts_for(subscription, event)]
    if repeated:
        lines += ["", repeated]
    link = site_link(event.link_path)
    if link:
        lines += ["", f"Open in the admin: {link}"]
    manage = site_link(admin_path(subscription)) if subscription.pk else ""
    lines += [
        "",
        "-- ",
        f"Leadswitch, {_when(event.occurred_at)}. Sent through the subscription "
        f"\u201c{subscription.name}\u201d" + (f": {manage}" if manage else "."),
    ]
    subject = " ".join(f"[Leadswitch] {title}: {event.headline}".split())
    return {"subject": subject[:255], "to": to, "body": "\n".join(lines) + "\n"}
