"""Delivery to buyers without a ping/post API: plain webhooks and e-mail.

A webhook is an ordinary post whose answer is accepted when it is any 2xx: the buyer has no
response format to read. An e-mail goes through Django's mail backend (outbound.email); it is
accepted once the backend has taken it. Both are recorded as post attempts like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from outbound.email import email_send as outbound_email_send
from outbound.rules import Outcome
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
    return OutgoingRequest.unmasked(EMAIL_METHOD, address, headers, body)


def email_send(request: OutgoingRequest) -> Outcome:
    """Send the e-mail; an error from the mail backend is a failed delivery, not an exception."""
    return outbound_email_send(
        to=request.headers["To"].split(","),
        subject=request.headers["Subject"],
        body=request.body_text,
    )
