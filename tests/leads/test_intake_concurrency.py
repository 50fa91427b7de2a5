"""Intake under concurrency and failure, on PostgreSQL with real threads and a real worker.

Identical leads racing each other, one Idempotency-Key sent twenty times at once, a broker that
is down when a lead arrives, and a `Prefer: wait` answered by the routing run of a real Celery
worker.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.test import Client

from buyers.models import Contract, ContractStatus
from leads import services
from leads.models import IdempotencyRecord, Lead, LeadStatus, Source, Vertical
from leads.tasks import sweep_waiting_leads
from routing.models import Sale
from tests.buyers.test_cap_races import celery_queue, celery_worker  # noqa: F401 (fixtures)
from tests.conftest import celery_eager
from tests.leads.conftest import LEADS, auto_lead, sold_answer, submit
from tests.leads.factories import SourceFactory, api_key_for
from tests.threads import Go, all_at_once
from tests.workers import needs_broker

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def together(count: int, request: Callable[[Client], Any]) -> list[Any]:
    """Run `request` from `count` threads released together, one client and connection each."""

    def run(n: int, go: Go) -> Any:
        client = Client()
        go()
        return request(client)

    return all_at_once(count, run, who="a request")


@pytest.fixture
def rival(demo) -> tuple[Source, str]:
    source = SourceFactory(verticals=list(Vertical.objects.all()))
    return source, api_key_for(source)


@pytest.fixture
def quiet_routing(eager_celery, demo) -> None:
    """Route in-process and quickly: no contract is eligible, so every lead ends unsold."""
    Contract.objects.update(status=ContractStatus.PAUSED)


@pytest.mark.usefixtures("quiet_routing")
@pytest.mark.parametrize("count", [2, 20])
def test_identical_leads_submitted_at_the_same_moment_are_accepted_exactly_once(partner, count):
    _, key = partner
    body = json.dumps(auto_lead(1))

    answers = together(count, lambda client: submit(client, key, body))

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [202] + [409] * (count - 1)
    accepted = next(a.json()["id"] for a in answers if a.status_code == 202)
    assert {a.json()["duplicate_of"] for a in answers if a.status_code == 409} == {accepted}
    assert Lead.objects.exclude(status=LeadStatus.DUPLICATE).count() == 1
    assert set(
        Lead.objects.filter(status=LeadStatus.DUPLICATE).values_list("duplicate_of", flat=True)
    ) == {Lead.objects.get(pk=accepted).pk}
    assert Lead.objects.count() == count


@pytest.mark.usefixtures("quiet_routing")
def test_leads_sharing_only_a_phone_racing_from_two_sources_are_accepted_once(partner, rival):
    bodies = [
        (key, json.dumps(auto_lead(2, email=f"someone{n}@example.com")))
        for n, key in enumerate([partner[1], rival[1]] * 5)
    ]

    answers = together(len(bodies), lambda client: submit(client, *bodies.pop()))

    assert sorted(a.status_code for a in answers) == [202] + [409] * 9
    assert Lead.objects.filter(status=LeadStatus.DUPLICATE).count() == 9


@pytest.mark.usefixtures("quiet_routing")
def test_one_idempotency_key_sent_twenty_times_at_once_makes_one_lead_and_one_answer(partner):
    _, key = partner
    body = json.dumps(auto_lead(3))

    answers = together(20, lambda client: submit(client, key, body, idempotency_key="order-3"))

    assert {a.status_code for a in answers} == {202}
    assert len({a.content for a in answers}) == 1
    assert len({a["Location"] for a in answers}) == 1
    assert sum(a.has_header("Idempotent-Replayed") for a in answers) == 19
    lead = Lead.objects.get()
    assert answers[0].json()["id"] == str(lead.pk)
    assert IdempotencyRecord.objects.get().lead == lead


# --- The broker is down ----------------------------------------------------------------------


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def broker_down(settings) -> Iterator[None]:
    """Publish to a broker that refuses connections; restore the real one afterwards."""
    from config.celery import app

    saved = app.conf.broker_write_url
    with celery_eager(settings, eager=False):
        # Publishing uses the write URL; CELERY_BROKER_URL in the environment would override
        # broker_url itself.
        app.conf.broker_write_url = f"redis://127.0.0.1:{closed_port()}/0"
        app.amqp._producer_pool = None  # pools are per connection: drop the one to the broker
        try:
            yield
        finally:
            app.conf.broker_write_url = saved
            app.amqp._producer_pool = None
            services._broker_down_until = 0.0  # this process may publish again at once


@pytest.mark.usefixtures("eager_celery")
def test_with_the_broker_down_a_lead_is_accepted_and_the_sweeper_routes_it_later(
    client, partner, buyer_contract, settings, caplog
):
    _, key = partner

    with broker_down(settings), caplog.at_level(logging.WARNING, logger="leads.services"):
        started = time.monotonic()
        response = submit(client, key, auto_lead(4))
        took = time.monotonic() - started

    assert response.status_code == 202, response.content
    assert took < 3, "the partner was kept waiting on the broker"
    assert [r.getMessage() for r in caplog.records if r.name == "leads.services"] == [
        "routing enqueue failed; the sweeper will retry"
    ]
    lead = Lead.objects.get()
    assert response.json() == {
        "id": str(lead.pk),
        "status": "accepted",
        "url": f"http://testserver{LEADS}{lead.pk}/",
    }
    assert lead.status == LeadStatus.ACCEPTED
    assert not Sale.objects.exists()

    # Not yet: a lead this fresh may still be on its way to a worker.
    assert sweep_waiting_leads() == 0
    settings.ROUTING_SWEEP_AFTER_SECONDS = 0
    assert sweep_waiting_leads() == 1

    lead.refresh_from_db()
    assert (lead.status, str(lead.sale_price), str(lead.payout)) == (
        LeadStatus.SOLD,
        "12.50",
        "5.00",
    )
    assert Sale.objects.get().contract == buyer_contract
    assert sweep_waiting_leads() == 0


@pytest.mark.usefixtures("eager_celery")
def test_after_a_failed_publish_intake_leaves_routing_to_the_sweeper_for_a_few_seconds(
    client, partner, buyer_contract, settings, caplog
):
    _, key = partner

    with broker_down(settings), caplog.at_level(logging.WARNING, logger="leads.services"):
        first = submit(client, key, auto_lead(5))
        started = time.monotonic()
        second = submit(client, key, auto_lead(6))
        took = time.monotonic() - started

    assert (first.status_code, second.status_code) == (202, 202)
    assert took < 1, "the second partner was kept waiting on a broker known to be down"
    assert [r.getMessage() for r in caplog.records if r.name == "leads.services"] == [
        "routing enqueue failed; the sweeper will retry"
    ]
    assert Lead.objects.filter(status=LeadStatus.ACCEPTED).count() == 2
    settings.ROUTING_SWEEP_AFTER_SECONDS = 0
    assert sweep_waiting_leads() == 2


# --- Through a real worker -------------------------------------------------------------------


@pytest.fixture
def routing_worker(celery_worker, celery_queue, monkeypatch):  # noqa: F811 (imported fixtures)
    """A real worker taking the routing runs, from a queue of its own, ready to work."""
    from config.celery import app

    route_lead = app.tasks["routing.tasks.route_lead"]
    monkeypatch.setattr(route_lead, "queue", celery_queue, raising=False)
    monkeypatch.setattr(route_lead, "_exec_options", None)  # Celery caches the task's options
    name = f"{celery_queue}@{socket.gethostname()}"
    deadline = time.monotonic() + 60
    while not app.control.ping(destination=[name], timeout=0.5):
        assert celery_worker.alive(), f"the worker died:\n{celery_worker.output()}"
        up = time.monotonic() < deadline
        assert up, f"the worker is not up after 60 s:\n{celery_worker.output()}"
    return celery_worker


@needs_broker
def test_prefer_wait_is_answered_when_a_real_worker_sells_the_lead(
    client, partner, buyer_contract, routing_worker
):
    _, key = partner

    started = time.monotonic()
    response = submit(client, key, auto_lead(5), prefer="wait=10")
    took = time.monotonic() - started

    assert response.status_code == 201, f"{response.content!r}\n{routing_worker.output()}"
    lead = Lead.objects.get()
    assert response.json() == sold_answer(lead)
    # Woken by the worker's outcome message, not by the deadline.
    assert took < 5
    assert Sale.objects.get(lead=lead).contract == buyer_contract
