"""Workers die mid-routing: SIGKILL of the whole worker and of pool children, SIGTERM under load,
and a poison lead that kills its process every time. No lead is lost, none posted twice."""

from __future__ import annotations

import os
import signal
from collections import Counter

import pytest

from leads.models import Lead, LeadStatus
from routing.engine import INTERRUPTED_NOTE, MAX_INTERRUPTED_RUNS
from routing.models import Auction, AuctionStatus
from tests.faults import invariants
from tests.faults.conftest import PATIENT, submit, wait_all_final, wait_for_posts
from tests.faults.harness import wait_until
from tests.workers import final_count

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(300),
]


def in_routing(lead_ids) -> int:
    return Lead.objects.filter(pk__in=lead_ids, status=LeadStatus.ROUTING).count()


def resumed_runs(lead_ids) -> int:
    return Auction.objects.filter(lead_id__in=lead_ids, note=INTERRUPTED_NOTE).count()


def restart_until_final(stack, lead_ids, buyers, label: str, when_stopped: str) -> None:
    """Start a new worker, wait until every lead is final, say how it went and check that no lead
    was lost or sold twice."""
    stack.start_worker(concurrency=16)
    took = wait_all_final(stack, lead_ids, seconds=120, what="every lead final after the restart")
    result = invariants.check(lead_ids, list(buyers), label=label)
    print(
        f"[{label}] {len(lead_ids)} leads, {when_stopped}; all final {took:.1f} s after the "
        f"restart; {resumed_runs(lead_ids)} runs resumed"
    )
    assert not result.broken


@pytest.fixture
def two_buyers(market, start_simulator):
    """A slow buyer that bids more (its posts take 300 ms: many are in flight at any time) and a
    fast one behind it."""
    slow, fast = start_simulator(), start_simulator()
    market.contract(sim=slow, ping="bid=20", post="delay_ms=300", **PATIENT)
    market.contract(sim=fast, ping="bid=10", **PATIENT)
    return slow, fast


# On both brokers: Redis redelivers a dead worker's tasks when the sweepers or the visibility
# timeout find them; RabbitMQ puts them back the moment the worker's connection closes.
@pytest.mark.parametrize("stack", ["redis", "rabbitmq"], indirect=True)
def test_sigkill_of_the_whole_worker_with_hundreds_in_flight_loses_and_repeats_nothing(
    stack, market, two_buyers
):
    slow, _ = two_buyers
    stack.start_web()
    lead_ids = submit(stack, market, range(200))
    worker = stack.start_worker(concurrency=16)
    stack.start_beat()
    wait_for_posts(stack, slow, 40, what="forty posts sent", watch=[worker])
    worker.kill()
    caught = in_routing(lead_ids)

    restart_until_final(
        stack,
        lead_ids,
        two_buyers,
        f"worker SIGKILL, {stack.broker}",
        f"{caught} in routing when the worker died",
    )
    assert Counter(Lead.objects.filter(pk__in=lead_ids).values_list("status", flat=True)) == {
        LeadStatus.SOLD: len(lead_ids)
    }


def test_sigkill_of_prefork_children_loses_and_repeats_nothing(stack, market, two_buyers):
    slow, fast = two_buyers
    stack.start_web()
    lead_ids = submit(stack, market, range(1000, 1100))
    worker = stack.start_worker(pool="prefork", concurrency=3)
    stack.start_beat()
    killed = 0
    for posts in (10, 30, 50):
        wait_for_posts(stack, slow, posts, what=f"{posts} posts sent", watch=[worker])
        for child in worker.children():
            os.kill(child, signal.SIGKILL)
            killed += 1

    took = wait_all_final(stack, lead_ids, seconds=120, what="every lead final", watch=[worker])

    result = invariants.check(lead_ids, [slow, fast], label="prefork children SIGKILL")
    print(
        f"[prefork children SIGKILL] {len(lead_ids)} leads, {killed} children killed in three "
        f"rounds; all final {took:.1f} s later; {resumed_runs(lead_ids)} runs resumed"
    )
    assert not result.broken


def test_sigterm_under_load_finishes_or_hands_back_every_lead(stack, market, two_buyers):
    slow, _ = two_buyers
    stack.start_web()
    lead_ids = submit(stack, market, range(2000, 2120))
    worker = stack.start_worker(concurrency=16)
    stack.start_beat()
    wait_for_posts(stack, slow, 30, what="thirty posts sent", watch=[worker])
    worker.process.send_signal(signal.SIGTERM)  # warm shutdown: finish what runs, take no more
    worker.process.wait(timeout=60)
    stopped_with = final_count(lead_ids)

    restart_until_final(
        stack, lead_ids, two_buyers, "worker SIGTERM", f"{stopped_with} final when it stopped"
    )
    # A warm shutdown finishes its runs: none is left for the sweeper to resume.
    assert resumed_runs(lead_ids) == 0


def test_a_poison_lead_is_failed_after_bounded_tries_while_healthy_leads_keep_flowing(
    stack, market, start_simulator
):
    buyer = start_simulator()
    market.contract(sim=buyer, ping="bid=10", **PATIENT)
    stack.start_web()
    poison = submit(stack, market, [3000], sub_id="poison")[0]
    healthy = submit(stack, market, range(3001, 3061))
    worker = stack.start_worker(app="tests.faults.poison_app", pool="prefork", concurrency=3)
    stack.start_beat()

    took = wait_until(
        lambda: final_count([poison, *healthy]) == 61,
        seconds=120,
        what="the poison lead failed and the healthy ones routed",
        watch=[worker],
        logs=stack.logs,
    )

    result = invariants.check([poison, *healthy], [buyer], label="poison lead")
    tries = Auction.objects.filter(lead_id=poison).count()
    print(
        f"[poison lead] failed after {tries - 1} runs that killed their process, in {took:.1f} s; "
        f"{len(healthy)} healthy leads sold meanwhile"
    )
    assert not result.broken
    assert Lead.objects.get(pk=poison).status == LeadStatus.FAILED
    assert list(
        Auction.objects.filter(lead_id=poison).order_by("started_at").values_list("status", "note")
    ) == [(AuctionStatus.FAILED, INTERRUPTED_NOTE)] * MAX_INTERRUPTED_RUNS + [
        (
            AuctionStatus.FAILED,
            f"routing was interrupted {MAX_INTERRUPTED_RUNS} times; given up, needs review",
        )
    ]
    assert Lead.objects.filter(pk__in=healthy, status=LeadStatus.SOLD).count() == len(healthy)
    assert "a lead keeps losing its worker" in worker.output()
