"""Inbound pings: a seller's ping answered with a price (eligibility, caps, the buyers pinged
under the vertical's deadline, in the web request), and the post that takes its bids up."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from exchange.models import InboundPing, PingAttempt, PingStatus
from exchange.rules import (
    INVALID_FIELDS,
    PingRequest,
    changed_fields,
    held_bid_from_record,
    held_bid_record,
    offered_price,
    ping_expiry,
    ping_field_errors,
    ping_specs,
    pinged_values,
    read_ping,
)
from exchange.selectors import consumer_seen
from exchange.store import ping_store
from leads.intake import normalise_fields
from leads.models import Lead, LeadStatus, Source, SourceApiKey, Vertical
from leads.selectors import source_field_specs, vertical_personal_fields
from leads.services import PingRefusal, source_vertical
from routing.engine.eligibility import eligible_offers
from routing.engine.held import HeldBid
from routing.engine.pings import ping_all
from routing.engine.run import Run, record_round
from routing.engine.selection import sale_plan, usable_bids
from routing.health import health_record
from routing.models import Attempt, Auction, ContractHealth
from routing.selectors import delivery_setup

logger = logging.getLogger(__name__)
# What an inbound ping's timeline copies of each attempt the engine made.
ATTEMPT_FIELDS = tuple(
    f.name for f in PingAttempt._meta.concrete_fields if f.name not in {"id", "ping", "contract"}
)


@dataclass(frozen=True)
class PingResult:
    """A stored ping and how it was answered: `problem` names a refusal's problem type."""

    ping: InboundPing
    problem: str = ""
    detail: str = ""
    errors: dict[str, list[str]] | None = None


def ping_answer(
    *,
    source: Source,
    api_key: SourceApiKey | None,
    sent: PingRequest,
    remote_ip: str | None = None,
) -> PingResult:
    """Read a seller's ping (sent in its posting profile's format: exchange.api), run
    eligibility and ping the eligible buyers under the vertical's deadline, and store the ping
    with its bids, the price offered and its expiry.

    Synchronous: the seller waits for its price. Nothing is reserved: caps, budgets and earlier
    purchases are checked (a contract that cannot take the lead does not bid) and enforced again
    at the post.
    """
    started = time.monotonic()
    common = {"source": source, "api_key": api_key, "remote_ip": remote_ip}
    envelope, errors = read_ping(sent.document)
    if envelope is None:
        return _refused(
            "invalid-ping",
            PingStatus.INVALID,
            "The ping is not valid; see errors.",
            errors=errors,
            raw_body=_refused_body(sent),
            **common,
        )
    submission = envelope.submission
    vertical, detail = source_vertical(source=source, slug=submission.vertical, verb="ping")
    if detail or vertical is None:
        body = _refused_body(sent)
        return _refused("forbidden", PingStatus.FORBIDDEN, detail, raw_body=body, **common)
    specs = source_field_specs(vertical)
    _, ping_fields = delivery_setup(vertical, [])
    personal = vertical_personal_fields(vertical)
    kept_body = sent.kept_body(personal)
    errors = ping_field_errors(
        specs, submission.fields, ping_fields=ping_fields - personal, personal=personal
    )
    normalised, field_errors = normalise_fields(
        ping_specs(specs, ping_fields - personal),
        {k: v for k, v in submission.fields.items() if f"fields.{k}" not in errors},
    )
    errors.update(field_errors)
    if errors or normalised is None:
        return _refused(
            "invalid-ping",
            PingStatus.INVALID,
            INVALID_FIELDS,
            errors=errors,
            raw_body=kept_body,
            vertical=vertical,
            **common,
        )
    ping = InboundPing(
        vertical=vertical,
        is_test=submission.test,
        sub_id=submission.sub_id,
        fields=pinged_values(normalised.data, submission.fields),
        email_sha256=envelope.email_sha256,
        phone_sha256=envelope.phone_sha256,
        raw_body=kept_body,
        **common,
    )
    earlier = consumer_seen(ping)
    if earlier:
        ping.status, ping.reason = PingStatus.DUPLICATE, earlier
        _store(ping, started=started)
        return PingResult(ping=ping, problem="duplicate-lead", detail=earlier)

    now = timezone.now()
    # Unsaved: what eligibility and the buyers' pings read. A ping that shows a lead id shows
    # the ping's.
    lead = Lead(
        id=ping.pk,
        vertical=vertical,
        source=source,
        status=LeadStatus.ACCEPTED,
        is_test=submission.test,
        sub_id=submission.sub_id,
        data=normalised.data,
        zip_code=normalised.zip_code,
        state=normalised.state,
        # The consumer, for the already-bought rule, as the seller hashed it.
        email_sha256=ping.email_sha256,
        phone_sha256=ping.phone_sha256,
        received_at=now,
    )
    run = Run(lead=lead, auction=Auction(lead=lead))
    pending = frozenset(spec.name for spec in specs) - frozenset(ping.fields)
    offers, fields_to_ping = eligible_offers(run, excluded_buyers=frozenset(), pending=pending)
    attempts = ping_all(run, offers, fields_to_ping) if offers else []
    kept, dropped = usable_bids(run, offers)
    record_round(run, attempts)
    ping.explanation = run.auction.explanation
    ping.eligible_count = run.auction.eligible_count
    if kept:
        plan = sale_plan(run, kept)
        answers = {o.contract.pk: o.ping_answer for o in offers}
        ping.held_bids = [held_bid_record(b, answers[b.contract_id]) for b in plan.candidates]
        ping.status = PingStatus.BID
        ping.price = offered_price(
            plan.chosen, payout_model=source.payout_model, payout_for=source.payout_for
        )
        ping.buyer_price = sum((bid.price for bid in plan.chosen), Decimal("0.00"))
        ping.expires_at = ping_expiry(
            plan.candidates, now=now, max_seconds=settings.PING_MAX_VALID_SECONDS
        )
    else:
        ping.status = PingStatus.NO_BID
        ping.reason = (
            "no eligible contract"
            if not offers
            else "no usable bid" + (": " + "; ".join(dropped.values()) if dropped else "")
        )[:500]
    health = _store(ping, started=started, attempts=run.attempts, run=run)
    _record_health(run, rows=health)
    return PingResult(ping=ping)


def _refused_body(sent: PingRequest) -> str:
    """A refused ping's body as it may be kept: its vertical's personal fields removed, or
    every field's value when no vertical of that name exists."""
    vertical = Vertical.objects.filter(slug=sent.vertical_slug).first()
    return sent.kept_body(vertical_personal_fields(vertical) if vertical is not None else None)


def _refused(
    problem: str, status: str, detail: str, *, errors=None, vertical=None, **fields: Any
) -> PingResult:
    ping = InboundPing(status=status, reason=detail[:500], errors=errors or {}, vertical=vertical)
    for name, value in fields.items():
        setattr(ping, name, value)
    ping.save(force_insert=True)
    return PingResult(ping=ping, problem=problem, detail=detail, errors=errors)


def _store(
    ping: InboundPing, *, started: float, attempts: list[Attempt] = (), run: Run | None = None
) -> dict[int, ContractHealth] | None:
    """Store the ping and its buyers' attempts (the engine's rows, as a ping's timeline); return
    the health rows of the contracts the run heard from when the store read them with it."""
    ping.duration_ms = round((time.monotonic() - started) * 1000)
    rows = [
        PingAttempt(
            ping=ping,
            contract=attempt.contract,
            **{name: getattr(attempt, name) for name in ATTEMPT_FIELDS},
        )
        for attempt in attempts
    ]
    heard = {o.contract.pk for o in run.observations} if run is not None else ()
    return ping_store(ping, rows, heard=heard)


def _record_health(run: Run, *, rows: dict[int, ContractHealth] | None) -> None:
    """The buyers' answers to a ping count towards their breakers like a run's."""
    try:
        health_record(run.observations, rows=rows)
    except Exception:
        logger.exception("recording buyer health after a ping failed")


# --- The post that takes a ping up (intake calls these: leads.services.PingPosts) -------------


def _ping_of(source: Source, ping_id: str) -> InboundPing | None:
    try:
        key = uuid.UUID(ping_id)
    except ValueError:
        return None
    # No row lock: lead_submit checks a ping's post under its advisory lock on `ping:{id}` (the
    # id in one spelling), so two posts of one ping never run this at once.
    return InboundPing.objects.filter(pk=key, source=source).first()


class PingPosts:
    """Intake's checks of a post naming a ping, and the ping's tie to the lead it became."""

    def check(
        self, *, source: Source, vertical: Vertical, ping_id: str, data: dict[str, Any], test: bool
    ) -> PingRefusal | None:
        ping = _ping_of(source, ping_id)
        if ping is None or ping.status not in (PingStatus.BID, PingStatus.NO_BID):
            return PingRefusal(
                "ping-not-found",
                f"No ping of yours has the id {ping_id!r}.",
                {"ping_id": ["Unknown ping id."]},
            )
        if ping.status == PingStatus.NO_BID:
            return PingRefusal(
                "ping-without-bid",
                "This ping got no bid, so it holds no price to take up.",
                {"ping_id": ["The ping was answered no_bid."]},
            )
        return ping_post_refusal(ping, vertical=vertical, data=data, test=test, now=timezone.now())

    def attach(self, *, ping_id: str, lead: Lead) -> None:
        taken = InboundPing.objects.filter(pk=ping_id, lead__isnull=True).update(
            lead=lead, posted_at=timezone.now()
        )
        if not taken:  # lead_submit's advisory lock on `ping:{id}` makes this unreachable
            raise RuntimeError(f"ping {ping_id} was taken up by another post meanwhile")


PING_POSTS = PingPosts()


def ping_post_refusal(
    ping: InboundPing, *, vertical: Vertical, data: dict[str, Any], test: bool, now: datetime
) -> PingRefusal | None:
    """Why a post may not take up this ping that bid (expired, taken, changed), or None."""
    if ping.expires_at is not None and ping.expires_at <= now:
        return PingRefusal(
            "ping-expired",
            f"This ping's price was held until {ping.expires_at.isoformat()}; ping again.",
            {"ping_id": ["Expired."]},
        )
    if ping.lead_id is not None:
        return PingRefusal(
            "ping-already-posted",
            "This ping was taken up by an earlier post; retry to get that post's answer.",
            {"ping_id": ["Already posted."]},
        )
    errors = changed_fields(ping.fields, data)
    if ping.vertical_id != vertical.pk:
        errors["vertical"] = [f"Pinged for another vertical than {vertical.slug!r}."]
    if ping.is_test != test:
        errors["test"] = [f"Pinged with test {ping.is_test}, posted with test {test}."]
    if errors:
        names = ", ".join(sorted(k.removeprefix("fields.") for k in errors))
        return PingRefusal(
            "ping-fields-changed", f"The post changed what was pinged: {names}.", errors
        )
    return None


def ping_held_bids(lead: Lead) -> list[HeldBid] | None:
    """The bids the lead holds from the ping it took up (routing.engine.held), or None."""
    records = InboundPing.objects.filter(lead_id=lead.pk).values_list("held_bids", flat=True)
    # lead.ping_id says the lead took a ping up (intake set it); the ping row says which.
    for held in records:
        return [held_bid_from_record(record) for record in held]
    return None
