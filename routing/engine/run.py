"""What one routing run carries from its claim to its settlement, and the attempts it keeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from buyers.models import CapReservation, Contract, EndpointKind
from leads.models import Lead
from outbound.rules import Outcome
from routing.health import Observation
from routing.mapping import OutgoingRequest
from routing.models import Attempt, Auction, ContractHealth, Sale
from routing.selection import Bid

ZERO = Decimal("0.00")
MIN_PINGS_TO_BLAME_US = 4


@dataclass
class Offer:
    """An eligible contract with what is needed to ping and post it."""

    contract: Contract
    ping: OutgoingRequest | None = None
    bid: Bid | None = None
    # What the contract's ping rule read from the buyer's answer: the post may carry it back.
    ping_answer: dict[str, Any] = field(default_factory=dict)


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


def new_attempt(
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
    captures: dict[str, str] | None = None,
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
        captures=captures or {},
        error=result.error if result else "",
    )


def record_round(run: Run, attempts: list[Attempt]) -> None:
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
