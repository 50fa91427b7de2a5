"""Postbacks go through the outbound seam: a real socket on 127.0.0.1 plays the partner."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from celery.exceptions import Retry

from leads.models import Lead, LeadStatus, Postback, PostbackStatus
from leads.tasks import POSTBACK_BACKOFF_BASE_S, POSTBACK_MAX_ATTEMPTS, send_postback
from tests.leads.factories import LeadFactory, SourceFactory
from tests.outbound.receiver import receiving

pytestmark = pytest.mark.django_db


def settled_lead(url: str) -> Lead:
    return LeadFactory(source=SourceFactory(postback_url=url), status=LeadStatus.SOLD)


def the_postback(**expected: Any) -> Postback:
    """Return the one postback stored, which has these values."""
    postback = Postback.objects.get()
    assert {name: getattr(postback, name) for name in expected} == expected
    return postback


def sent_without_an_answer(lead: Lead) -> Postback:
    """Try the lead's postback once; no answer came, so it is kept pending for a retry."""
    with pytest.raises(Retry):
        send_postback(str(lead.pk))
    return the_postback(status=PostbackStatus.PENDING, response_status=None)


def test_a_postback_to_a_name_resolving_to_a_forbidden_address_is_refused_without_a_request(
    settings,
):
    with receiving() as partner:
        lead = settled_lead(partner.url("/outcome", host="localhost"))
        settings.OUTBOUND_ALLOWED_NETWORKS = []  # the URL was saved while it was allowed

        assert send_postback(str(lead.pk)) == PostbackStatus.FAILED

    assert partner.received == []
    postback = the_postback(status=PostbackStatus.FAILED, attempt=1, response_status=None)
    assert postback.error.startswith("refused: localhost resolves to ")
    assert "loopback" in postback.error


def test_a_postback_answered_503_is_retried_after_a_backoff():
    with receiving(503) as partner:
        lead = settled_lead(partner.url("/outcome"))
        with (
            mock.patch.object(send_postback, "retry", side_effect=Retry) as retry,
            pytest.raises(Retry),
        ):
            send_postback(str(lead.pk))

    assert len(partner.received) == 1
    the_postback(
        attempt=1,
        status=PostbackStatus.PENDING,
        response_status=503,
        error="HTTP 503",
        response_body="ok",
    )
    countdown = retry.call_args.kwargs["countdown"]
    assert 0 <= countdown <= POSTBACK_BACKOFF_BASE_S  # after the first try: full jitter below 2 s


def test_a_postback_answered_404_is_not_retried():
    with receiving(404) as partner:
        lead = settled_lead(partner.url("/outcome"))
        with mock.patch.object(send_postback, "retry") as retry:
            assert send_postback(str(lead.pk)) == PostbackStatus.FAILED

    retry.assert_not_called()
    assert len(partner.received) == 1
    the_postback(status=PostbackStatus.FAILED, response_status=404, error="HTTP 404")


def test_a_postback_that_got_no_answer_in_time_is_sent_again(monkeypatch):
    # It names its lead: a partner told twice is better off than a partner never told.
    monkeypatch.setattr("leads.tasks.POSTBACK_TIMEOUT", (0.5, 0.2))
    with receiving(200, delay_s=1.5) as partner:
        postback = sent_without_an_answer(settled_lead(partner.url("/outcome")))

    assert postback.error.startswith("no answer in time")


def test_a_postback_that_keeps_failing_is_given_up_after_its_last_attempt():
    with receiving(503) as partner:
        lead = settled_lead(partner.url("/outcome"))
        # Applied in-process, the retries run at once, one after the other.
        result = send_postback.apply(args=[str(lead.pk)])

    assert result.get() == PostbackStatus.FAILED
    attempts = list(Postback.objects.order_by("attempt").values_list("attempt", "status"))
    assert attempts == [
        *((n, PostbackStatus.PENDING) for n in range(1, POSTBACK_MAX_ATTEMPTS)),
        (POSTBACK_MAX_ATTEMPTS, PostbackStatus.FAILED),
    ]
    assert len(partner.received) == POSTBACK_MAX_ATTEMPTS


def test_a_postback_that_succeeds_on_retry_stops_retrying():
    with receiving(502, 204) as partner:
        lead = settled_lead(partner.url("/outcome"))
        with pytest.raises(Retry):
            send_postback(str(lead.pk))

        assert send_postback.apply(args=[str(lead.pk)], retries=1).get() == (
            PostbackStatus.DELIVERED
        )

    assert list(Postback.objects.values_list("attempt", "status", "response_status")) == [
        (1, PostbackStatus.PENDING, 502),
        (2, PostbackStatus.DELIVERED, 204),
    ]


def test_an_unreachable_postback_url_is_retried():
    lead = settled_lead("http://127.0.0.1:9/outcome")  # discard: nobody listens

    postback = sent_without_an_answer(lead)

    assert postback.error.startswith("cannot connect: ")


def test_no_postback_is_sent_for_a_lead_still_in_flight_or_without_a_url():
    with receiving() as partner:
        waiting = LeadFactory(source=SourceFactory(postback_url=partner.url("/outcome")))
        silent = LeadFactory(source=SourceFactory(), status=LeadStatus.SOLD)

        assert send_postback(str(waiting.pk)) == "skipped"
        assert send_postback(str(silent.pk)) == "skipped"

    assert not Postback.objects.exists()
    assert partner.received == []
