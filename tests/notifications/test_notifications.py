"""Notifications for ops: who hears of what, once per window, by Slack or e-mail.

Slack is played by a small HTTP server on 127.0.0.1 that records every body it receives; buyers by
the simulator. Events come from their real causes: a failing buyer opens its breaker through the
engine, a sale fills a cap, the sweeper finds a lost run, a postback gives up, a source sends
invalid leads.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from buyers.models import BuyerCap, CapPeriod, ContractCap, DeliveryEndpoint, EndpointKind
from buyers.services import cap_reserve
from leads.models import Lead, LeadStatus, PostbackStatus
from leads.services import routing_enqueue
from leads.tasks import send_postback
from notifications import channels, events, messages, services, tasks
from notifications.messages import Event
from notifications.models import (
    SUBSCRIBABLE_KINDS,
    DeliveryStatus,
    NotificationChannel,
    NotificationDelivery,
    NotificationKind,
    NotificationSubscription,
    NotificationWindow,
)
from notifications.selectors import subscription_wants
from notifications.services import event_dispatch
from routing import tasks as routing_tasks
from routing.engine import lead_route
from routing.health import health_force
from routing.models import Auction, ContractHealth, HealthStatus
from tests.buyers.factories import ContractFactory
from tests.leads.conftest import auto_lead
from tests.leads.factories import LeadFactory, SourceFactory
from tests.outbound.receiver import Receiver
from tests.staff import staff_user
from tests.threads import Go, all_at_once
from tests.workers import (  # routing_queue: a fixture
    Service,
    needs_broker,
    routing_queue,  # noqa: F401
    wait_until,
    worker_start,
)

pytestmark = pytest.mark.django_db

Kind = NotificationKind
SITE = "https://leads.example.com"


@pytest.fixture(autouse=True)
def _site_url(settings):
    settings.SITE_URL = SITE


SLACK_PATH = "/services/T0001/B0001/s3cr3tT0ken"


@pytest.fixture
def slack(start_receiver) -> Receiver:
    """A Slack incoming webhook on 127.0.0.1."""
    return start_receiver(error_body="no_service")


def slack_subscription(receiver: Receiver, *kinds: str, **fields: Any) -> NotificationSubscription:
    fields.setdefault("name", "Ops on-call")
    return NotificationSubscription.objects.create(
        channel=NotificationChannel.SLACK,
        slack_webhook_url=receiver.url(SLACK_PATH),
        kinds=list(kinds or SUBSCRIBABLE_KINDS),
        **fields,
    )


def an_event(kind: str = Kind.BUYER_PAUSED, subject: str = "contract:1", **fields: Any) -> Event:
    fields.setdefault("title", "Buyer auto-paused")
    fields.setdefault("headline", "Acme · Auto gets no leads: 5 consecutive failures")
    fields.setdefault("occurred_at", timezone.now().isoformat())
    return Event(kind=kind, subject=subject, **fields)


def route(lead: Lead) -> str:
    outcome = lead_route(lead_id=str(lead.pk))
    lead.refresh_from_db()
    return outcome


def section_fields(message: dict[str, Any]) -> dict[str, str]:
    """The facts of a Slack message, label -> value."""
    (facts,) = [b for b in message["blocks"] if b["type"] == "section" and "fields" in b]
    return dict(f["text"].lstrip("*").split("*\n", 1) for f in facts["fields"])


def button_url(message: dict[str, Any]) -> str:
    (actions,) = [b for b in message["blocks"] if b["type"] == "actions"]
    return actions["elements"][0]["url"]


# --- Who hears of what --------------------------------------------------------------------------


def test_a_subscription_hears_only_the_kinds_it_chose():
    subscription = NotificationSubscription(kinds=[Kind.CAP_REACHED], active=True)

    assert subscription_wants(subscription, an_event(Kind.CAP_REACHED))
    assert not subscription_wants(subscription, an_event(Kind.BUYER_PAUSED))
    subscription.active = False
    assert not subscription_wants(subscription, an_event(Kind.CAP_REACHED))


def test_a_scope_narrows_it_to_one_buyer_contract_or_source():
    contract = ContractFactory()
    other = ContractFactory()
    source = SourceFactory()
    kinds = list(SUBSCRIBABLE_KINDS)
    everything = NotificationSubscription(kinds=kinds)
    by_buyer = NotificationSubscription(kinds=kinds, buyer=contract.buyer)
    by_contract = NotificationSubscription(kinds=kinds, contract=contract)
    by_source = NotificationSubscription(kinds=kinds, source=source)
    breaker = an_event(contract_id=contract.pk, buyer_id=contract.buyer_id)
    other_breaker = an_event(contract_id=other.pk, buyer_id=other.buyer_id)
    buyer_cap = an_event(Kind.CAP_REACHED, "cap-counter:9", buyer_id=contract.buyer_id)
    postback = an_event(Kind.POSTBACK_FAILED, f"source:{source.pk}", source_id=source.pk)
    stuck = an_event(Kind.LEADS_STUCK, "routing")

    wants = {
        name: [subscription_wants(s, e) for e in (breaker, other_breaker, buyer_cap, postback)]
        for name, s in (
            ("everything", everything),
            ("buyer", by_buyer),
            ("contract", by_contract),
            ("source", by_source),
        )
    }

    assert wants == {
        "everything": [True, True, True, True],
        "buyer": [True, False, True, False],
        # A buyer-wide cap stops the contract too.
        "contract": [True, False, True, False],
        "source": [False, False, False, True],
    }
    assert subscription_wants(everything, stuck)
    assert not any(subscription_wants(s, stuck) for s in (by_buyer, by_contract, by_source))


@pytest.mark.parametrize(
    ("percent", "received", "window", "told"),
    [
        (25.0, 40, 60, True),
        (20.0, 40, 60, True),  # at the threshold
        (19.9, 40, 60, False),
        (100.0, 19, 60, False),  # too few leads: one bad lead is no alert
        (25.0, 40, 30, False),  # measured over another window than this subscription's
    ],
)
def test_a_rate_is_told_from_the_threshold_over_enough_leads(percent, received, window, told):
    subscription = NotificationSubscription(
        kinds=[Kind.SOURCE_ERROR_RATE],
        error_rate_percent=Decimal("20.00"),
        rate_window_minutes=60,
        rate_min_leads=20,
    )
    rate = {"window_minutes": window, "received": received, "count": 1, "percent": percent}

    assert subscription_wants(subscription, an_event(Kind.SOURCE_ERROR_RATE, rate=rate)) is told


# --- De-duplication -----------------------------------------------------------------------------


def test_the_same_event_is_told_once_per_window_and_its_repeats_counted(slack):
    subscription = slack_subscription(slack, dedup_minutes=30)
    now = timezone.now()

    first = event_dispatch(an_event(), now=now)
    repeats = [event_dispatch(an_event(), now=now + timedelta(minutes=m)) for m in (1, 10, 29)]

    assert len(first) == 1
    assert repeats == [[], [], []]
    window = NotificationWindow.objects.get(subscription=subscription)
    assert (window.event_key, window.suppressed) == ("buyer_paused:contract:1", 3)
    assert NotificationDelivery.objects.count() == 1


def test_after_the_window_the_next_one_says_how_many_were_held_back(slack):
    slack_subscription(slack, dedup_minutes=30)
    now = timezone.now()
    event_dispatch(an_event(), now=now)
    for minutes in range(1, 15):
        event_dispatch(an_event(), now=now + timedelta(minutes=minutes))

    (later,) = event_dispatch(an_event(), now=now + timedelta(minutes=31))

    assert later.repeats == 14
    since = f"{now:%Y-%m-%d %H:%M} UTC"
    assert later.payload["text"].endswith(f"(And 14 more since {since})")
    assert {"type": "mrkdwn", "text": f"And 14 more since {since}."} in [
        element for block in later.payload["blocks"] for element in block.get("elements", [])
    ]
    assert event_dispatch(an_event(), now=now + timedelta(minutes=32)) == []


def test_restored_after_paused_is_another_key_and_gets_through(slack):
    slack_subscription(slack, dedup_minutes=60)
    now = timezone.now()

    paused = event_dispatch(an_event(Kind.BUYER_PAUSED), now=now)
    restored = event_dispatch(an_event(Kind.BUYER_RESTORED), now=now + timedelta(minutes=1))
    paused_again = event_dispatch(an_event(Kind.BUYER_PAUSED), now=now + timedelta(minutes=2))

    assert [len(paused), len(restored), len(paused_again)] == [1, 1, 0]
    assert [d.event_key for d in NotificationDelivery.objects.order_by("id")] == [
        "buyer_paused:contract:1",
        "buyer_restored:contract:1",
    ]


def test_each_subscription_has_its_own_window(slack, start_receiver):
    other = start_receiver()
    quick = slack_subscription(slack, name="quick", dedup_minutes=5)
    slow = slack_subscription(other, name="slow", dedup_minutes=60)
    now = timezone.now()
    event_dispatch(an_event(), now=now)

    later = event_dispatch(an_event(), now=now + timedelta(minutes=6))

    assert [d.subscription for d in later] == [quick]
    assert NotificationDelivery.objects.filter(subscription=slow).count() == 1


def test_a_window_that_closes_on_repeats_nobody_heard_of_tells_the_latest_once(slack):
    slack_subscription(slack, dedup_minutes=30)
    now = timezone.now()
    event_dispatch(an_event(headline="first"), now=now)
    event_dispatch(an_event(headline="second"), now=now + timedelta(minutes=5))
    event_dispatch(an_event(headline="latest"), now=now + timedelta(minutes=9))

    assert services.notifications_sweep(now=now + timedelta(minutes=20))["summaries"] == 0
    with_summary = services.notifications_sweep(now=now + timedelta(minutes=31))
    again = services.notifications_sweep(now=now + timedelta(minutes=62))

    assert (with_summary["summaries"], again["summaries"]) == (1, 0)
    summary = NotificationDelivery.objects.order_by("-id").first()
    assert summary.repeats == 2
    assert summary.payload["text"].startswith("Buyer auto-paused (repeated): latest")
    assert f"Happened 2 more times since {now:%Y-%m-%d %H:%M} UTC" in json.dumps(summary.payload)
    # The summary opened a new window: a repeat right after it is only counted.
    assert event_dispatch(an_event(), now=now + timedelta(minutes=32)) == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_identical_events_racing_on_real_connections_make_exactly_one_delivery(slack):
    subscription = slack_subscription(slack, dedup_minutes=60)
    racers = 12

    def dispatch(n: int, go: Go) -> int:
        go()
        return len(event_dispatch(an_event(), subscriptions=[subscription]))

    told = all_at_once(racers, dispatch)

    assert sorted(told) == [0] * (racers - 1) + [1]
    assert NotificationDelivery.objects.count() == 1
    assert NotificationWindow.objects.get().suppressed == racers - 1
    assert len(slack.messages) == 1
    assert NotificationDelivery.objects.get().status == DeliveryStatus.SENT


# --- Each event from its real cause ------------------------------------------------------------


def test_a_breaker_opened_by_a_failing_buyer_is_posted_to_slack_with_its_facts_and_a_link(
    market, start_simulator, slack, django_capture_on_commit_callbacks
):
    broken_buyer = start_simulator()
    broken = market.contract(sim=broken_buyer, ping="fail=1", breaker_failures=2)
    market.contract(ping="bid=10")
    slack_subscription(slack, Kind.BUYER_PAUSED, Kind.BUYER_RESTORED)

    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            assert route(market.lead()).startswith("sold")

    assert ContractHealth.objects.get(contract=broken).status == HealthStatus.OPEN
    (message,) = slack.messages
    company = broken.buyer.company
    assert message["text"] == (
        f"Buyer auto-paused: {company} · {broken.name} gets no leads: 2 consecutive failures"
    )
    assert message["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Buyer auto-paused"},
    }
    assert section_fields(message) == {
        "Buyer": company,
        "Contract": f"{broken.name} (#{broken.pk})",
        "Vertical": market.vertical.name,
        "Why": "2 consecutive failures",
        "Probe": "one lead after 1 minute",
    }
    assert button_url(message) == f"{SITE}/admin/buyers/contract/{broken.pk}/change/"
    assert slack.received[0]["headers"]["Content-Type"] == "application/json; charset=utf-8"
    delivery = NotificationDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_status) == (
        DeliveryStatus.SENT,
        1,
        200,
    )
    assert delivery.event_key == f"buyer_paused:contract:{broken.pk}"
    assert json.loads(slack.bodies[0]) == delivery.payload
    assert "s3cr3tT0ken" not in delivery.recipient


def test_a_buyer_restored_by_its_probe_is_told_within_the_window_of_its_pause(
    market, start_simulator, slack, django_capture_on_commit_callbacks
):
    flaky_buyer = start_simulator()
    flaky = market.contract(sim=flaky_buyer, ping="fail=1", breaker_failures=1)
    slack_subscription(slack, Kind.BUYER_PAUSED, Kind.BUYER_RESTORED, dedup_minutes=60)
    with django_capture_on_commit_callbacks(execute=True):
        route(market.lead())
    # The buyer is back, and its cool-down is over: the next lead is its probe.
    DeliveryEndpoint.objects.filter(contract=flaky, kind=EndpointKind.PING).update(
        url=f"{flaky_buyer.base_url}/ping?bid=10"
    )
    health = ContractHealth.objects.get(contract=flaky)
    health.state["opened_at"] -= health.state["cool_down_s"] + 1
    ContractHealth.objects.filter(pk=health.pk).update(state=health.state)

    with django_capture_on_commit_callbacks(execute=True):
        assert route(market.lead()).startswith("sold")

    assert [m["blocks"][0]["text"]["text"] for m in slack.messages] == [
        "Buyer auto-paused",
        "Buyer restored",
    ]
    assert section_fields(slack.messages[1])["How"] == "ping probe succeeded"


def test_ops_opening_a_breaker_by_hand_is_not_told_but_closing_it_is(
    slack, django_capture_on_commit_callbacks
):
    contract = ContractFactory()
    slack_subscription(slack, Kind.BUYER_PAUSED, Kind.BUYER_RESTORED)

    with django_capture_on_commit_callbacks(execute=True):
        health_force(contract=contract, open_=True, reason="invoice overdue", actor="ana")
    assert slack.messages == []

    with django_capture_on_commit_callbacks(execute=True):
        health_force(contract=contract, open_=False, reason="", actor="ana")
    (message,) = slack.messages
    assert section_fields(message)["How"] == "closed by hand by ana"


def test_the_sale_that_fills_a_cap_is_told_once(market, slack, django_capture_on_commit_callbacks):
    contract = market.contract(ping="bid=10")
    ContractCap.objects.create(contract=contract, period=CapPeriod.DAY, max_leads=2)
    slack_subscription(slack, Kind.CAP_REACHED)

    with django_capture_on_commit_callbacks(execute=True):
        assert route(market.lead()).startswith("sold")
    assert slack.messages == []
    with django_capture_on_commit_callbacks(execute=True):
        assert route(market.lead()).startswith("sold")
        assert route(market.lead()).startswith("unsold")

    (message,) = slack.messages
    company = contract.buyer.company
    assert message["text"] == f"Cap reached: {company} · {contract.name}: daily cap 2/2 reached"
    facts = section_fields(message)
    assert (facts["Cap"], facts["Used"]) == ("daily: 2 leads", "2 leads, $20.00")
    assert facts["Opens again"].endswith(" 00:00 America/Chicago")
    assert button_url(message) == f"{SITE}/admin/buyers/contract/{contract.pk}/change/"


def test_only_the_reservation_taking_the_last_room_reports_the_cap(
    market, django_capture_on_commit_callbacks
):
    contract = ContractFactory(vertical=market.vertical)
    ContractCap.objects.create(contract=contract, period=CapPeriod.DAY, max_leads=3)

    reported = []
    for _ in range(4):
        with (
            mock.patch.object(events, "_notify") as notify,
            django_capture_on_commit_callbacks(execute=True),
        ):
            cap_reserve(lead=market.lead(), contract=contract, price=Decimal("10.00"))
        reported.append([call.args[0] for call in notify.call_args_list])

    assert reported == [[], [], [Kind.CAP_REACHED], []]


def test_a_buyer_wide_budget_spent_to_below_one_more_lead_is_told(
    market, slack, django_capture_on_commit_callbacks
):
    contract = ContractFactory(vertical=market.vertical)
    BuyerCap.objects.create(buyer=contract.buyer, period=CapPeriod.MONTH, max_budget=25)
    slack_subscription(slack, Kind.CAP_REACHED, contract=contract)

    with django_capture_on_commit_callbacks(execute=True):
        cap_reserve(lead=market.lead(), contract=contract, price=Decimal("10.00"))
    assert slack.messages == []
    with django_capture_on_commit_callbacks(execute=True):
        cap_reserve(lead=market.lead(), contract=contract, price=Decimal("10.00"))

    (message,) = slack.messages
    assert message["text"] == (
        f"Cap reached: {contract.buyer.company}: buyer's monthly budget $20.00 of $25.00 spent, "
        "$5.00 left"
    )
    assert section_fields(message)["Contracts"] == "all of the buyer's (a buyer-wide cap)"
    assert button_url(message) == f"{SITE}/admin/buyers/buyer/{contract.buyer_id}/change/"


def test_leads_the_sweeper_finds_stuck_in_routing_are_told(
    market, slack, settings, django_capture_on_commit_callbacks
):
    settings.ROUTING_STALE_SECONDS = 5
    market.contract(ping="bid=10")
    slack_subscription(slack, Kind.LEADS_STUCK)
    long_ago = timezone.now() - timedelta(seconds=60)
    stuck = [market.lead(status=LeadStatus.ROUTING) for _ in range(2)]
    for lead in stuck:
        Auction.objects.filter(pk=Auction.objects.create(lead=lead).pk).update(started_at=long_ago)
    Lead.objects.filter(pk__in=[lead.pk for lead in stuck]).update(updated_at=long_ago)

    with django_capture_on_commit_callbacks(execute=True):
        assert routing_tasks.sweep_stuck_leads() == 2

    (message,) = slack.messages
    assert message["text"].startswith("Leads stuck in routing: 2 leads lost their routing worker")
    assert section_fields(message)["Leads"] == "2"
    assert button_url(message) == f"{SITE}/admin/leads/lead/?status__exact=routing"


def test_a_postback_given_up_after_its_retries_is_told_without_its_secrets(
    slack, start_receiver, django_capture_on_commit_callbacks
):
    partner = start_receiver(503)
    source = SourceFactory(
        name="Acme Media", postback_url=f"{partner.url('/outcome')}?token=partner-secret"
    )
    lead = LeadFactory(source=source, status=LeadStatus.SOLD)
    slack_subscription(slack, Kind.POSTBACK_FAILED)

    with django_capture_on_commit_callbacks(execute=True):
        assert send_postback.apply(args=[str(lead.pk)]).get() == PostbackStatus.FAILED

    assert len(partner.bodies) == 6
    (message,) = slack.messages
    assert message["text"] == (
        f"Postback given up: Acme Media was not told the outcome of lead {lead.pk}: HTTP 503"
    )
    facts = section_fields(message)
    assert (facts["URL"], facts["Attempts"]) == (partner.url("/outcome"), "6")
    assert "partner-secret" not in json.dumps(message)


def test_sources_over_their_error_or_duplicate_threshold_are_told_from_one_grouped_query(
    slack, django_capture_on_commit_callbacks
):
    noisy, small, clean = (SourceFactory(name=n) for n in ("Noisy", "Small", "Clean"))
    for number in range(30):
        status = LeadStatus.INVALID if number < 9 else LeadStatus.ACCEPTED
        errors = {"phone": ["Not a phone number."]} if number < 9 else {}
        LeadFactory(source=noisy, status=status, errors=errors)
    for _ in range(5):  # all bad, but too few leads to mean anything
        LeadFactory(source=small, status=LeadStatus.INVALID)
    for number in range(30):
        LeadFactory(
            source=clean, status=LeadStatus.DUPLICATE if number < 3 else LeadStatus.ACCEPTED
        )
    LeadFactory.create_batch(20, source=clean, status=LeadStatus.INVALID, is_test=True)
    slack_subscription(
        slack,
        Kind.SOURCE_ERROR_RATE,
        Kind.SOURCE_DUPLICATE_RATE,
        error_rate_percent=Decimal("25"),
        duplicate_rate_percent=Decimal("15"),
        rate_min_leads=20,
    )

    with (
        CaptureQueriesContext(connection) as queries,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert tasks.notify_source_rates() == 1

    grouped = [q["sql"] for q in queries if "GROUP BY" in q["sql"] and "leads_lead" in q["sql"]]
    assert len(grouped) == 1
    (message,) = slack.messages
    assert message["text"] == (
        "Source error rate high: Noisy: 30% of its leads invalid in the last 60 minutes"
    )
    assert section_fields(message) == {
        "Source": "Noisy",
        "Rate": "30% invalid: 9 of 30 leads in the last 60 minutes",
        "Failing fields": "phone (9)",
        "Alert at": "25% over 60 minutes, from 20 leads",
    }
    assert button_url(message) == (
        f"{SITE}/admin/leads/lead/?source__id__exact={noisy.pk}&status__exact=invalid"
    )
    # Five minutes later it is still noisy: counted, not told again.
    assert tasks.notify_source_rates() == 0


# --- Delivery -----------------------------------------------------------------------------------


def recorded(receiver: Receiver, *kinds: str) -> NotificationDelivery:
    """A pending delivery recorded for an event, its task not run yet."""
    slack_subscription(receiver, *kinds)
    with mock.patch.object(services, "_enqueue_delivery"):
        (delivery,) = event_dispatch(an_event())
    return delivery


def test_a_receiver_answering_500_then_200_gets_it_on_the_retry(start_receiver):
    receiver = start_receiver(500, 200)
    delivery = recorded(receiver)

    assert tasks.send_notification.apply(args=[delivery.pk]).get() == "sent"

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == (
        DeliveryStatus.SENT,
        2,
        200,
    )
    assert [(a["attempt"], a["status"]) for a in delivery.attempt_log] == [(1, 500), (2, 200)]
    assert delivery.attempt_log[0]["error"] == "HTTP 500"
    assert len(receiver.bodies) == 2
    assert receiver.bodies[0] == receiver.bodies[1]


def test_a_webhook_slack_refuses_is_not_retried(start_receiver):
    receiver = start_receiver(404, error_body="no_service")
    delivery = recorded(receiver)

    assert tasks.send_notification.apply(args=[delivery.pk]).get() == "failed"

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.error, delivery.response_body) == (
        DeliveryStatus.FAILED,
        1,
        "HTTP 404",
        "no_service",
    )


def test_a_receiver_that_keeps_failing_is_given_up_after_the_last_attempt(start_receiver):
    receiver = start_receiver(503)
    delivery = recorded(receiver)

    assert tasks.send_notification.apply(args=[delivery.pk]).get() == "failed"

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 6)
    assert len(receiver.bodies) == services.MAX_ATTEMPTS


@pytest.mark.parametrize("retries", range(services.MAX_ATTEMPTS))
def test_the_backoff_grows_and_stays_below_the_broker_visibility_timeout(
    start_receiver, settings, retries
):
    delivery = recorded(start_receiver(503))
    with mock.patch.object(tasks.send_notification, "retry") as retry:
        tasks.send_notification.apply(args=[delivery.pk], retries=retries)

    countdown = retry.call_args.kwargs["countdown"]
    ceiling = min(channels.RETRY_BACKOFF_CAP_S, 5 * 2 ** (retries + 1))
    assert ceiling / 2 <= countdown <= ceiling
    assert countdown < settings.REDIS_VISIBILITY_TIMEOUT_S  # Redis redelivers after it


def test_a_delivery_task_delivered_twice_sends_once(slack):
    delivery = recorded(slack)

    assert tasks.send_notification(delivery.pk) == "sent"
    assert tasks.send_notification(delivery.pk) == "skipped"
    assert len(slack.bodies) == 1


def test_a_delivery_whose_task_was_lost_is_queued_again_by_the_sweep(slack):
    delivery = recorded(slack)
    NotificationDelivery.objects.filter(pk=delivery.pk).update(
        created_at=timezone.now() - timedelta(minutes=11)
    )

    assert services.notifications_sweep()["requeued"] == 1

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT
    assert len(slack.messages) == 1


def test_an_email_subscription_sends_to_the_users_address(
    market, start_simulator, django_capture_on_commit_callbacks
):
    user = User.objects.create_user("ana", email="ana@leadswitch.example", is_staff=True)
    subscription = NotificationSubscription.objects.create(
        name="Ana: buyers",
        channel=NotificationChannel.EMAIL,
        user=user,
        kinds=[Kind.BUYER_PAUSED],
    )
    broken = market.contract(sim=start_simulator(), ping="fail=1", breaker_failures=1)

    with django_capture_on_commit_callbacks(execute=True):
        route(market.lead())

    (message,) = mail.outbox
    assert message.to == ["ana@leadswitch.example"]
    assert message.subject == (
        f"[Leadswitch] Buyer auto-paused: {broken.buyer.company} · {broken.name} gets no leads: "
        "1 consecutive failures"
    )
    assert "Why: 1 consecutive failures\n" in message.body
    assert f"Open in the admin: {SITE}/admin/buyers/contract/{broken.pk}/change/" in message.body
    manage = f"{SITE}/admin/notifications/notificationsubscription/{subscription.pk}/change/"
    assert manage in message.body
    delivery = NotificationDelivery.objects.get()
    assert (delivery.status, delivery.response_status, delivery.recipient) == (
        DeliveryStatus.SENT,
        250,
        "ana@leadswitch.example",
    )


def test_slack_markup_in_a_name_is_escaped_so_nobody_pages_the_channel(slack):
    subscription = slack_subscription(slack)
    message = messages.render_slack(
        subscription=subscription, event=an_event(headline="<!channel> & friends")
    )

    assert message["text"] == "Buyer auto-paused: &lt;!channel&gt; &amp; friends"
    assert "<!channel>" not in json.dumps(message)


@pytest.fixture
def worker_on_both_queues(request, tmp_path) -> Iterator[Service]:
    """A real worker that routes (the test's own queue) and sends notifications (Celery's
    default queue, where a worker's own tasks go)."""
    queue = request.getfixturevalue("routing_queue")
    worker = worker_start(
        tmp_path / "worker.log",
        name=f"{queue}-notify@%h",
        queues=f"{queue},celery",
        concurrency=4,
        env={"SITE_URL": SITE},
    )
    yield worker
    worker.stop()


@pytest.mark.postgres
@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
@needs_broker
def test_a_real_worker_that_opens_a_breaker_tells_slack_through_the_broker(
    market, start_simulator, slack, worker_on_both_queues
):
    broken = market.contract(sim=start_simulator(), ping="fail=1", breaker_failures=1)
    market.contract(ping="bid=10")
    slack_subscription(slack, Kind.BUYER_PAUSED)
    lead = market.lead()

    assert routing_enqueue([lead.pk]) == 1
    wait_until(
        lambda: len(slack.bodies) == 1,
        seconds=60,
        worker=worker_on_both_queues,
        what="the Slack message",
    )

    (message,) = slack.messages
    assert message["text"].startswith(f"Buyer auto-paused: {broken.buyer.company}")
    assert button_url(message) == f"{SITE}/admin/buyers/contract/{broken.pk}/change/"
    delivery = NotificationDelivery.objects.get()
    wait_until(
        lambda: NotificationDelivery.objects.filter(status=DeliveryStatus.SENT).exists(),
        seconds=10,
        worker=worker_on_both_queues,
        what="the delivery recorded as sent",
    )
    assert delivery.event_key == f"buyer_paused:contract:{broken.pk}"


# --- A notifier that fails costs its caller nothing --------------------------------------------


def test_a_failing_notifier_never_fails_routing(
    market, start_simulator, slack, django_capture_on_commit_callbacks, caplog
):
    broken = market.contract(sim=start_simulator(), ping="fail=1", breaker_failures=1)
    good = market.contract(ping="bid=10")
    ContractCap.objects.create(contract=good, period=CapPeriod.DAY, max_leads=1)
    slack_subscription(slack)

    with (
        mock.patch.object(services, "notification_dispatch", side_effect=RuntimeError),
        django_capture_on_commit_callbacks(execute=True),
    ):
        lead = market.lead()
        assert route(lead).startswith("sold")

    assert lead.status == LeadStatus.SOLD
    assert ContractHealth.objects.get(contract=broken).status == HealthStatus.OPEN
    # In-process, the failed dispatch is logged as a worker would log it: the breaker, the cap.
    assert len(failed_dispatches(caplog)) == 2
    assert slack.messages == []


def test_a_broker_that_refuses_the_notification_costs_the_caller_nothing(
    market, start_simulator, django_capture_on_commit_callbacks
):
    broken = market.contract(sim=start_simulator(), ping="fail=1", breaker_failures=1)
    market.contract(ping="bid=10")
    refused = mock.patch.object(
        tasks.dispatch_notification, "delay", side_effect=ConnectionError("broker down")
    )

    with refused, django_capture_on_commit_callbacks(execute=True):
        assert route(market.lead()).startswith("sold")

    assert ContractHealth.objects.get(contract=broken).status == HealthStatus.OPEN


@pytest.mark.django_db(transaction=True)
def test_a_failing_notifier_never_fails_intake(client, partner, buyer_contract, slack, caplog):
    _, key = partner
    ContractCap.objects.create(contract=buyer_contract, period=CapPeriod.DAY, max_leads=1)
    slack_subscription(slack)

    with mock.patch.object(services, "notification_dispatch", side_effect=RuntimeError):
        response = client.post(
            "/api/v1/leads/",
            data=json.dumps(auto_lead(1)),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {key}",
            HTTP_PREFER="wait=5",
        )

    assert response.status_code == 201, response.content
    assert response.json()["status"] == "sold"
    assert failed_dispatches(caplog)
    assert slack.messages == []


def failed_dispatches(caplog) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno == logging.ERROR and "dispatch_notification" in r.getMessage()
    ]


# --- Admin -------------------------------------------------------------------------------------


def subscription_form(**fields: Any) -> dict[str, Any]:
    return {
        "name": "Ops on-call",
        "active": "on",
        "kinds": [Kind.BUYER_PAUSED, Kind.CAP_REACHED],
        "channel": NotificationChannel.SLACK,
        "user": "",
        "email": "",
        "slack_webhook_url": "",
        "buyer": "",
        "contract": "",
        "source": "",
        "error_rate_percent": "20",
        "duplicate_rate_percent": "30",
        "rate_window_minutes": "60",
        "rate_min_leads": "20",
        "dedup_minutes": "60",
        **fields,
    }


ADD_URL = "admin:notifications_notificationsubscription_add"
CHANGE_URL = "admin:notifications_notificationsubscription_change"
CHANGELIST_URL = "admin:notifications_notificationsubscription_changelist"


@pytest.mark.parametrize(
    ("url", "error"),
    [
        (
            "http://169.254.169.254/latest/meta-data",
            "The platform may not call this address: 169.254.169.254 is a link-local "
            "(cloud metadata) address, which the platform never connects to.",
        ),
        (
            "https://10.1.2.3/services/T/B/x",
            "The platform may not call this address: 10.1.2.3 is a private address, which the "
            "platform never connects to.",
        ),
        ("hooks.slack.com/services", "Enter the full URL Slack gave, starting with https://."),
        ("", "A Slack subscription needs its webhook URL."),
    ],
)
def test_the_admin_refuses_a_webhook_the_outbound_guard_refuses(admin_client, url, error):
    response = admin_client.post(reverse(ADD_URL), subscription_form(slack_webhook_url=url))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"slack_webhook_url": [error]}
    assert not NotificationSubscription.objects.exists()


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({}, {"email": ["Give a user or an e-mail address."]}),
        (
            {"kinds": [], "email": "ops@leadswitch.example"},
            {"kinds": ["Choose at least one event."]},
        ),
        (
            {"email": "ops@leadswitch.example", "slack_webhook_url": "https://hooks.slack.com/x"},
            {"slack_webhook_url": ["An e-mail subscription has no webhook URL."]},
        ),
    ],
)
def test_the_admin_says_what_an_email_subscription_lacks(admin_client, fields, errors):
    data = subscription_form(channel=NotificationChannel.EMAIL, **fields)

    response = admin_client.post(reverse(ADD_URL), data)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == errors


def test_the_admin_keeps_a_webhook_encrypted_and_never_shows_it_back(admin_client, slack):
    response = admin_client.post(
        reverse(ADD_URL), subscription_form(slack_webhook_url=slack.url(SLACK_PATH))
    )
    assert response.status_code == 302
    subscription = NotificationSubscription.objects.get()
    change_url = reverse(
        "admin:notifications_notificationsubscription_change", args=[subscription.pk]
    )

    page = admin_client.get(change_url).content.decode()
    list_page = admin_client.get(reverse(CHANGELIST_URL)).content.decode()

    assert "s3cr3tT0ken" not in page + list_page
    assert "services/T0001/••••" in page
    with connection.cursor() as cursor:
        table = connection.ops.quote_name(NotificationSubscription._meta.db_table)
        sql = f"SELECT slack_webhook_url FROM {table} WHERE id = %s"  # noqa: S608 (our table)
        cursor.execute(sql, [subscription.pk])
        assert cursor.fetchone()[0].startswith("fernet:")
    # Saving the page again without typing the URL keeps it.
    data = subscription_form(name="Renamed")
    assert admin_client.post(change_url, data).status_code == 302
    subscription.refresh_from_db()
    assert (subscription.name, subscription.slack_webhook_url) == ("Renamed", slack.url(SLACK_PATH))


def test_the_admin_test_action_posts_to_the_webhook_and_says_how_it_went(admin_client, slack):
    subscription = slack_subscription(slack)

    response = admin_client.post(
        reverse(CHANGELIST_URL),
        {"action": "send_test", "_selected_action": [subscription.pk]},
        follow=True,
    )

    messages = [str(m) for m in response.context["messages"]]
    assert messages == [f"Ops on-call: test sent to {subscription.recipient}."]
    (message,) = slack.messages
    assert message["blocks"][0]["text"]["text"] == "Test notification"
    delivery = NotificationDelivery.objects.get()
    assert delivery.kind == Kind.TEST
    delivery_page = admin_client.get(
        reverse("admin:notifications_notificationdelivery_change", args=[delivery.pk])
    )
    assert delivery_page.status_code == 200
    assert "s3cr3tT0ken" not in delivery_page.content.decode()


def test_ops_configure_subscriptions_sales_only_read_them_masked_and_others_see_nothing(slack):
    subscription = slack_subscription(slack)
    change_url = reverse(
        "admin:notifications_notificationsubscription_change", args=[subscription.pk]
    )
    pages = {}
    for role in ("Ops", "Sales", None):
        client = Client()
        client.force_login(staff_user(role))
        pages[role] = client.get(change_url)
        if role == "Ops":
            added = client.post(
                reverse(ADD_URL),
                subscription_form(name="Ops e-mail", channel="email", email="ops@example.com"),
            )
            assert added.status_code == 302

    assert {role: page.status_code for role, page in pages.items()} == {
        "Ops": 200,
        "Sales": 200,
        None: 403,
    }
    sales_page = pages["Sales"].content.decode()
    assert "s3cr3tT0ken" not in sales_page
    assert "services/T0001/••••" in sales_page
    assert 'name="slack_webhook_url"' not in sales_page
    assert NotificationSubscription.objects.filter(name="Ops e-mail").exists()
