"""Ops tools for one contract: preview its requests, send test pings and posts, and read a
buyer's answer (typed in, or stored in an attempt) by the contract's rules of today.

A test builds its request exactly as routing does (routing.engine.mapping.request_for: the
lead's context, the field mappings or the request template, the contract's secrets), sends it
through the same HTTP seam (outbound.http.send_all) and reads the answer by the same rule
(rule_for), so what ops see is what a buyer would get. Nothing else happens: no attempt,
auction or sale is recorded, no cap is reserved or charged, no lead changes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from buyers.models import Contract, EndpointKind, PriceModel
from leads.models import Lead
from outbound.http import send_all
from outbound.rules import Outcome
from routing.delivery import EMAIL_METHOD
from routing.engine.mapping import request_for, rule_for
from routing.integration import sample_lead as integration_sample_lead
from routing.integration import sample_ping_answer
from routing.mapping import MappingError, OutgoingRequest
from routing.models import Attempt, AttemptOutcome
from routing.responses import ParsedResponse, parse_response
from routing.selectors import vertical_ping_fields
from routing.team_delivery import TEAM_METHOD

logger = logging.getLogger(__name__)


def sample_lead(*, contract: Contract) -> Lead:
    """Return the vertical's sample lead, unsaved (routing.integration.sample_lead)."""
    return integration_sample_lead(contract.vertical)


def _post_templates(contract: Contract) -> tuple[str, ...]:
    """What a post of the contract is made from: its endpoint's templates and its mappings'
    sources, where a `ping.<name>` is read."""
    texts: list[str] = []
    endpoint = contract.endpoints.filter(kind=EndpointKind.POST).first()
    if endpoint is not None:
        texts.append(endpoint.body_template or "")
        for part in (endpoint.query, endpoint.headers):
            if isinstance(part, dict):
                texts += [str(value) for value in part.values()]
    texts += list(contract.mappings.values_list("source_field", flat=True))
    return tuple(texts)


@dataclass(frozen=True)
class PingAnswer:
    """The ping's answer a post carries (routing/context.py's `ping`), and where it came from."""

    values: dict[str, Any]
    source: str


def _ping_answer(contract: Contract, lead: Lead | None) -> PingAnswer | None:
    """What routing would hand a post of this lead from the contract's ping: for a real lead,
    what its latest ping to the contract captured; for the sample lead, a sample answer with
    every `ping.<name>` the post reads. A fixed-price contract is never pinged: nothing."""
    if contract.price_model != PriceModel.PING_POST:
        return None
    if lead is None:
        return PingAnswer(
            values=sample_ping_answer(_post_templates(contract)), source="a sample ping answer"
        )
    attempt = (
        # Only a bid's answer reaches a post, as in routing.
        Attempt.objects.filter(
            lead=lead, contract=contract, kind=EndpointKind.PING, outcome=AttemptOutcome.BID
        )
        .order_by("-created_at", "-id")
        .first()
    )
    if attempt is None:
        return None
    captures = attempt.captures if isinstance(attempt.captures, dict) else {}
    return PingAnswer(
        values={"reference": attempt.buyer_reference, "price": attempt.price, **captures},
        source=f"the lead's latest ping to this contract (attempt {attempt.pk}, "
        f"{attempt.get_outcome_display().lower()})",
    )


@dataclass(frozen=True)
class RequestPreview:
    """A ping or post as routing would send it, or why it would not be sent.

    `request` shows as stored: URL, headers and body with the secrets masked. A post's
    `ping_answer` is the ping's answer it carries, if any.
    """

    kind: str
    lead_label: str
    request: OutgoingRequest | None = None
    error: str = ""
    ping_answer: PingAnswer | None = None
    notes: tuple[str, ...] = ()

    @property
    def is_email(self) -> bool:
        return self.request is not None and self.request.method == EMAIL_METHOD


@dataclass(frozen=True)
class TestSendResult:
    """What a test ping or post sent, what came back, and what the response rules made of it."""

    preview: RequestPreview
    result: Outcome | None = None
    parsed: ParsedResponse | None = None
    note: str = ""

    @property
    def sent(self) -> bool:
        return self.result is not None

    @property
    def reading(self) -> AnswerReading | None:
        return None if self.parsed is None else AnswerReading(self.preview.kind, self.parsed)


def contract_request_preview(
    *, contract: Contract, kind: str, lead: Lead | None = None
) -> RequestPreview:
    """Build the contract's ping or post for a lead (or the vertical's sample lead) exactly as
    routing does; send nothing.

    A post carries what routing would give it: the contract's bid (its fixed price, or the
    ping's price) and the ping's answer (`_ping_answer`). Raise ValueError for a lead of
    another vertical: its fields mean nothing to this contract.
    """
    if kind not in (EndpointKind.PING, EndpointKind.POST):
        raise ValueError(f"kind must be 'ping' or 'post', not {kind!r}")
    if lead is not None and lead.vertical_id != contract.vertical_id:
        raise ValueError("The lead is of another vertical than the contract.")
    label = f"lead {lead.pk}" if lead is not None else "the vertical's sample lead"
    subject = lead if lead is not None else sample_lead(contract=contract)
    ping = _ping_answer(contract, lead) if kind == EndpointKind.POST else None
    notes: list[str] = []
    bid: Decimal | None = None
    if kind == EndpointKind.POST:
        if contract.price_model == PriceModel.FIXED:
            bid = contract.fixed_price
        elif ping is not None:
            bid = ping.values.get("price")
        else:
            notes.append(
                "This lead was never pinged by this contract: the post carries no ping answer "
                "and no bid."
            )
    try:
        request = request_for(
            contract,
            kind,
            subject,
            vertical_ping_fields(contract.vertical_id),
            bid=bid,
            ping=ping.values if ping is not None else None,
        )
    except MappingError as exc:
        return RequestPreview(kind=kind, lead_label=label, error=str(exc), ping_answer=ping)
    if request is None:
        missing = (
            "This contract has no ping endpoint: it is not pinged (fixed price or direct post)."
            if kind == EndpointKind.PING
            else "This contract has no post endpoint."
        )
        return RequestPreview(kind=kind, lead_label=label, error=missing)
    if request.method == TEAM_METHOD:
        # A test must not assign a real member a lead (nor count against their quota).
        missing = (
            f"Team delivery: routing assigns the lead to a member of {contract.team}; nothing "
            "is posted, so there is nothing to send as a test."
        )
        return RequestPreview(kind=kind, lead_label=label, error=missing)
    return RequestPreview(
        kind=kind, lead_label=label, request=request, ping_answer=ping, notes=tuple(notes)
    )


def contract_test_send(
    *, contract: Contract, kind: str, lead: Lead | None = None, actor: str
) -> TestSendResult:
    """Send the contract a test ping or post and read the answer by its response rules.

    The request is the one routing would send (for a real lead, with its PII in a post). No
    attempt, sale or cap charge is recorded; the buyer's answer is only shown. An e-mail post is
    never sent as a test: the preview shows the message.
    """
    preview = contract_request_preview(contract=contract, kind=kind, lead=lead)
    if preview.error or preview.request is None:
        return TestSendResult(preview=preview, note="Not sent.")
    if preview.is_email:
        return TestSendResult(
            preview=preview, note="E-mail delivery: the message is shown, not sent, in a test."
        )
    request = preview.request
    connect_s, read_s = request.timeout
    result = send_all([request], deadline=time.monotonic() + connect_s + read_s + 1)[0]
    parsed = (
        parse_response(rule_for(contract, kind), result.status, result.body)
        if result.status is not None
        else None
    )
    logger.info(
        "contract test send",
        extra={
            "contract_id": contract.pk,
            "kind": kind,
            "actor": actor,
            "lead_id": str(lead.pk) if lead is not None else None,
            "status": result.status,
            "latency_ms": result.latency_ms,
            "accepted": parsed.accepted if parsed else None,
        },
    )
    return TestSendResult(preview=preview, result=result, parsed=parsed)


# --- Reading answers by today's rules ---------------------------------------------------------


@dataclass(frozen=True)
class AnswerReading:
    """What the contract's rule for pings or posts reads in an answer, and what routing would
    make of it where that is not plain from the reading."""

    kind: str
    parsed: ParsedResponse

    @property
    def note(self) -> str:
        if not self.parsed.accepted or self.parsed.price is not None:
            return ""
        if self.kind == EndpointKind.PING:
            return "Routing takes this for a decline: a bid without a price."
        return "Accepted without a price: the sale is booked at the bid or the fixed price."


def contract_answer_read(*, contract: Contract, kind: str, status: int, body: str) -> AnswerReading:
    """Read a buyer's answer to a ping or post by the contract's rules of today, as routing
    reads one (rule_for, parse_response); nothing is sent or recorded."""
    if kind not in (EndpointKind.PING, EndpointKind.POST):
        raise ValueError(f"kind must be 'ping' or 'post', not {kind!r}")
    return AnswerReading(kind, parse_response(rule_for(contract, kind), status, body))


def attempt_answer_replay(*, attempt: Attempt) -> AnswerReading | None:
    """Read a stored attempt's answer by its contract's rules of today (after a rule was
    fixed); None when the buyer never answered. An answer stored truncated (past 64 KiB) is
    read as stored."""
    if attempt.response_status is None:
        return None
    return contract_answer_read(
        contract=attempt.contract,
        kind=attempt.kind,
        status=attempt.response_status,
        body=attempt.response_body,
    )
