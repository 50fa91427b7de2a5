"""The broker and the database fail under the platform: the broker (Redis, or a RabbitMQ node)
killed and restarted during intake and routing (intake goes on while it is down), every
application connection to PostgreSQL terminated mid-routing, and a private PostgreSQL server
killed outright mid-routing and started again. The sweepers bring every lead to a final state
once the service is back."""

from __future__ import annotations

import time
from collections import Counter

import psycopg
import pytest
import requests
from django.core.management import call_command
from django.db import connection

from leads.models import Lead, LeadStatus
from tests.faults import invariants
from tests.faults.conftest import PATIENT, submission, submit, wait_all_final, wait_for_posts
from tests.leads.factories import api_key_for
from tests.workers import final_count

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(300),
]
RECOVERY_S = 60


@pytest.fixture
def buyers(market, start_simulator):
    slow, fast = start_simulator(), start_simulator()
    market.contract(sim=slow, ping="bid=20", post="delay_ms=200", **PATIENT)
    market.contract(sim=fast, ping="bid=10", **PATIENT)
    return [slow, fast]


# Redis (broker and cache) restarts empty: the sweepers enqueue again what it lost. A RabbitMQ
# node restarts with its quorum queues: what it had confirmed is delivered again.
@pytest.mark.parametrize("stack", ["redis", "rabbitmq-node"], indirect=True)
def test_the_broker_killed_during_intake_and_routing_loses_no_lead(stack, market, buyers):
    broker = stack.services[-1]  # the last process the fixture started
    stack.start_web()
    # kombu can exit a worker whose broker connection drops mid-acknowledgement (celery/kombu
    # #582, #659): in production a supervisor starts it again, as this one does.
    stack.start_worker(concurrency=16, supervised=True)
    stack.start_beat()
    before = submit(stack, market, range(7000, 7100))
    wait_for_posts(stack, buyers[0], 20, what="routing under way")
    broker.kill()
    down_at = time.monotonic()
    # The broker (and, on Redis, the shared cache) is down: partners' leads are still taken and
    # stored.
    during = submit(stack, market, range(7100, 7150))
    stack.start_broker()
    outage = time.monotonic() - down_at
    label = f"{stack.broker} killed"

    took = wait_all_final(
        stack,
        before + during,
        seconds=RECOVERY_S,
        what=f"every lead final within {RECOVERY_S} s of the broker coming back",
    )

    result = invariants.check(before + during, buyers, label=label)
    statuses = Counter(Lead.objects.filter(pk__in=before + during).values_list("status", flat=True))
    print(
        f"[{label}] {len(before)} leads before and {len(during)} during a {outage:.1f} s "
        f"outage, all answered 202; every lead final {took:.1f} s after the broker came back; "
        f"workers restarted by their supervisor: {stack.restarts}; {dict(statuses)}"
    )
    assert not result.broken
    assert statuses == {LeadStatus.SOLD: len(before + during)}  # none failed for want of a broker


def test_postgres_connections_terminated_mid_routing_lose_no_lead(stack, market, buyers):
    stack.start_web()
    lead_ids = submit(stack, market, range(8000, 8120))
    stack.start_worker(concurrency=16, supervised=True)
    stack.start_beat()
    wait_for_posts(stack, buyers[0], 20, what="routing under way")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        terminated = cursor.fetchone()[0]

    took = wait_all_final(
        stack, lead_ids, seconds=RECOVERY_S, what=f"every lead final within {RECOVERY_S} s"
    )

    result = invariants.check(lead_ids, buyers, label="PostgreSQL connections terminated")
    print(
        f"[PostgreSQL connections terminated] {terminated} connections cut mid-routing; all "
        f"{len(lead_ids)} leads final {took:.1f} s later"
    )
    assert not result.broken
    # A run that lost its connection is retried, not failed: the database was at fault.
    assert set(Lead.objects.filter(pk__in=lead_ids).values_list("status", flat=True)) == {
        LeadStatus.SOLD
    }


@pytest.fixture
def private_database(stack):
    """Point this test, and every process the scenario starts, at a PostgreSQL server of the
    scenario's own (migrated afresh), so that it can be killed without touching the machine's."""
    stack.start_postgres()
    with psycopg.connect(stack.postgres.url("postgres"), autocommit=True) as admin:
        admin.execute("CREATE DATABASE leadswitch")
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(
        HOST="127.0.0.1", PORT=str(stack.postgres.port), NAME="leadswitch", USER="postgres"
    )
    connection.settings_dict["PASSWORD"] = ""
    try:
        call_command("migrate", verbosity=0)
        yield stack.postgres
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


def test_postgres_server_killed_mid_routing_loses_no_lead(private_database, stack, market, buyers):
    postgres = next(s for s in stack.services if s.name == "postgres")
    stack.start_web()
    lead_ids = submit(stack, market, range(9000, 9120))
    stack.start_worker(concurrency=16, supervised=True)
    stack.start_beat()
    wait_for_posts(stack, buyers[0], 20, what="routing under way")
    key = api_key_for(market.source)
    in_flight = len(lead_ids) - final_count(lead_ids)
    connection.close()
    postgres.kill()  # SIGKILL to the postmaster and every backend: no shutdown at all
    down_at = time.monotonic()

    # While the database is down a partner is told to come back, never handed a 500 or a 202
    # for a lead that was not stored.
    refused = [
        requests.post(
            f"{stack.web_url}/api/v1/leads/",
            json=submission(number, vertical=market.vertical.slug),
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        for number in range(9120, 9130)
    ]
    time.sleep(max(0.0, 5 - (time.monotonic() - down_at)))
    stack.start_postgres()  # the same data directory: the server recovers from its WAL
    outage = time.monotonic() - down_at
    assert {r.status_code for r in refused} == {503}, [r.text for r in refused]
    assert all(r.headers["Content-Type"] == "application/problem+json" for r in refused)
    assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
    # The partner retries as told, and those leads are taken now.
    lead_ids += submit(stack, market, range(9120, 9130))

    took = wait_all_final(
        stack,
        lead_ids,
        seconds=RECOVERY_S,
        what=f"every lead final within {RECOVERY_S} s of PostgreSQL coming back",
    )

    result = invariants.check(lead_ids, buyers, label="PostgreSQL server killed")
    statuses = Counter(Lead.objects.filter(pk__in=lead_ids).values_list("status", flat=True))
    print(
        f"[PostgreSQL server killed] a {outage:.1f} s outage with {in_flight} leads not yet "
        f"final; {len(refused)} leads "
        f"sent meanwhile answered 503 with Retry-After and taken on retry; all {len(lead_ids)} "
        f"leads final {took:.1f} s after the server came back; {dict(statuses)}"
    )
    assert not result.broken
    assert statuses == {LeadStatus.SOLD: len(lead_ids)}
