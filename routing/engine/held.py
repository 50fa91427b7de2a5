"""Held bids: the bids a lead brought to its run from an inbound ping (exchange/), posted to in
the order the ping ranked them, without pinging their buyers again.

Routing does not know who holds them: the app that keeps inbound pings registers, when it
loads, how to find a lead's held bids (`held_bids_register`), as routing registers itself with
intake. A lead without any is routed as always.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from leads.models import Lead
from routing.engine.run import Offer
from routing.selection import Bid


@dataclass(frozen=True)
class HeldBid:
    """A bid a buyer gave before the run (to an inbound ping) and what its answer carried."""

    bid: Bid
    ping_answer: dict[str, Any] = field(default_factory=dict)


_find: Callable[[Lead], list[HeldBid] | None] | None = None


def held_bids_register(find: Callable[[Lead], list[HeldBid] | None]) -> None:
    """Make `find(lead)` the way a run learns the bids its lead holds (None: it holds none)."""
    global _find  # noqa: PLW0603 - set once, when the app that keeps the bids loads
    _find = find


def held_bids(lead: Lead) -> list[HeldBid] | None:
    """The bids the lead holds, best first, or None for a lead routed as always. Only a lead
    posted with a ping id is looked up: the others cost a run no query."""
    if not lead.ping_id or _find is None:
        return None
    return _find(lead)


def held_offers(offers: list[Offer], held: list[HeldBid]) -> tuple[list[Offer], list[Bid]]:
    """Keep the eligible offers whose contract holds a bid, with that bid and its buyer's ping
    answer; return them and the held bids in their order. A contract that holds a bid but is
    no longer eligible for the full lead (its consent, an earlier purchase, a cap now full) is
    left out: the run's explanation says why."""
    by_contract = {offer.contract.pk: offer for offer in offers}
    kept: list[Offer] = []
    ranked: list[Bid] = []
    for hold in held:
        offer = by_contract.get(hold.bid.contract_id)
        if offer is None:
            continue
        offer.bid = hold.bid
        offer.ping_answer = dict(hold.ping_answer)
        kept.append(offer)
        ranked.append(hold.bid)
    return kept, ranked
