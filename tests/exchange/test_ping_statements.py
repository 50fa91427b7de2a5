"""The inbound ping's store (exchange/store.py): what the seller waits for besides its buyers."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from exchange.models import InboundPing, PingAttempt, PingStatus
from routing.breaker import BreakerStatus
from routing.models import AttemptOutcome, ContractHealth


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("rules_cached_as_in_production")
def test_a_warm_ping_to_twenty_buyers_is_two_round_trips(seller, market):
    for _ in range(20):
        market.contract(ping="bid=10")
    seller.ping()  # loads the vertical's rules and delivery set-up

    with CaptureQueriesContext(connection) as queries:
        answer = seller.ping().json()

    # The breakers eligibility reads, then one statement: the ping, its 20 attempts and the
    # breakers its answers count towards. No BEGIN or COMMIT.
    assert len(queries) == 2, [q["sql"][:80] for q in queries]
    assert queries[1]["sql"].startswith("WITH stored AS (INSERT INTO")
    ping = InboundPing.objects.get(pk=answer["ping_id"])
    assert (ping.status, ping.eligible_count) == (PingStatus.BID, 20)
    assert ping.attempts.filter(outcome=AttemptOutcome.BID).count() == 20


@pytest.mark.django_db(transaction=True)
def test_the_ping_and_its_attempts_are_stored_as_answered(seller, market):
    market.contract(ping="bid=12.50")
    failing = market.contract(ping="fail=1")

    answer = seller.ping().json()

    ping = InboundPing.objects.get(pk=answer["ping_id"])
    assert ping.status == PingStatus.BID
    assert ping.price == Decimal("4.00")
    assert ping.duration_ms is not None
    assert len(ping.explanation) == 2
    assert len(ping.held_bids) == 1
    attempts = {a.contract_id: a for a in PingAttempt.objects.filter(ping=ping)}
    assert attempts[failing.pk].response_status == 500
    assert sorted(a.outcome for a in attempts.values()) == [
        AttemptOutcome.BID,
        AttemptOutcome.DECLINED,
    ]
    assert all(a.url and a.request_body and a.latency_ms is not None for a in attempts.values())


@pytest.mark.django_db(transaction=True)
def test_a_buyer_failing_a_ping_counts_towards_its_breaker(seller, market):
    failing = market.contract(ping="fail=1", breaker_failures=2)
    market.contract(ping="bid=9")

    seller.ping()
    assert ContractHealth.objects.get(contract=failing).status == BreakerStatus.CLOSED
    seller.ping()

    assert ContractHealth.objects.get(contract=failing).status == BreakerStatus.OPEN
