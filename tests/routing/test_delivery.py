from __future__ import annotations

from django.core import mail

from routing.delivery import WEBHOOK_RULE, email_request, email_send
from routing.responses import parse_response


def test_an_email_delivery_lists_every_mapped_field_and_is_logged_like_a_request():
    request = email_request(
        recipients=["leads@buyer.example", "backup@buyer.example"],
        subject="New auto-insurance lead",
        fields={"FirstName": "Mary", "Phone": "2125550142", "Homeowner": True},
    )

    assert request.method == "EMAIL"
    assert request.masked_url == "mailto:leads@buyer.example,backup@buyer.example"
    assert request.body_text == "FirstName: Mary\nPhone: 2125550142\nHomeowner: yes\n"


def test_sending_an_email_delivery_goes_through_the_mail_backend(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    request = email_request(
        recipients=["leads@buyer.example"], subject="New lead", fields={"Email": "m@example.com"}
    )

    result = email_send(request)

    assert result.status == 250
    assert not result.error
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["leads@buyer.example"]
    assert mail.outbox[0].subject == "New lead"
    assert "Email: m@example.com" in mail.outbox[0].body


def test_a_mail_backend_failure_is_a_failed_delivery_not_an_exception(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 1
    request = email_request(recipients=["leads@buyer.example"], subject="New lead", fields={})

    result = email_send(request)

    assert result.status is None
    assert result.error.startswith("e-mail not sent: ")


def test_a_webhook_accepts_any_2xx_and_refuses_anything_else():
    assert parse_response(WEBHOOK_RULE, 204, "").accepted
    assert parse_response(WEBHOOK_RULE, 200, "<html>thanks</html>").accepted
    assert not parse_response(WEBHOOK_RULE, 302, "").accepted
    assert not parse_response(WEBHOOK_RULE, 500, '{"status": "accepted"}').accepted
