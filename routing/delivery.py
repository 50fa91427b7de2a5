"""Delivery to buyers without a ping/post API: plain webhooks and e-mail.

A webhook is an ordinary post whose answer is accepted when it is any 2xx: the buyer has no
response format to read. An e-mail goes through Django's mail backend (SMTP in production); it
is accepted once the backend has taken it. Both are recorded as post attempts like any other.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage

from routing.http import HttpResult
from routing.mapping import OutgoingRequest
from routing.responses import ParseRule

EMAIL_METHOD = "EMAIL"
# The mail backend took it (SMTP's 250): that is all e-mail delivery can know.
EMAIL_RULE = ParseRule(
    success_path="", success_values=(), success_status_codes=(250,), price_path="",
    reason_path="", reference_path="",
)  # fmt: skip
WEBHOOK_RULE = ParseRule(
    success_path="",
    success_values=(),
    success_status_codes=tuple(range(200, 300)),
    price_path="",
    reason_path="",
    reference_path="id|lead_id",
)


def _line(name: str, value: Any) -> str:
    if isinstance(value, bool):
        value = "yes" if value else "no"
    return f"{name}: {value}"


def email_request(
    *, recipients: list[str], subject: str, fields: Mapping[str, Any]
) -> OutgoingRequest:
    """Build the e-mail a buyer receives, as an OutgoingRequest so that it is logged alike."""
    body = "\n".join(_line(name, value) for name, value in fields.items()) + "\n"
    address = "mailto:" + ",".join(recipients)
    headers = {"Subject": subject, "To": ", ".join(recipients)}
    return OutgoingRequest(
        method=EMAIL_METHOD,
        url=address,
        headers=headers,
        body=body.encode(),
        masked_url=address,
        masked_headers=headers,
    )


def email_send(request: OutgoingRequest) -> HttpResult:
    """Send the e-mail; an error from the mail backend is a failed delivery, not an exception."""
    started = time.monotonic()
    message = EmailMessage(
        subject=request.headers["Subject"],
        body=request.body_text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[a.strip() for a in request.headers["To"].split(",")],
    )
    try:
        sent = message.send(fail_silently=False)
    except Exception as exc:  # SMTP errors come in many classes; each one is a failed delivery
        return HttpResult(
            latency_ms=round((time.monotonic() - started) * 1000),
            error=f"e-mail not sent: {type(exc).__name__}: {exc}"[:500],
        )
    latency = round((time.monotonic() - started) * 1000)
    if not sent:
        return HttpResult(latency_ms=latency, error="e-mail not sent: the backend refused it")
    return HttpResult(status=250, body="sent", latency_ms=latency)
