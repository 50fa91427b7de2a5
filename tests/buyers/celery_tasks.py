"""A task for the cap race test, loaded only by the worker it starts (`--include`)."""

from __future__ import annotations

import os
from decimal import Decimal

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from buyers.models import Contract
from buyers.services import CapRefusal, cap_commit, cap_reserve
from leads.models import Lead, LeadStatus
from leads.services import lead_transition
from routing.models import Sale

RESERVE_AND_SELL = "tests.buyers.reserve_and_sell"


@shared_task(name=RESERVE_AND_SELL)
def reserve_and_sell(lead_id: str, contract_id: int, price: str) -> None:
    """Sell a routing lead to the contract if its caps have room, else mark it unsold."""
    lead = Lead.objects.select_related("source").filter(pk=lead_id).first()
    if lead is None or lead.status != LeadStatus.ROUTING:
        return
    contract = Contract.objects.select_related("buyer").get(pk=contract_id)
    outcome = cap_reserve(lead=lead, contract=contract, price=Decimal(price))
    if isinstance(outcome, CapRefusal):
        lead_transition(lead=lead, to=LeadStatus.UNSOLD)
        return
    payout = lead.source.payout_for(outcome.price)
    with transaction.atomic():
        Sale.objects.create(
            lead=lead,
            contract=contract,
            buyer=contract.buyer,
            price=outcome.price,
            payout=payout,
            # Which worker process sold it: the test checks that several took part.
            buyer_reference=f"pid-{os.getpid()}",
        )
        cap_commit(reservation=outcome)
        lead_transition(
            lead=lead,
            to=LeadStatus.SOLD,
            sold_at=timezone.now(),
            sale_price=outcome.price,
            payout=payout,
        )
