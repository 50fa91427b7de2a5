"""E-mail through Django's mail backend, as an Outcome like any other call."""

from __future__ import annotations

import pytest
from django.core import mail

from outbound.email import TAKEN, email_send


def test_a_message_the_backend_takes_is_status_250(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.DEFAULT_FROM_EMAIL = "leadswitch@platform.example"

    outcome = email_send(
        to=["ana@buyer.example", " bo@buyer.example"], subject="New\nlead  1", body="zip: 10001\n"
    )

    assert (outcome.status, outcome.body, outcome.error) == (TAKEN, "sent", "")
    (message,) = mail.outbox
    assert message.to == ["ana@buyer.example", "bo@buyer.example"]
    assert message.subject == "New lead 1"  # one line: no header injection
    assert message.from_email == "leadswitch@platform.example"


class _Broken:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("SMTP server down")


class _Unwilling(_Broken):
    def send_messages(self, messages):
        return 0


@pytest.mark.parametrize(
    ("backend", "error"),
    [
        ("_Broken", "e-mail not sent: ConnectionRefusedError: SMTP server down"),
        ("_Unwilling", "e-mail not sent: the backend refused it"),
    ],
)
def test_a_backend_that_fails_is_a_transient_failure_not_an_exception(settings, backend, error):
    settings.EMAIL_BACKEND = f"{__name__}.{backend}"

    outcome = email_send(to=["ana@buyer.example"], subject="s", body="b")

    assert (outcome.status, outcome.error) == (None, error)
    assert outcome.transient
