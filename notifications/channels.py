"""The two ways staff are told something: a Slack incoming webhook and a plain-text e-mail.

`slack_message_send` and `email_message_send` are plain functions returning what happened
(an `Outcome`), never raising; the ops notifications (notifications.services) and the internal
sales teams send through them. Both go through the platform's outbound seam: Slack through its
HTTP client (the address guard checks the address it connects to; redirects are not followed),
e-mail through its door to Django's mail backend.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from outbound import http
from outbound.email import email_send
from outbound.guard import webhook_url_refusal
from outbound.rules import Outcome

__all__ = [
    "SLACK_TIMEOUT",
    "Outcome",
    "email_message_send",
    "slack_escape",
    "slack_message_send",
    "webhook_url_refusal",
]

SLACK_TIMEOUT = (2.0, 5.0)  # connect, read (seconds)


def slack_escape(text: str) -> str:
    # Slack reads &, < and > as markup (links, mentions): a consumer named "<!channel>" must
    # not page the whole channel.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message_send(*, webhook_url: str, payload: Mapping[str, Any]) -> Outcome:
    """POST a message to a Slack incoming webhook; return what happened, never raise."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Leadswitch/1"}
    return http.send("POST", webhook_url, body=body, headers=headers, timeout=SLACK_TIMEOUT)


def email_message_send(*, to: Sequence[str], subject: str, body: str) -> Outcome:
    """Send a plain-text e-mail through Django's mail backend; never raise (status 250 = taken)."""
    return email_send(to=to, subject=subject, body=body)
