"""One flow on RabbitMQ: leads submitted through gunicorn, routed by a worker, sold, and each
partner's postback failed once by its endpoint and retried with a countdown, which waits on the
broker (native delayed delivery on quorum queues); every queue the platform declared is a quorum
queue. On Redis the flow runs in tests/routing/test_engine_worker.py; adding "redis" to the
parametrize below runs this one there too (passing, left out to keep CI short)."""

from __future__ import annotations

from collections import Counter

import pytest

from leads.models import Lead, LeadStatus, Postback, PostbackStatus
from tests.faults import invariants
from tests.faults.conftest import PATIENT, submit, wait_all_final
from tests.faults.harness import wait_until
from tests.outbound.receiver import receiving

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(300),
]
LEADS = 20


@pytest.mark.parametrize("stack", ["rabbitmq"], indirect=True)
def test_leads_go_from_intake_to_sale_and_a_failed_postback_is_retried_later(
    stack, market, start_simulator
):
    buyer = start_simulator()
    market.contract(sim=buyer, ping="bid=15", **PATIENT)
    # The partner's endpoint fails the first LEADS postbacks, then takes every one.
    with receiving(*[503] * LEADS, 200) as partner:
        market.source.postback_url = partner.url("/outcome")
        market.source.save()
        stack.start_web()
        lead_ids = submit(stack, market, range(5000, 5000 + LEADS))
        worker = stack.start_worker(concurrency=8)

        took = wait_all_final(stack, lead_ids, seconds=60, what="every lead final", watch=[worker])
        wait_until(
            lambda: (
                Postback.objects.filter(lead__in=lead_ids, status=PostbackStatus.DELIVERED).count()
                == LEADS
            ),
            seconds=60,
            what="every postback delivered after its retry",
            watch=[worker],
            logs=stack.logs,
        )

    label = f"intake to sale, {stack.broker}"
    result = invariants.check(lead_ids, [buyer], label=label)
    tries: dict[str, list] = {}
    for lead_id, at in (
        Postback.objects.filter(lead__in=lead_ids)
        .order_by("created_at")
        .values_list("lead_id", "created_at")
    ):
        tries.setdefault(str(lead_id), []).append(at)
    waits = [(at[1] - at[0]).total_seconds() for at in tries.values() if len(at) > 1]
    print(
        f"[{label}] {LEADS} leads sold {took:.1f} s after the worker started; "
        f"{sum(map(len, tries.values()))} postback tries; a retry came "
        f"{min(waits):.1f}-{max(waits):.1f} s after the try that failed"
    )
    assert not result.broken
    assert Counter(Lead.objects.filter(pk__in=lead_ids).values_list("status", flat=True)) == {
        LeadStatus.SOLD: LEADS
    }
    # Every failed try was retried once its countdown passed; none was lost or repeated.
    assert sum(map(len, tries.values())) == len(partner.received) == 2 * LEADS
    assert "Traceback" not in worker.output()
    if stack.vhost is not None:
        # A countdown waits whole seconds on RabbitMQ (config/celery.py rounds it up).
        assert min(waits) >= 1.0
        queues = stack.vhost.queues()
        # Celery's remote-control queue (pidbox) is its own, classic and auto-deleted.
        declared = {name: kind for name, (kind, _) in queues.items() if "pidbox" not in name}
        assert "celery" in declared
        assert "celery_delayed_0" in declared  # the ladder the retries waited on
        assert set(declared.values()) == {"quorum"}, declared
