"""The soak: a steady stream of leads for many minutes while every fault of the proving ground
strikes in turn, then the same invariants over every lead of the run.

Skipped unless SOAK_MINUTES is set (it is a documented command, not part of CI):

    SOAK_MINUTES=15 ./dev test tests/faults/test_soak.py -s

SOAK_RATE (leads per second, default 10) and SOAK_FAULT_EVERY_S (default 60) tune it. The faults,
in rotation: prefork children SIGKILLed, the whole thread worker SIGKILLed, a worker SIGTERMed,
Redis killed for 5 s, every PostgreSQL connection terminated, and the best buyer down for two
minutes. Workers run supervised, as in production. The partner retries what it is told to retry
(503, 429, connection errors), as a partner's client would.
"""

from __future__ import annotations

import os
import signal
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
import requests
from django.db import connection

from buyers.models import CapPeriod, ContractCap
from leads.models import Lead, LeadStatus
from routing.models import Auction, Sale, SaleStatus
from simulator.server import SimulatorThread
from tests.faults import invariants
from tests.faults.conftest import PATIENT, submission, wait_all_final
from tests.faults.harness import Stack, free_port
from tests.leads.factories import api_key_for

SOAK_S = float(os.environ.get("SOAK_MINUTES", "0")) * 60
RATE = float(os.environ.get("SOAK_RATE", "10"))
FAULT_EVERY_S = float(os.environ.get("SOAK_FAULT_EVERY_S", "60"))
CAP = 100
RETRIED = {429, 503}

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not SOAK_S, reason="the soak runs only when SOAK_MINUTES is set"),
    pytest.mark.timeout(int(SOAK_S) + 900),
]


class Partner(threading.Thread):
    """Submit RATE leads a second until stopped, retrying what a partner is told to retry."""

    def __init__(self, stack: Stack, market) -> None:
        super().__init__(daemon=True)
        self.url = f"{stack.web_url}/api/v1/leads/"
        self.key = api_key_for(market.source)
        self.vertical = market.vertical.slug
        self.stopping = threading.Event()
        self.accepted: list[str] = []
        self.answers: Counter[str] = Counter()
        self.latencies_ms: list[float] = []

    def run(self) -> None:
        session = requests.Session()
        number = 100_000
        started = time.monotonic()
        while not self.stopping.is_set():
            number += 1
            self._submit(session, number)
            # Keep the rate: sleep until this lead's slot in the schedule.
            time.sleep(max(0.0, started + (number - 100_000) / RATE - time.monotonic()))

    def _submit(self, session: requests.Session, number: int) -> None:
        body = submission(number, vertical=self.vertical)
        headers = {"Authorization": f"Bearer {self.key}", "Idempotency-Key": f"soak-{number}"}
        for _ in range(60):
            began = time.monotonic()
            try:
                response = session.post(self.url, json=body, headers=headers, timeout=30)
            except requests.RequestException as error:
                self.answers[type(error).__name__] += 1
                time.sleep(1)
                continue
            self.answers[str(response.status_code)] += 1
            if response.status_code in RETRIED:
                time.sleep(int(response.headers.get("Retry-After", "1")))
                continue
            self.latencies_ms.append((time.monotonic() - began) * 1000)
            assert response.status_code == 202, response.text
            self.accepted.append(response.json()["id"])
            return
        raise AssertionError(f"lead {number} was never accepted")


def test_soak(stack, market, start_simulator):
    flaky_port = free_port()
    flaky_buyer = SimulatorThread(port=flaky_port).start()
    buyers = [flaky_buyer]
    market.contract(
        sim=flaky_buyer, ping="bid=30", breaker_cool_down_s=5, breaker_max_cool_down_s=60, **PATIENT
    )
    capped_buyer, slow_buyer, steady_buyer = (start_simulator() for _ in range(3))
    buyers += [capped_buyer, slow_buyer, steady_buyer]
    capped = market.contract(sim=capped_buyer, ping="bid=25", **PATIENT)
    ContractCap.objects.create(contract=capped, period=CapPeriod.DAY, max_leads=CAP)
    market.contract(sim=slow_buyer, ping="bid=20", post="delay_ms=300", **PATIENT)
    market.contract(sim=steady_buyer, ping="bid=10", **PATIENT)

    redis = stack.services[0]
    stack.start_web(workers=2)
    stack.start_worker(pool="prefork", concurrency=4, supervised=True)
    stack.start_worker(concurrency=8, supervised=True)
    prefork, threads = 0, 1  # their places among the supervised workers
    stack.start_beat()

    def kill_prefork_children() -> str:
        children = stack.supervised(prefork).children()
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        return f"SIGKILL of {len(children)} prefork children"

    def kill_worker() -> str:
        stack.supervised(threads).kill()
        return "SIGKILL of a whole worker (its supervisor starts it again)"

    def term_worker() -> str:
        stack.supervised(threads).process.send_signal(signal.SIGTERM)
        return "SIGTERM of a worker"

    def redis_down() -> str:
        nonlocal redis
        redis.kill()
        time.sleep(5)
        redis = stack.start_redis()
        return "Redis killed for 5 s"

    def postgres_cut() -> str:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return f"{cursor.fetchone()[0]} PostgreSQL connections terminated"

    buyer_back_at: list[float] = []

    def buyer_down() -> str:
        flaky_buyer.stop()
        buyer_back_at.append(time.monotonic() + 120)
        return "the best buyer down for 120 s"

    faults: list[Callable[[], str]] = [
        kill_prefork_children,
        kill_worker,
        redis_down,
        postgres_cut,
        term_worker,
        buyer_down,
    ]
    partner = Partner(stack, market)
    partner.start()
    started = time.monotonic()
    struck: list[str] = []
    next_fault = started + FAULT_EVERY_S
    while time.monotonic() - started < SOAK_S:
        assert partner.is_alive(), "the partner gave up on a lead"
        if buyer_back_at and time.monotonic() >= buyer_back_at[0]:
            buyer_back_at.pop()
            flaky_buyer = SimulatorThread(port=flaky_port).start()
            buyers.append(flaky_buyer)
        if time.monotonic() >= next_fault:
            what = faults[len(struck) % len(faults)]()
            struck.append(f"{time.monotonic() - started:.0f} s: {what}")
            print(f"[soak] {struck[-1]}", flush=True)
            next_fault += FAULT_EVERY_S
        time.sleep(0.2)
    partner.stopping.set()
    partner.join(timeout=120)
    if buyer_back_at:
        flaky_buyer = SimulatorThread(port=flaky_port).start()
        buyers.append(flaky_buyer)
    lead_ids = partner.accepted

    took = wait_all_final(stack, lead_ids, seconds=120, what="every lead final after the soak")
    result = invariants.check(lead_ids, buyers, label="soak")
    statuses = Counter(Lead.objects.filter(pk__in=lead_ids).values_list("status", flat=True))
    runs = sorted(a.duration_ms for a in Auction.objects.filter(lead_id__in=lead_ids))
    capped_sold = Sale.objects.filter(contract=capped, status=SaleStatus.SOLD).count()
    for buyer in buyers:
        buyer.stop()  # the fixture's own are stopped again by it, which is harmless
    intake = sorted(partner.latencies_ms)
    print(
        f"[soak] {SOAK_S / 60:.0f} min at {RATE:g} leads/s: {len(lead_ids)} leads accepted, "
        f"answers {dict(partner.answers)}; {len(struck)} faults; all final {took:.1f} s after "
        f"the end; {dict(statuses)}; capped contract sold {capped_sold} of its cap {CAP}; "
        f"intake p50 {statistics.median(intake):.0f} ms, p99 {intake[len(intake) * 99 // 100]:.0f} "
        f"ms; run p50 {statistics.median(runs):.0f} ms, p99 {runs[len(runs) * 99 // 100]:.0f} ms; "
        f"worker restarts {stack.restarts}"
    )
    for lead in Lead.objects.filter(pk__in=lead_ids).exclude(status=LeadStatus.SOLD):
        runs_of_lead = [
            f"{a.status} {a.started_at:%H:%M:%S} {a.note!r}"
            for a in Auction.objects.filter(lead=lead).order_by("started_at")
        ]
        print(f"[soak] lead {lead.pk} {lead.status}: {lead.reason!r}; runs: {runs_of_lead}")
    assert not result.broken
