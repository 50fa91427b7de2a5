"""The broker and the database fail under the platform: Redis killed and restarted during intake
and routing (intake goes on while it is down), and every application connection to PostgreSQL
terminated mid-routing. The sweepers bring every lead to a final state once the service is back."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from django.db import connection

from leads.models import FINAL_STATUSES, Lead, LeadStatus
from tests.faults import invariants
from tests.faults.conftest import PATIENT, submit
from tests.faults.harness import wait_until

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(300),
]
RECOVERY_S = 60


def final_count(lead_ids) -> int:
    return Lead.objects.filter(pk__in=lead_ids, status__in=FINAL_STATUSES).count()


@pytest.fixture
def buyers(market, start_simulator):
    slow, fast = start_simulator(), start_simulator()
    market.contract(sim=slow, ping="bid=20", post="delay_ms=200", **PATIENT)
    market.contract(sim=fast, ping="bid=10", **PATIENT)
    return [slow, fast]


def test_redis_killed_during_intake_and_routing_loses_no_lead(stack, market, buyers):
    redis = stack.services[0]
    stack.start_web()
    # kombu can exit a worker whose broker connection drops mid-acknowledgement (celery/kombu
    # #582, #659): in production a supervisor starts it again, as this one does.
    stack.start_worker(concurrency=16, supervised=True)
    stack.start_beat()
    before = submit(stack, market, range(7000, 7100))
    wait_until(
        lambda: buyers[0].ledger.requests["post"] >= 20,
        seconds=60,
        what="routing under way",
        logs=stack.logs,
    )
    redis.kill()
    down_at = time.monotonic()
    # The broker (and the shared cache) is down: partners' leads are still taken and stored.
    during = submit(stack, market, range(7100, 7150))
    stack.start_redis()
    outage = time.monotonic() - down_at

    took = wait_until(
        lambda: final_count(before + during) == len(before + during),
        seconds=RECOVERY_S,
        what=f"every lead final within {RECOVERY_S} s of Redis coming back",
        logs=stack.logs,
    )

    result = invariants.check(before + during, buyers, label="Redis killed")
    statuses = Counter(Lead.objects.filter(pk__in=before + during).values_list("status", flat=True))
    print(
        f"[Redis killed] {len(before)} leads before and {len(during)} during a {outage:.1f} s "
        f"outage, all answered 202; every lead final {took:.1f} s after Redis came back; "
        f"workers restarted by their supervisor: {stack.restarts}; {dict(statuses)}"
    )
    assert not result.broken
    assert statuses == {LeadStatus.SOLD: len(before + during)}  # none failed for want of Redis


def test_postgres_connections_terminated_mid_routing_lose_no_lead(stack, market, buyers):
    stack.start_web()
    lead_ids = submit(stack, market, range(8000, 8120))
    stack.start_worker(concurrency=16, supervised=True)
    stack.start_beat()
    wait_until(
        lambda: buyers[0].ledger.requests["post"] >= 20,
        seconds=60,
        what="routing under way",
        logs=stack.logs,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        terminated = cursor.fetchone()[0]

    took = wait_until(
        lambda: final_count(lead_ids) == len(lead_ids),
        seconds=RECOVERY_S,
        what=f"every lead final within {RECOVERY_S} s",
        logs=stack.logs,
    )

    result = invariants.check(lead_ids, buyers, label="PostgreSQL connections terminated")
    print(
        f"[PostgreSQL connections terminated] {terminated} connections cut mid-routing; all "
        f"{len(lead_ids)} leads final {took:.1f} s later"
    )
    assert not result.broken
