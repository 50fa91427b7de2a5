"""Posts: cap room reserved for each offer of a round, the full lead posted to all of them in
parallel (transient failures retried with backoff), and each answer settled into a sale or a
failure for the plan to fall back on."""

from __future__ import annotations

import time
from decimal import Decimal
from functools import partial

from buyers.models import EndpointKind
from buyers.services import CapRefusal, cap_release, cap_reserve
from config.rows import storable_text
from leads.models import PayoutModel
from outbound.http import send_all
from outbound.rules import Outcome, backoff
from routing.delivery import EMAIL_METHOD, email_send
from routing.engine import store
from routing.engine.mapping import request_for, rule_for
from routing.engine.run import ZERO, Offer, Run, new_attempt, record_round
from routing.engine.settlement import sale_store_or_refuse
from routing.mapping import MappingError, OutgoingRequest
from routing.models import Attempt, AttemptOutcome, Sale
from routing.responses import parse_response
from routing.selection import Bid
from routing.team_delivery import TEAM_METHOD, team_deliver

POST_RETRIES = 2  # transient post failures (connect error, 5xx, 429) are retried this often
POST_DEADLINE_S = 30


def _deliver(requests: list[OutgoingRequest], *, deadline: float) -> list[Outcome]:
    """Send posts: HTTP ones in parallel, e-mails through the mail backend, a team's by
    assigning the lead to a member (routing/team_delivery.py); results in order."""
    local = {EMAIL_METHOD: email_send, TEAM_METHOD: team_deliver}
    web = [r for r in requests if r.method not in local]
    web_results = iter(send_all(web, deadline=deadline))
    return [local[r.method](r) if r.method in local else next(web_results) for r in requests]


def post_all(run: Run, offers: list[Offer], *, deadline: float) -> list[tuple[Bid, Sale | None]]:
    """Reserve caps and post to each offer in parallel; return each bid with its sale, if any."""
    lead, auction = run.lead, run.auction
    post = partial(new_attempt, auction=auction, lead=lead, kind=EndpointKind.POST)
    outcomes: list[tuple[Bid, Sale | None]] = []
    live: list[tuple[Offer, object, OutgoingRequest]] = []
    attempts: list[Attempt] = []
    for offer in offers:
        contract = offer.contract
        price = ZERO if lead.is_test else offer.bid.price
        reservation = cap_reserve(lead=lead, contract=contract, price=price)
        if isinstance(reservation, CapRefusal):
            attempts.append(
                post(
                    contract=contract,
                    outcome=AttemptOutcome.REJECTED,
                    reason=f"not posted: {reservation.reason}",
                )
            )
            outcomes.append((offer.bid, None))
            continue
        try:
            request = request_for(
                contract,
                EndpointKind.POST,
                lead,
                frozenset(),
                bid=offer.bid.price,
                ping=offer.ping_answer,
            )
            if request is None:
                raise MappingError("The contract has no post endpoint.")
        except MappingError as exc:
            cap_release(reservation=reservation)
            attempts.append(
                post(
                    contract=contract,
                    outcome=AttemptOutcome.ERROR,
                    reason=str(exc),
                )
            )
            outcomes.append((offer.bid, None))
            continue
        live.append((offer, reservation, request))

    pending = list(live)
    try:
        for attempt_number in range(POST_RETRIES + 1):
            if not pending:
                break
            if attempt_number:
                # Exponential backoff with jitter between retries of transient failures.
                time.sleep(backoff(attempt_number, base_s=0.2, cap_s=1.0))
            results = _deliver(
                [r for _, _, r in pending],
                deadline=min(
                    time.monotonic() + POST_DEADLINE_S, max(deadline, time.monotonic() + 1)
                ),
            )
            retry = []
            for (offer, reservation, request), result in zip(pending, results, strict=True):
                if result.transient and attempt_number < POST_RETRIES:
                    attempts.append(
                        post(
                            contract=offer.contract,
                            request=request,
                            result=result,
                            outcome=AttemptOutcome.ERROR,
                            reason="transient failure; retrying",
                        )
                    )
                    retry.append((offer, reservation, request))
                    continue
                outcomes.append(
                    _settle_post(
                        run,
                        offer=offer,
                        reservation=reservation,
                        request=request,
                        result=result,
                        attempts=attempts,
                        # With one post in the round, nothing but the settlement or the next
                        # round's first write can come between its answer and its sale.
                        defer=len(live) == 1,
                    )
                )
            pending = retry
    finally:
        # Even when settling fails: every post that went out is on record.
        record_round(run, attempts)
    return outcomes


def _settle_post(run: Run, *, offer, reservation, request, result, attempts, defer=False):
    lead, auction = run.lead, run.auction
    post = partial(new_attempt, auction=auction, lead=lead, kind=EndpointKind.POST)
    contract = offer.contract
    if result.status is None:
        cap_release(reservation=reservation)
        outcome = AttemptOutcome.AMBIGUOUS if result.ambiguous else AttemptOutcome.ERROR
        reason = (
            "sent but not answered: not re-posted, marked for review"
            if result.ambiguous
            else result.error
        )
        attempts.append(
            post(
                contract=contract,
                request=request,
                result=result,
                outcome=outcome,
                reason=reason,
            )
        )
        return offer.bid, None
    parsed = parse_response(rule_for(contract, EndpointKind.POST), result.status, result.body)
    if not parsed.accepted:
        cap_release(reservation=reservation)
        attempts.append(
            post(
                contract=contract,
                request=request,
                result=result,
                # A 5xx or 429 that outlived its retries is the buyer failing, not saying no.
                outcome=AttemptOutcome.ERROR if result.transient else AttemptOutcome.REJECTED,
                reason=parsed.reason,
                reference=parsed.reference,
                captures=parsed.captures,
            )
        )
        return offer.bid, None
    # An acceptance without a price is booked at the bid (or the fixed price), never at 0.
    price = (
        ZERO if lead.is_test else (parsed.price if parsed.price is not None else offer.bid.price)
    )
    attempts.append(
        post(
            contract=contract,
            request=request,
            result=result,
            outcome=AttemptOutcome.ACCEPTED,
            price=price,
            reason=parsed.reason,
            reference=parsed.reference,
            captures=parsed.captures,
        )
    )
    sale = Sale(
        lead=lead,
        contract=contract,
        buyer_id=contract.buyer_id,
        auction=auction,
        price=price,
        payout=_sale_payout(run, price),
        buyer_reference=storable_text(parsed.reference[:255]),
    )
    if defer and store.sale_waits(sale, reservation):
        run.unstored.append((sale, reservation))
        run.sales.append(sale)
        return offer.bid, sale
    if not sale_store_or_refuse(run, sale, reservation):
        return offer.bid, None
    run.sales.append(sale)
    return offer.bid, sale


def _sale_payout(run: Run, price: Decimal) -> Decimal:
    """What the source earns for this sale: a revenue share of each sale, or its fixed price
    per lead once, on the lead's first sale (a lead shared to three buyers is one lead).

    A run that posts holds the lead's only sales: a resumed run with earlier sales finishes
    with them and never posts again.
    """
    lead = run.lead
    if lead.is_test:
        return ZERO
    if lead.source.payout_model == PayoutModel.REVENUE_SHARE:
        return lead.source.payout_for(price)
    return ZERO if run.sales else lead.source.payout_for(price)
