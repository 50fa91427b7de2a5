"""Pings: every ping/post offer pinged in parallel under the vertical's deadline, each answer
read as a bid or a decline; fixed-price contracts bid their price without a ping."""

from __future__ import annotations

import time
from decimal import Decimal
from functools import partial
from typing import Any

from buyers.models import Contract, EndpointKind, PriceModel
from outbound.http import send_all
from routing.engine.mapping import request_for, rule_for
from routing.engine.run import Offer, Run, new_attempt
from routing.mapping import MappingError
from routing.models import Attempt, AttemptOutcome
from routing.responses import ParsedResponse, parse_response
from routing.selection import Bid


def ping_all(run: Run, offers: list[Offer], ping_fields) -> list[Attempt]:
    """Ping every ping/post offer in parallel under the vertical's deadline; fill in the bids."""
    lead, auction = run.lead, run.auction
    ping = partial(new_attempt, auction=auction, lead=lead, kind=EndpointKind.PING)
    attempts: list[Attempt] = []
    to_ping: list[Offer] = []
    for offer in offers:
        contract = offer.contract
        if contract.price_model == PriceModel.FIXED:
            offer.bid = _bid(contract, contract.fixed_price)
            continue
        try:
            offer.ping = request_for(contract, EndpointKind.PING, lead, ping_fields)
        except MappingError as exc:
            attempts.append(
                ping(
                    contract=contract,
                    outcome=AttemptOutcome.ERROR,
                    reason=str(exc),
                )
            )
            continue
        if offer.ping is None:
            attempts.append(
                ping(
                    contract=contract,
                    outcome=AttemptOutcome.ERROR,
                    reason="the contract has no ping endpoint",
                )
            )
            continue
        to_ping.append(offer)
    deadline = time.monotonic() + lead.vertical.auction_timeout_ms / 1000
    results = send_all([o.ping for o in to_ping], deadline=deadline)
    for offer, result in zip(to_ping, results, strict=True):
        contract = offer.contract
        answered = partial(ping, contract=contract, request=offer.ping, result=result)
        if result.status is None:
            outcome = AttemptOutcome.TIMEOUT if result.timed_out else AttemptOutcome.ERROR
            attempts.append(answered(outcome=outcome, reason=result.error))
            continue
        parsed = parse_response(rule_for(contract, EndpointKind.PING), result.status, result.body)
        if parsed.accepted and parsed.price is not None:
            offer.bid = _bid(contract, parsed.price, pinged=True)
            offer.ping_answer = ping_answer(parsed)
            outcome = AttemptOutcome.BID
        else:
            outcome = AttemptOutcome.DECLINED
        reason = parsed.reason
        if parsed.accepted and parsed.price is None:
            reason = "bid without a price"
        attempts.append(
            answered(
                outcome=outcome,
                price=parsed.price,
                reason=reason,
                reference=parsed.reference,
                captures=parsed.captures,
            )
        )
    return attempts


def ping_answer(parsed: ParsedResponse) -> dict[str, Any]:
    """What the post's context reads of the buyer's answer to the ping (`ping.<name>`): its
    reference, its price and every capture its response rule named."""
    return {"reference": parsed.reference, "price": parsed.price, **parsed.captures}


def _bid(contract: Contract, price: Decimal, *, pinged: bool = False) -> Bid:
    return Bid(
        contract_id=contract.pk,
        buyer_id=contract.buyer_id,
        price=price,
        priority=contract.priority,
        weight=contract.weight,
        exclusive=contract.exclusive,
        expires_at=time.time() + contract.bid_valid_seconds if pinged else None,
    )
