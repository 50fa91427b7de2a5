"""Every outbound call connects to the address the guard checked (no DNS rebinding window).

Each test gives the process's one HTTP client a DNS that answers 127.0.0.1 (allowed in tests)
the first time and 10.0.0.7 (inside the platform) ever after, and makes the system resolver,
which any other library would ask, answer 10.0.0.7 too. A call that reached its receiver on
127.0.0.1 therefore connected to the very address the guard checked: a second look-up, by the
guard or by anyone else, would have answered an address that is refused or leads nowhere.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from buyers.models import DeliveryEndpoint
from leads.models import LeadStatus, Postback, PostbackStatus
from leads.tasks import send_postback
from notifications.models import NotificationChannel, NotificationSubscription
from notifications.services import notification_test_send
from outbound import http
from outbound.guard import GuardedResolver
from routing.engine import lead_route
from routing.models import Attempt, AttemptOutcome
from teams.models import TeamNotification, TeamNotificationStatus
from teams.services import assignment_create, team_notification_send
from tests.leads.factories import LeadFactory, SourceFactory
from tests.outbound.test_http import _Rebinding
from tests.teams.factories import TeamFactory, TeamMemberFactory

pytestmark = pytest.mark.django_db

HOST = "partner.test"
INSIDE = "10.0.0.7"


@pytest.fixture
def rebinding_dns(monkeypatch) -> Iterator[_Rebinding]:
    dns = _Rebinding()
    client = http._Client(resolver=lambda: GuardedResolver(dns))
    monkeypatch.setattr(http, "client", client)
    system = socket.getaddrinfo

    def system_rebound(host, *args, **kwargs):
        if host == HOST:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (INSIDE, args[0] if args else 0))]
        return system(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", system_rebound)
    yield dns
    client.close()


def test_a_buyers_ping_and_post_reach_the_checked_address(market, start_simulator, rebinding_dns):
    own = start_simulator()
    contract = market.contract(ping="bid=10", sim=own)
    for endpoint in DeliveryEndpoint.objects.filter(contract=contract):
        DeliveryEndpoint.objects.filter(pk=endpoint.pk).update(
            url=endpoint.url.replace("127.0.0.1", HOST)
        )
    lead = market.lead()

    lead_route(lead_id=str(lead.pk))

    outcomes = list(
        Attempt.objects.filter(lead=lead).order_by("created_at").values_list("kind", "outcome")
    )
    assert outcomes == [("ping", AttemptOutcome.BID), ("post", AttemptOutcome.ACCEPTED)]
    assert sum(own.ledger.requests.values()) == 2
    assert rebinding_dns.asked == 1
    lead.refresh_from_db()
    assert lead.status == LeadStatus.SOLD


def test_a_postback_reaches_the_checked_address(start_receiver, rebinding_dns):
    receiver = start_receiver(200)
    source = SourceFactory(postback_url=receiver.url("/hook", host=HOST))
    lead = LeadFactory(source=source, status=LeadStatus.UNSOLD)

    send_postback.apply(args=[str(lead.pk)])

    assert Postback.objects.get(lead=lead).status == PostbackStatus.DELIVERED
    assert len(receiver.received) == 1
    assert rebinding_dns.asked == 1


def test_an_ops_notification_reaches_the_checked_address(start_receiver, rebinding_dns):
    receiver = start_receiver(200)
    subscription = NotificationSubscription.objects.create(
        name="Ops on-call",
        channel=NotificationChannel.SLACK,
        slack_webhook_url=receiver.url("/services/T0/B0/secret", host=HOST),
        kinds=["buyer_paused"],
    )

    delivery = notification_test_send(subscription=subscription)

    assert delivery.status == "sent", delivery.error
    assert len(receiver.received) == 1
    assert rebinding_dns.asked == 1


def test_a_team_webhook_reaches_the_checked_address(
    start_receiver, rebinding_dns, django_capture_on_commit_callbacks
):
    receiver = start_receiver(200)
    team = TeamFactory(
        slack_webhook_url=receiver.url("/services/T0/B0/secret", host=HOST), notify_by_email=False
    )
    TeamMemberFactory(team=team)
    with django_capture_on_commit_callbacks(execute=False):
        assignment_create(lead=LeadFactory(), team_id=team.pk)
    notification = TeamNotification.objects.get(assignment__team=team)

    team_notification_send(notification_id=notification.pk)

    notification.refresh_from_db()
    assert notification.status == TeamNotificationStatus.SENT, notification.error
    assert len(receiver.received) == 1
    assert rebinding_dns.asked == 1


def test_without_the_pinning_the_second_answer_would_be_refused(rebinding_dns, start_receiver):
    """The negative control: a client asking its DNS afresh gets the forbidden address."""
    receiver = start_receiver(200)
    first = http.send("GET", receiver.url("/a", host=HOST), timeout=(1.0, 2.0))
    fresh = http._Client(resolver=lambda: GuardedResolver(rebinding_dns))
    try:
        (second,) = fresh.send_all(
            [http._Call(method="GET", url=receiver.url("/b", host=HOST), timeout=(1.0, 2.0))],
            deadline=time.monotonic() + 3,
        )
    finally:
        fresh.close()

    assert first.status == 200
    assert second.refused
    assert f"{HOST} resolves to {INSIDE} is a private address" in second.error
