"""E-mail leaving the platform: Django's mail backend (SMTP in production), one Outcome a message.

The backend can only say that it took a message (SMTP's 250, the status recorded), or that it
did not; an error from it is a failed attempt like a connect error, never an exception.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from django.conf import settings
from django.core.mail import EmailMessage

from outbound.rules import Outcome

TAKEN = 250  # the status of a message the mail backend took


def email_send(*, to: Sequence[str], subject: str, body: str) -> Outcome:
    """Send a plain-text e-mail from DEFAULT_FROM_EMAIL; never raise (status 250 = taken)."""
    started = time.monotonic()
    message = EmailMessage(
        # One line: a line break in a header is refused by Django (and would be an injection).
        subject=" ".join(subject.split()),
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[address.strip() for address in to],
    )
    try:
        sent = message.send(fail_silently=False)
    except Exception as exc:  # SMTP errors come in many classes; each one is a failed attempt
        return Outcome(
            latency_ms=_ms_since(started),
            error=f"e-mail not sent: {type(exc).__name__}: {exc}"[:500],
        )
    if not sent:
        error = "e-mail not sent: the backend refused it"
        return Outcome(latency_ms=_ms_since(started), error=error)
    return Outcome(status=TAKEN, body="sent", latency_ms=_ms_since(started))


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
