"""Eligibility: the run's use of the eligibility engine (routing/eligibility.py, through
routing.selectors.explain) and of the buyers' breakers; the explanation is kept on the auction."""

from __future__ import annotations

from dataclasses import replace

from routing.engine.run import Offer, Run
from routing.health import health_admit
from routing.selectors import delivery_setup, explain


def eligible_offers(
    run: Run,
    *,
    excluded_buyers: frozenset[int] | set[int],
    pending: frozenset[str] | None = None,
) -> tuple[list[Offer], frozenset[str]]:
    """Return an offer for each contract that may receive the lead, and the vertical's ping
    fields. Every verdict, with the breakers' and the excluded buyers' refusals, goes on the
    run's auction (its explanation and eligible count). `pending`: an inbound ping's unsent
    fields (routing.selectors.explain)."""
    lead, auction = run.lead, run.auction
    verdicts = explain(lead, pending=pending)
    contracts, ping_fields = delivery_setup(
        lead.vertical, [v.contract_id for v in verdicts if v.eligible]
    )
    refused = health_admit(contracts.values(), rows=run.health)
    for contract in contracts.values():
        if contract.buyer_id in excluded_buyers:
            refused[contract.pk] = "buyer left out: an earlier post to it may have gone out"
    verdicts = [
        replace(v, eligible=False, rule="health", reason=refused[v.contract_id])
        if v.eligible and v.contract_id in refused
        else v
        for v in verdicts
    ]
    eligible = [v for v in verdicts if v.eligible]
    auction.explanation = [v.as_dict() for v in verdicts]
    auction.eligible_count = len(eligible)
    offers = [
        Offer(contract=contracts[v.contract_id]) for v in eligible if v.contract_id in contracts
    ]
    return offers, ping_fields
