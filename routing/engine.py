"""A lead's routing run: eligibility, parallel pings, selection, cap reservation, posts with
fallback, and settlement. Synchronous ORM code; the HTTP goes through outbound.http in parallel.

The run claims the lead with a conditional update (accepted -> routing), so of two deliveries of
the same task only one routes. Every ping and post is an Attempt row; the eligibility
explanation is kept on the Auction. A post is made only under a held cap reservation, and a sale
is a row the database allows once per lead and buyer.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal
from functools import partial

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from buyers.models import (
    CapReservation,
    Contract,
    DeliveryMethod,
    EndpointKind,
    PriceModel,
    ReservationStatus,
)
from buyers.services import CapRefusal, cap_commit, cap_commit_sql, cap_release, cap_reserve
from config.admin_display import plural
from config.cache import CACHE_DOWN
from config.rows import (
    from_row,
    insert_values,
    inserted,
    one_statement,
    quoted,
    select_list,
    storable_text,
    stored_fields,
)
from leads.models import DistributionMode, Lead, LeadStatus, PayoutModel, Source, Vertical
from leads.outcomes import lead_outcome_publish
from leads.services import postback_schedule
from outbound.http import send_all
from outbound.rules import Outcome, backoff
from routing.breaker import BreakerStatus
from routing.delivery import EMAIL_METHOD, EMAIL_RULE, WEBHOOK_RULE, email_request, email_send
from routing.health import (
    HEALTH_JSON_SQL,
    Observation,
    health_admit,
    health_record,
    health_states_from_json,
)
from routing.mapping import (
    MappingError,
    OutgoingRequest,
    PreparedEndpoint,
    endpoint_from_model,
    map_fields,
    mapping_from_model,
    prepare_endpoint,
)
from routing.models import (
    Attempt,
    AttemptOutcome,
    Auction,
    AuctionStatus,
    ContractHealth,
    Sale,
    SaleStatus,
)
from routing.responses import parse_response, rule_from_model
from routing.selection import Bid, TierFloor, filter_bids, money, plan_sale, rank
from routing.selectors import delivery_setup, explain
from routing.services import attempts_insert, attempts_insert_sql
from routing.team_delivery import TEAM_METHOD, TEAM_RULE, team_deliver, team_request

logger = logging.getLogger(__name__)
ZERO = Decimal("0.00")
POST_RETRIES = 2  # transient post failures (connect error, 5xx, 429) are retried this often
POST_DEADLINE_S = 30
# A run must end before the task's soft time limit (60 s), fallbacks and retries included.
RUN_BUDGET_S = 50
INTERRUPTED_NOTE = "interrupted: the worker was lost"
DATABASE_LOST_NOTE = "interrupted: the database was lost"
# The database went away (a restart, a failover, a cut connection): not the lead's fault.
DATABASE_LOST = (OperationalError, InterfaceError)
MIN_PINGS_TO_BLAME_US = 4
# A lead whose routing keeps killing its worker (a poison lead) is failed after this many tries.
MAX_INTERRUPTED_RUNS = 3


@dataclass
class Offer:
    """An eligible contract with what is needed to ping and post it."""

    contract: Contract
    ping: OutgoingRequest | None = None
    bid: Bid | None = None
    bid_reference: str = ""


@dataclass
class Run:
    """One routing run. Its attempts and the buyers' answers are kept here and written when the
    run ends, in the transaction that settles the lead: one write instead of one per round."""

    lead: Lead
    auction: Auction
    resumed: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    sales: list[Sale] = field(default_factory=list)
    # The sale of a round's one post, accepted at the price reserved, not stored yet
    # (PostgreSQL): it goes with the run's next write, the settlement when no post follows,
    # saving a round trip on most leads.
    unstored: list[tuple[Sale, CapReservation]] = field(default_factory=list)
    # The breakers of the vertical that are not closed, read with the claim (None: not read).
    health: dict[int, ContractHealth] | None = None
    # The health rows of the contracts the run heard from, read with the settlement.
    health_after: dict[int, ContractHealth] | None = None


# Claim an accepted lead, open its auction, read the lead with its vertical and source and the
# vertical's breakers that are not closed, in one statement: one round trip, atomic on its own,
# where the ORM needs a transaction around the claim and a query for each read.
_CLAIM_SQL = """
WITH claimed AS (
    UPDATE {lead} SET status = %s, updated_at = %s WHERE id = %s AND status = %s RETURNING *
), opened AS (
    INSERT INTO {auction} (lead_id, status, started_at, eligible_count, explanation, note)
    SELECT id, %s, %s, 0, '[]', '' FROM claimed
    RETURNING id
)
SELECT opened.id,
    (SELECT json_agg(h)::text FROM {health} h JOIN {contract} c ON c.id = h.contract_id
     WHERE c.vertical_id = claimed.vertical_id AND h.status <> %s),
    {lead_columns}, {vertical_columns}, {source_columns}
FROM opened CROSS JOIN claimed
LEFT JOIN {vertical} v ON v.{vertical_pk} = claimed.vertical_id
JOIN {source} s ON s.{source_pk} = claimed.source_id
"""


@functools.cache
def _claim_sql() -> str:
    return _CLAIM_SQL.format(
        lead=quoted(Lead._meta.db_table),
        auction=quoted(Auction._meta.db_table),
        health=quoted(ContractHealth._meta.db_table),
        contract=quoted(Contract._meta.db_table),
        vertical=quoted(Vertical._meta.db_table),
        source=quoted(Source._meta.db_table),
        vertical_pk=quoted(Vertical._meta.pk.column),
        source_pk=quoted(Source._meta.pk.column),
        lead_columns=select_list(Lead, "claimed"),
        vertical_columns=select_list(Vertical, "v"),
        source_columns=select_list(Source, "s"),
    )


def _claimed_lead(row: tuple) -> Lead:
    """The lead, its vertical and its source from a row of _CLAIM_SQL (after the auction id and
    the breakers)."""
    widths = [len(model._meta.concrete_fields) for model in (Lead, Vertical, Source)]
    lead_values = row[: widths[0]]
    vertical_values = row[widths[0] : widths[0] + widths[1]]
    source_values = row[widths[0] + widths[1] :]
    lead = from_row(Lead, lead_values)
    lead.vertical = from_row(Vertical, vertical_values) if vertical_values[0] is not None else None
    lead.source = from_row(Source, source_values)
    return lead


def _claim_accepted(lead_id: str, now) -> Run | None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                _claim_sql(),
                [
                    LeadStatus.ROUTING,
                    now,
                    lead_id,
                    LeadStatus.ACCEPTED,
                    AuctionStatus.RUNNING,
                    now,
                    BreakerStatus.CLOSED,
                ],
            )
            row = cursor.fetchone()
        if row is None:
            return None
        lead = _claimed_lead(row[2:])
        auction = inserted(
            Auction(lead=lead, status=AuctionStatus.RUNNING, started_at=now, explanation=[]),
            row[0],
        )
        return Run(lead=lead, auction=auction, health=health_states_from_json(row[1]))
    with transaction.atomic():
        claimed = Lead.objects.filter(pk=lead_id, status=LeadStatus.ACCEPTED).update(
            status=LeadStatus.ROUTING, updated_at=now
        )
        if not claimed:
            return None
        lead = Lead.objects.select_related("vertical", "source").get(pk=lead_id)
        return Run(lead=lead, auction=Auction.objects.create(lead=lead))


class RunLostDatabase(Exception):
    """A run lost its database mid-way; `auction_id` names the run to take over when it is back."""

    def __init__(self, auction_id: int | None) -> None:
        super().__init__(f"routing run {auction_id} lost its database")
        self.auction_id = auction_id


def _claim(lead_id: str, *, lost_run: int | None = None) -> Run | None:
    """Claim an accepted lead, or take over the run of a worker that was lost (or return None).

    The claim and the auction row are one transaction, so a lead in `routing` always has a
    running auction whose start says how long it has been at it. `lost_run` is a run that its
    own task knows lost the database: it is taken over at once, without waiting for it to turn
    stale, and does not count towards the interruptions that mark a poison lead.
    """
    now = timezone.now()
    run = _claim_accepted(lead_id, now)
    if run is not None:
        return run
    with transaction.atomic():
        lead = (
            Lead.objects.select_for_update(of=("self",))
            .select_related("vertical", "source")
            .filter(pk=lead_id, status=LeadStatus.ROUTING)
            .first()
        )
        if lead is None:
            return None
        running = Auction.objects.filter(lead=lead, status=AuctionStatus.RUNNING)
        stale_before = now - timedelta(seconds=settings.ROUTING_STALE_SECONDS)
        live = running.filter(started_at__gte=stale_before)
        if lost_run is not None:
            live = live.exclude(pk=lost_run)
        if live.exists():
            return None  # another worker is routing it right now
        running.filter(pk=lost_run).update(
            status=AuctionStatus.FAILED, finished_at=now, note=DATABASE_LOST_NOTE
        )
        running.update(status=AuctionStatus.FAILED, finished_at=now, note=INTERRUPTED_NOTE)
        auction = Auction.objects.create(lead=lead, note="resumed after an interrupted run")
    return Run(lead=lead, auction=auction, resumed=True)


def _recover(run: Run) -> tuple[list[Sale], set[int]]:
    """After a lost worker: keep its sales; never re-post where a post may have gone out.

    A reservation still held means the lost run may have posted to that contract and never
    read the answer. The lead must not be sent there again blindly: release the room, record
    the post as ambiguous for review, and leave the buyer out of this run.
    """
    sales = list(Sale.objects.filter(lead=run.lead, status=SaleStatus.SOLD))
    excluded = _release_held(
        run,
        reason="the worker was lost while this post was in flight: not re-posted, "
        "marked for review",
    )
    excluded.update(sale.buyer_id for sale in sales)
    return sales, excluded


def _release_held(run: Run, *, reason: str) -> set[int]:
    """Release the lead's held reservations as ambiguous posts; return the buyers they were for."""
    lead, auction = run.lead, run.auction
    excluded: set[int] = set()
    held = CapReservation.objects.filter(lead=lead, status=ReservationStatus.HELD).select_related(
        "contract"
    )
    for reservation in held:
        cap_release(reservation=reservation)
        excluded.add(reservation.contract.buyer_id)
        run.attempts.append(
            _attempt(
                auction=auction,
                lead=lead,
                contract=reservation.contract,
                kind=EndpointKind.POST,
                outcome=AttemptOutcome.AMBIGUOUS,
                reason=reason,
            )
        )
    return excluded


def _memo(contract: Contract, key: object, build):
    """What `build` makes of the contract, made once per contract instance.

    Routing's contracts are the instances delivery_setup keeps while their vertical's version
    is unchanged (a saved contract, endpoint, mapping or rule changes it), so what is derived
    from them here lives exactly as long. What fails to build (a MappingError) is not kept.
    """
    memo = contract.__dict__.setdefault("_routing_memo", {})
    try:
        return memo[key]
    except KeyError:
        value = memo[key] = build()
        return value


def _endpoint(contract: Contract, kind: str):
    return next((e for e in contract.endpoints.all() if e.kind == kind), None)


def _prepared_endpoint(contract: Contract, kind: str) -> PreparedEndpoint | None:
    endpoint = _endpoint(contract, kind)
    return prepare_endpoint(endpoint_from_model(endpoint)) if endpoint is not None else None


def _rule(contract: Contract, kind: str):
    if kind == EndpointKind.POST and contract.delivery_method == DeliveryMethod.WEBHOOK:
        return WEBHOOK_RULE
    if kind == EndpointKind.POST and contract.delivery_method == DeliveryMethod.EMAIL:
        return EMAIL_RULE
    if kind == EndpointKind.POST and contract.delivery_method == DeliveryMethod.TEAM:
        return TEAM_RULE
    return _memo(
        contract,
        ("rule", kind),
        lambda: rule_from_model(
            next((r for r in contract.response_rules.all() if r.kind == kind), None)
        ),
    )


def _request(contract: Contract, kind: str, lead: Lead, ping_fields: frozenset[str]):
    mappings = _memo(
        contract, "mappings", lambda: [mapping_from_model(m) for m in contract.mappings.all()]
    )
    fields = map_fields(kind, lead.data, mappings, ping_fields)
    if kind == EndpointKind.POST and contract.delivery_method == DeliveryMethod.EMAIL:
        return email_request(
            recipients=contract.delivery_email_list,
            subject=f"New {lead.vertical.name} lead {lead.pk}",
            fields=fields,
        )
    if kind == EndpointKind.POST and contract.delivery_method == DeliveryMethod.TEAM:
        return team_request(contract=contract, lead=lead, fields=fields)
    prepared = _memo(contract, ("endpoint", kind), partial(_prepared_endpoint, contract, kind))
    return prepared.request(fields) if prepared is not None else None


def _deliver(requests: list[OutgoingRequest], *, deadline: float) -> list[Outcome]:
    """Send posts: HTTP ones in parallel, e-mails through the mail backend, a team's by
    assigning the lead to a member (routing/team_delivery.py); results in order."""
    local = {EMAIL_METHOD: email_send, TEAM_METHOD: team_deliver}
    web = [r for r in requests if r.method not in local]
    web_results = iter(send_all(web, deadline=deadline))
    return [local[r.method](r) if r.method in local else next(web_results) for r in requests]


def _attempt(
    *,
    auction: Auction,
    lead: Lead,
    contract: Contract,
    kind: str,
    outcome: str,
    request: OutgoingRequest | None = None,
    result: Outcome | None = None,
    price: Decimal | None = None,
    reason: str = "",
    reference: str = "",
) -> Attempt:
    return Attempt(
        auction=auction,
        lead=lead,
        contract=contract,
        kind=kind,
        url=request.masked_url[:1000] if request else "",
        method=request.method if request else "",
        request_headers=request.masked_headers if request else {},
        request_body=request.body_text if request else "",
        response_status=result.status if result else None,
        response_body=(result.body if result else "")[:65536],
        latency_ms=result.latency_ms if result else None,
        outcome=outcome,
        price=price,
        reason=reason[:500],
        buyer_reference=reference[:255],
        error=result.error if result else "",
    )


def _record(run: Run, attempts: list[Attempt]) -> None:
    """Keep one round's attempts on the run, and the buyers' answers for their health."""
    run.attempts.extend(attempts)
    sent = [a for a in attempts if a.url]  # refusals before sending say nothing of a buyer
    pings = [a for a in sent if a.kind == EndpointKind.PING and a.latency_ms is not None]
    slow = [a for a in pings if a.latency_ms > a.contract.latency_limit_ms]
    # When most buyers of one round look slow, the slowness is ours (a busy worker, a GC
    # pause): measured latency then says nothing about any one buyer.
    ours = len(pings) >= MIN_PINGS_TO_BLAME_US and len(slow) * 2 > len(pings)
    run.observations.extend(
        Observation(
            contract=a.contract,
            kind=a.kind,
            ok=a.response_status is not None
            and a.response_status < 500
            and a.response_status != 429,
            latency_ms=None if ours else a.latency_ms,
        )
        for a in sent
    )


def _save_attempts(run: Run) -> None:
    """Store the attempts the run has not stored yet."""
    attempts, run.attempts = run.attempts, []
    if attempts:
        attempts_insert(attempts)


def _record_health(run: Run) -> None:
    """Count the run's answers towards its contracts' breakers, after the lead is settled.

    Outside the settling transaction: breaker rows are locked one at a time, never several
    across a transaction (two runs could take them in opposite orders). Health is advice to
    later runs: failing to count it must not undo or fail a settled lead.
    """
    observations, run.observations = run.observations, []
    rows, run.health_after = run.health_after, None
    try:
        health_record(observations, rows=rows)
    except Exception:
        logger.exception("recording buyer health failed", extra={"lead_id": str(run.lead.pk)})


def _rotation(vertical: Vertical) -> int:
    """The vertical's round-robin position (shared by every worker), for round-robin verticals.

    With the shared cache down, a random position: leads keep flowing, spread at random.
    """
    if vertical.distribution_mode != DistributionMode.ROUND_ROBIN:
        return 0
    key = f"round-robin:{vertical.pk}"
    try:
        if cache.add(key, 0, timeout=None):
            return 0
        try:
            return cache.incr(key)
        except ValueError:
            return 0
    except CACHE_DOWN:
        logger.warning("the shared cache is down: round robin picks at random")
        return random.randrange(1 << 30)  # noqa: S311


def _ping_all(run: Run, offers: list[Offer], ping_fields) -> list[Attempt]:
    """Ping every ping/post offer in parallel under the vertical's deadline; fill in the bids."""
    lead, auction = run.lead, run.auction
    ping = partial(_attempt, auction=auction, lead=lead, kind=EndpointKind.PING)
    attempts: list[Attempt] = []
    to_ping: list[Offer] = []
    for offer in offers:
        contract = offer.contract
        if contract.price_model == PriceModel.FIXED:
            offer.bid = _bid(contract, contract.fixed_price)
            continue
        try:
            offer.ping = _request(contract, EndpointKind.PING, lead, ping_fields)
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
        if result.status is None:
            outcome = AttemptOutcome.TIMEOUT if result.timed_out else AttemptOutcome.ERROR
            attempts.append(
                ping(
                    contract=contract,
                    request=offer.ping,
                    result=result,
                    outcome=outcome,
                    reason=result.error,
                )
            )
            continue
        parsed = parse_response(_rule(contract, EndpointKind.PING), result.status, result.body)
        if parsed.accepted and parsed.price is not None:
            offer.bid = _bid(contract, parsed.price, pinged=True)
            offer.bid_reference = parsed.reference
            outcome = AttemptOutcome.BID
        else:
            outcome = AttemptOutcome.DECLINED
        reason = parsed.reason
        if parsed.accepted and parsed.price is None:
            reason = "bid without a price"
        attempts.append(
            ping(
                contract=contract,
                request=offer.ping,
                result=result,
                outcome=outcome,
                price=parsed.price,
                reason=reason,
                reference=parsed.reference,
            )
        )
    return attempts


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


def _tier_floor(lead: Lead) -> TierFloor | None:
    """The vertical's floor for the lead's tier (lead scoring), when it has one."""
    amount = lead.vertical.tier_floor(lead.tier) if lead.tier else None
    return TierFloor(lead.tier, amount) if amount is not None else None


def _reping_expired(
    run: Run, offers: list[Offer], *, ping_fields, failed: list[int]
) -> list[Offer]:
    """Ping again the offers whose bid the buyer no longer honours; drop those that stop
    bidding or whose new bid falls below the floor or the margin (added to `failed`)."""
    now = time.time()
    expired = [o for o in offers if o.bid is not None and o.bid.expired(now)]
    if not expired:
        return offers
    stale = {o.contract.pk: o.bid for o in expired}
    for offer in expired:
        offer.bid = None
    lead = run.lead
    _record(run, _ping_all(run, expired, ping_fields))
    rebids = [o.bid for o in expired if o.bid is not None]
    kept, _ = filter_bids(
        rebids,
        floor_by_contract={o.contract.pk: o.contract.floor_price for o in expired},
        payout=(lambda price: ZERO) if lead.is_test else lead.source.payout_for,
        min_margin=ZERO if lead.is_test else lead.vertical.min_margin,
        tier_floor=_tier_floor(lead),
    )
    usable = {bid.contract_id for bid in kept}
    fresh = []
    for offer in offers:
        if offer.contract.pk in stale and offer.contract.pk not in usable:
            failed.append(offer.contract.pk)
            offer.bid = stale[offer.contract.pk]
            continue
        fresh.append(offer)
    return fresh


def lead_route(*, lead_id: str, lost_run: int | None = None) -> str:
    """Route one accepted lead to a final state (sold or unsold); return what happened.

    A run that loses its database raises RunLostDatabase instead of ending the lead: the task
    retries it with `lost_run`, and the sweeper resumes it if the retries run out.
    """
    run = _claim(lead_id, lost_run=lost_run)
    if run is None:
        status = Lead.objects.filter(pk=lead_id).values_list("status", flat=True).first()
        return f"not routed: the lead is {status or 'gone'}"
    lead = run.lead
    try:
        if not run.resumed:
            return _route(run)
        interrupted = Auction.objects.filter(lead=lead, note=INTERRUPTED_NOTE).count()
        sales, excluded = _recover(run)
        if sales:
            run.sales = sales
            return _finish(run, note="sold before the worker was lost")
        if interrupted >= MAX_INTERRUPTED_RUNS:
            logger.error(
                "a lead keeps losing its worker; giving up", extra={"lead_id": str(lead.pk)}
            )
            return _finish(
                run,
                status=AuctionStatus.FAILED,
                note=f"routing was interrupted {interrupted} times; given up, needs review",
            )
        return _route(run, excluded_buyers=excluded)
    except DATABASE_LOST as error:
        # Ending the lead as failed would be wrong (and may be impossible): leave its run as it
        # is, held reservations included, for the retry to take over as after a lost worker.
        logger.warning(
            "routing run lost its database; it will be resumed",
            extra={"lead_id": str(lead.pk), "error": type(error).__name__},
        )
        _store_unstored_if_possible(run)
        raise RunLostDatabase(run.auction.pk) from error
    except Exception:
        logger.exception("routing run failed", extra={"lead_id": str(lead.pk)})
        try:
            _abandon(run)
        except DATABASE_LOST as error:
            raise RunLostDatabase(run.auction.pk) from error
        raise


def _store_unstored_if_possible(run: Run) -> None:
    """A sale a buyer accepted is the buyer's: try once more to store it on a fresh connection
    (the error may have been a lock or statement timeout, or a dropped connection). Otherwise
    its held reservation makes the post ambiguous for the run that takes over."""
    if not run.unstored or connection.in_atomic_block:  # a caller's transaction is broken
        return
    connection.close()
    try:
        _store_unstored(run)
    except Exception:
        logger.warning(
            "an accepted sale could not be stored; its post will be marked ambiguous",
            extra={"lead_id": str(run.lead.pk)},
            exc_info=True,
        )


def _abandon(run: Run) -> None:
    """End a run cut short by an error: give back the cap room it held, keep its sales.

    A held reservation may stand for a post that went out: it is recorded as ambiguous, as after
    a lost worker. A sale already made is the buyer's: the lead stays sold to it.
    """
    _store_unstored(run)  # a buyer that accepted has bought the lead, whatever failed after
    _release_held(run, reason="routing failed while this post was in flight: marked for review")
    run.sales = list(Sale.objects.filter(lead=run.lead, status=SaleStatus.SOLD))
    if run.sales:
        _finish(run, note="internal error after a sale; needs review")
    else:
        _finish(run, status=AuctionStatus.FAILED, note="internal error")


def _route(run: Run, *, excluded_buyers: frozenset[int] | set[int] = frozenset()) -> str:
    lead, auction = run.lead, run.auction
    vertical = lead.vertical
    run_deadline = time.monotonic() + RUN_BUDGET_S
    verdicts = explain(lead)
    contracts, ping_fields = delivery_setup(
        vertical, [v.contract_id for v in verdicts if v.eligible]
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
    if not eligible:
        return _finish(run, note="no eligible contract")

    offers = [
        Offer(contract=contracts[v.contract_id]) for v in eligible if v.contract_id in contracts
    ]
    attempts = _ping_all(run, offers, ping_fields)
    bids = [o.bid for o in offers if o.bid is not None]
    payout_for = (lambda price: ZERO) if lead.is_test else lead.source.payout_for
    kept, dropped = filter_bids(
        bids,
        floor_by_contract={o.contract.pk: o.contract.floor_price for o in offers},
        payout=payout_for,
        min_margin=ZERO if lead.is_test else vertical.min_margin,
        tier_floor=_tier_floor(lead),
        # Internal teams: the lead is not resold, so no margin or tier floor applies.
        internal={
            o.contract.pk for o in offers if o.contract.delivery_method == DeliveryMethod.TEAM
        },
    )
    _record(run, attempts)
    if not kept:
        reasons = "; ".join(dropped.values())
        return _finish(run, note=f"no usable bid{': ' + reasons if reasons else ''}")

    ranked = rank(
        kept,
        mode=vertical.distribution_mode,
        rotation=_rotation(vertical),
        rng=random.Random(),  # noqa: S311
    )
    plan = plan_sale(ranked, max_buyers=vertical.max_buyers)
    note = _sell(
        run,
        plan,
        offers={o.contract.pk: o for o in offers},
        ping_fields=ping_fields,
        run_deadline=run_deadline,
    )
    return _finish(run, note=note)


def _sell(run: Run, plan, *, offers: dict[int, Offer], ping_fields, run_deadline: float) -> str:
    """Post to the plan's candidates, falling back on failures, until sold, exhausted or out of
    time; return the run's note."""
    sold: list[int] = []
    failed: list[int] = []
    out_of_time = False
    while True:
        candidates = plan.next_candidates(sold=sold, failed=failed)
        if not candidates:
            break
        if not _store_before_more_posts(run, sold=sold, failed=failed):
            continue
        if time.monotonic() >= run_deadline:
            out_of_time = True
            break
        offers_now = _reping_expired(
            run,
            [offers[b.contract_id] for b in candidates],
            ping_fields=ping_fields,
            failed=failed,
        )
        if not offers_now:
            continue
        for bid, sale in _post_all(run, offers_now, deadline=run_deadline):
            if sale is None:
                failed.append(bid.contract_id)
            else:
                sold.append(bid.contract_id)
    note = _outcome_note(run.sales, failed=len(failed), plan_reason=plan.reason)
    if out_of_time and not run.sales:
        note = f"ran out of time after {len(failed)} failed posts"
    return note


def _outcome_note(sales: list[Sale], *, failed: int, plan_reason: str) -> str:
    if not sales:
        return "every buyer rejected or failed the post"
    total = sum((sale.price for sale in sales), ZERO)
    note = f"sold to {plural(len(sales), 'buyer')} for {money(total)}"
    if failed:
        note += f" after {plural(failed, 'failed post')}"
    return f"{note} (first plan: {plan_reason})"


def _post_all(run: Run, offers: list[Offer], *, deadline: float) -> list[tuple[Bid, Sale | None]]:
    """Reserve caps and post to each offer in parallel; return each bid with its sale, if any."""
    lead, auction = run.lead, run.auction
    post = partial(_attempt, auction=auction, lead=lead, kind=EndpointKind.POST)
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
            request = _request(contract, EndpointKind.POST, lead, frozenset())
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
        _record(run, attempts)
    return outcomes


def _settle_post(run: Run, *, offer, reservation, request, result, attempts, defer=False):
    lead, auction = run.lead, run.auction
    post = partial(_attempt, auction=auction, lead=lead, kind=EndpointKind.POST)
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
    parsed = parse_response(_rule(contract, EndpointKind.POST), result.status, result.body)
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
    if defer and connection.vendor == "postgresql" and sale.price == reservation.price:
        run.unstored.append((sale, reservation))
        run.sales.append(sale)
        return offer.bid, sale
    if not _sale_store_or_refuse(run, sale, reservation):
        return offer.bid, None
    run.sales.append(sale)
    return offer.bid, sale


def _sale_store_or_refuse(run: Run, sale: Sale, reservation: CapReservation) -> bool:
    """Store the sale; return False when the database refuses it (the buyer has bought the lead
    already), giving its reservation's room back."""
    try:
        _sale_store(sale, reservation=reservation)
    except IntegrityError:
        logger.error("a second sale to one buyer was refused", extra={"lead_id": str(run.lead.pk)})
        cap_release(reservation=reservation)
        return False
    return True


def _store_before_more_posts(run: Run, *, sold: list[int], failed: list[int]) -> bool:
    """Store the run's sales so far before more posts go out. Return False when the database
    refused one (its contract moves from sold to failed, and the plan must be asked again)."""
    refused = _store_unstored(run)
    for sale in refused:
        sold.remove(sale.contract_id)
        failed.append(sale.contract_id)
    return not refused


def _store_unstored(run: Run) -> list[Sale]:
    """Store the run's unstored sales one by one; return those the database refused (a second
    sale to one buyer), which leave run.sales."""
    refused = []
    while run.unstored:
        sale, reservation = run.unstored[0]
        stored = _sale_store_or_refuse(run, sale, reservation)
        run.unstored.pop(0)  # only once it is stored or refused: a failure leaves it on the run
        if not stored:
            run.sales.remove(sale)
            refused.append(sale)
    return refused


def _sale_store(sale: Sale, *, reservation: CapReservation) -> None:
    """Store the sale and commit its cap reservation, both or neither.

    On PostgreSQL, when the buyer paid the price reserved, one statement does both, atomic on
    its own: no transaction to open and commit around them.
    """
    commit = (
        cap_commit_sql(reservations=[(reservation, sale.price)])
        if connection.vendor == "postgresql"
        else None
    )
    if commit is None:
        with transaction.atomic():
            cap_commit(reservation=reservation, price=sale.price)
            sale.save(force_insert=True)
        return
    sql, params = _sales_sql([(sale, reservation)], commit)
    with one_statement(), connection.cursor() as cursor:
        cursor.execute(f"WITH {sql} SELECT {_SALES_STORED}", params)
        _sales_stored([(sale, reservation)], cursor.fetchone())


def _sales_sql(
    sales: list[tuple[Sale, CapReservation]], commit: tuple[str, list]
) -> tuple[str, list]:
    """CTEs that commit the sales' reservations and insert the sales, with their params; the
    statement that holds them selects _SALES_STORED for _sales_stored."""
    commit_sql, params = commit
    rows = []
    for sale, _ in sales:
        columns, placeholders, sale_params = insert_values(sale, stored_fields(Sale))
        rows.append(f"({placeholders})")
        params = [*params, *sale_params]
    sql = (
        f"committed AS ({commit_sql}), "  # noqa: S608 - names of the models
        f"sold AS (INSERT INTO {quoted(Sale._meta.db_table)} ({columns}) "
        f"VALUES {', '.join(rows)} RETURNING id, buyer_id)"
    )
    return sql, params


_SALES_STORED = (
    "(SELECT array_agg(ARRAY[id, buyer_id]) FROM sold), (SELECT array_agg(id) FROM committed)"
)


def _sales_stored(sales: list[tuple[Sale, CapReservation]], row) -> None:
    """Mark the sales stored and their reservations committed, from _SALES_STORED's values."""
    ids, committed = row
    by_buyer = {buyer_id: pk for pk, buyer_id in ids}
    for sale, reservation in sales:
        inserted(sale, by_buyer[sale.buyer_id])
        if reservation.pk in (committed or []):
            reservation.status = ReservationStatus.COMMITTED


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


def _finish(run: Run, *, note: str, status: str | None = None) -> str:
    """Settle the lead and its auction, with every attempt of the run, in one transaction."""
    lead = run.lead
    if connection.vendor == "postgresql":
        try:
            with one_statement():
                settled, changes = _settle_in_one_statement(run, note=note, status=status)
        except IntegrityError:
            if not run.unstored:
                raise
            # A sale the database refuses (a second sale to one buyer): the sale goes on its
            # own and the lead settles with what was stored.
            refused = _store_unstored(run)
            if refused:
                note = (
                    f"{note}; {plural(len(refused), 'second sale')} to one buyer refused"
                    if run.sales
                    else f"the buyer that accepted had bought the lead already ({note})"
                )
            with one_statement():
                settled, changes = _settle_in_one_statement(run, note=note, status=status)
    else:
        with transaction.atomic():
            changes, ending = _settlement(run, note=note, status=status)
            _save_attempts(run)
            settled = Lead.objects.filter(pk=lead.pk, status=LeadStatus.ROUTING).update(**changes)
            Auction.objects.filter(pk=run.auction.pk).update(**ending)
    if settled:
        for name, value in changes.items():
            setattr(lead, name, value)
    else:  # settled elsewhere (by hand, say): report what the lead really is
        lead.refresh_from_db(fields=["status", "sale_price", "payout", "sold_at"])
    # Now, or when a caller's transaction commits.
    postback_schedule(lead=lead)
    transaction.on_commit(lambda: lead_outcome_publish(lead.pk))
    _record_health(run)
    return f"{lead.status}: {note}"


def _settlement(run: Run, *, note: str, status: str | None) -> tuple[dict, dict]:
    """The changes that settle the lead (if still routing) and end its auction."""
    sales = run.sales
    now = timezone.now()
    if sales:
        final = AuctionStatus.SOLD
        changes = {
            "status": LeadStatus.SOLD,
            "sale_price": sum((s.price for s in sales), ZERO),
            "payout": sum((s.payout for s in sales), ZERO),
            "sold_at": now,
        }
    else:
        final = status or AuctionStatus.UNSOLD
        failed = final == AuctionStatus.FAILED
        changes = {"status": LeadStatus.FAILED if failed else LeadStatus.UNSOLD}
    ending = {
        "status": final,
        "finished_at": now,
        "note": note[:500],
        "explanation": run.auction.explanation,
        "eligible_count": run.auction.eligible_count,
    }
    return {"updated_at": now, **changes}, ending


def _assignments(model, values: dict) -> tuple[str, list]:
    """`column = %s, ...` and the params that set these fields, prepared as the ORM would."""
    fields = [model._meta.get_field(name) for name in values]
    sql = ", ".join(f"{quoted(f.column)} = %s" for f in fields)
    return sql, [f.get_db_prep_save(values[f.name], connection) for f in fields]


def _settle_in_one_statement(run: Run, *, note: str, status: str | None) -> tuple[int, dict]:
    """Store the run's unstored sales (committing their reservations), settle the lead (if
    still routing), end the auction and store the run's attempts, in one statement, atomic on its
    own. Return 1 when the lead was settled, and the lead's changes."""
    changes, ending = _settlement(run, note=note, status=status)
    lead_sets, lead_params = _assignments(Lead, changes)
    auction_sets, auction_params = _assignments(Auction, ending)
    sql = (
        f"WITH settled AS (UPDATE {quoted(Lead._meta.db_table)} SET {lead_sets} "  # noqa: S608
        "WHERE id = %s AND status = %s RETURNING id), "
        f"ended AS (UPDATE {quoted(Auction._meta.db_table)} SET {auction_sets} WHERE id = %s)"
    )
    params = [*lead_params, run.lead.pk, LeadStatus.ROUTING, *auction_params, run.auction.pk]
    # Taken off the run before the statement runs: if it fails for their sake (a value the
    # database refuses), the run is abandoned without them rather than failing again on them.
    attempts, run.attempts = run.attempts, []
    if attempts:
        insert, insert_params = attempts_insert_sql(attempts)
        sql += f", recorded AS ({insert})"
        params += insert_params
    unstored = run.unstored
    stored = "NULL, NULL"
    if unstored:
        commit = cap_commit_sql(reservations=[(r, sale.price) for sale, r in unstored])
        sales_sql, sales_params = _sales_sql(unstored, commit)
        sql += f", {sales_sql}"
        params += sales_params
        stored = _SALES_STORED
    # The breakers the run's answers count towards, for _record_health to read no more.
    heard = sorted({o.contract.pk for o in run.observations})
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                f"{sql} SELECT (SELECT count(*) FROM settled), {HEALTH_JSON_SQL}, {stored}",  # noqa: S608
                [*params, heard],
            )
            settled, health, *sales_stored = cursor.fetchone()
    except IntegrityError:
        if unstored:  # a sale refused: the attempts go with the settlement that follows
            run.attempts = attempts
        raise
    run.unstored = []
    if unstored:
        _sales_stored(unstored, sales_stored)
    run.health_after = health_states_from_json(health)
    return settled, changes
