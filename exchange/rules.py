"""The exchange's pure parts: reading a ping's envelope, which fields a ping may carry, what
changed between a ping and its post, the price offered to the seller and how long it holds.

Nothing here touches the database. A ping's envelope is the lead envelope (leads/intake.py reads
it) less consent and ping_id, plus the optional hashed contact details:

    {"vertical": "auto-insurance", "fields": {"zip_code": "10001", ...}, "sub_id": "...",
     "test": false, "email_sha256": "<hex>", "phone_sha256": "<hex>"}

`email_sha256` is the SHA-256 (lower-case hex) of the e-mail address as intake normalises it:
trimmed and lower-cased (`Mary.Major@Example.com ` -> sha256("mary.major@example.com")).
`phone_sha256` is that of the phone in E.164 (`(212) 555-0142` -> sha256("+12125550142")).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from leads.intake import Errors, FieldSpec, Submission, parse_submission
from leads.models import PayoutModel
from leads.profiles import ENVELOPE, PING_PARAMETERS, Reading, parameters_text
from routing.engine.held import HeldBid
from routing.selection import Bid

HASH_KEYS = PING_PARAMETERS
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# Envelope members a ping may not carry: consent is personal (IP, browser), and a ping is not a
# post of an earlier ping.
NOT_IN_PING = ("consent", "ping_id")
# What a ping's body may hold: the envelope less NOT_IN_PING, plus the hashes.
PING_KEYS = ("vertical", "fields", "sub_id", "test", *HASH_KEYS)
REMOVED = "[removed: personal data is never pinged]"
# The envelope paths of a flat ping's parameters kept when its vertical is unknown: none is
# personal (every other value is removed, as any field may be).
KEPT_PARAMETERS = frozenset({"vertical", "sub_id", "test", "ping_id", *PING_PARAMETERS})
INVALID_FIELDS = "The ping has fields it may not carry or that are not valid; see errors."
ZERO = Decimal("0.00")


@dataclass(frozen=True)
class PingRequest:
    """A ping as its seller sent it, in its posting profile's format: read as the envelope
    (leads.profiles), with the body as it came (the key masked) and, for a flat format, its
    parameters (the key masked)."""

    reading: Reading
    raw_body: str
    format: str = ENVELOPE
    parameters: Mapping[str, Any] | None = None
    # The profile's vertical for a ping that names none.
    default_vertical: str = ""

    @property
    def vertical_slug(self) -> str:
        """The vertical the ping names, or its profile's default."""
        named = self.document.get("vertical") if isinstance(self.document, dict) else None
        return named if isinstance(named, str) and named else self.default_vertical

    @property
    def document(self) -> Any:
        return self.reading.document

    def kept_body(self, personal: frozenset[str] | None) -> str:
        """The body as it may be kept: the values of personal fields and consent items sent
        by mistake removed, named as the seller named them. `personal` None (the vertical is
        unknown): every field's value removed, as any of them may be personal."""
        if self.parameters is None:
            try:
                sent = json.loads(self.raw_body)
            except ValueError:
                return unread_body_note(len(self.raw_body.encode()), "JSON")
            if personal is not None:
                names = {self.reading.seller_name(f"fields.{name}") for name in personal}
                personal = frozenset(n.removeprefix("fields.") for n in names)
            return storable_ping_body(sent, self.raw_body, personal)
        paths = {seller: path for path, seller in self.reading.names.items()}
        if personal is None:
            leaks = {n for n in self.parameters if paths.get(n) not in KEPT_PARAMETERS}
        else:
            leaks = {self.reading.seller_name(f"fields.{name}") for name in personal}
            leaks |= {seller for seller, path in paths.items() if path.startswith("consent.")}
        if not leaks & self.parameters.keys():
            return self.raw_body
        kept = {n: REMOVED if n in leaks else v for n, v in self.parameters.items()}
        return parameters_text(kept, self.format)


def unread_body_note(size: int, content_type: str) -> str:
    """What is kept of a ping's body that was not read (unreadable, another format than the
    profile's, too long): its size and type, never its text."""
    return (
        f"[not kept: {size} bytes of {content_type or 'no content type'}, not read as a ping; "
        "a ping never needs personal data, so its text is not stored]"
    )


@dataclass(frozen=True)
class PingEnvelope:
    submission: Submission
    email_sha256: str = ""
    phone_sha256: str = ""


def read_ping(document: Any) -> tuple[PingEnvelope | None, Errors]:
    """Read a ping's envelope (the lead envelope's reading, leads.intake.parse_submission);
    return it, or None and every error at once."""
    if not isinstance(document, dict):
        return None, parse_submission(document)[1]
    errors: Errors = {}
    hashes: dict[str, str] = {}
    for key in HASH_KEYS:
        value = document.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str) or not SHA256_RE.match(value.strip().lower()):
            errors[key] = ["Give the SHA-256 of the normalised value as 64 hexadecimal digits."]
            continue
        hashes[key] = value.strip().lower()
    if "consent" in document:
        consent = document["consent"]
        members = [f"consent.{m}" for m in consent] if isinstance(consent, dict) else []
        for path in members or ["consent"]:
            errors[path] = [
                "A ping carries no consent record: it holds personal data; send it with the post."
            ]
    if "ping_id" in document:
        errors["ping_id"] = ["A ping has no ping_id: the answer gives one, for the post."]
    for key in document:
        if key not in PING_KEYS and key not in NOT_IN_PING:
            errors[str(key)] = [f"Unknown member; a ping has {', '.join(PING_KEYS)}."]
    envelope = {k: v for k, v in document.items() if k in PING_KEYS and k not in HASH_KEYS}
    submission, envelope_errors = parse_submission(envelope)
    errors.update(envelope_errors)
    if submission is None or errors:
        return None, errors
    return PingEnvelope(submission=submission, **hashes), {}


def ping_field_errors(
    specs: Iterable[FieldSpec],
    fields: Mapping[str, Any],
    *,
    ping_fields: frozenset[str],
    personal: frozenset[str],
) -> Errors:
    """Name every field a ping may not carry: personal data, or a field not in the ping."""
    known = {spec.name for spec in specs}
    errors: Errors = {}
    allowed = ", ".join(sorted(ping_fields)) or "none"
    for name in fields:
        if name in personal:
            errors[f"fields.{name}"] = [
                "Personal data is never pinged; send it with the post. This vertical's ping "
                f"fields are {allowed}."
            ]
        elif name in known and name not in ping_fields:
            errors[f"fields.{name}"] = [
                f"Not a ping field; send it with the post. This vertical's ping fields are "
                f"{allowed}."
            ]
    return errors


def ping_specs(specs: Iterable[FieldSpec], ping_fields: frozenset[str]) -> tuple[FieldSpec, ...]:
    """The vertical's specs of its ping fields: what a ping is validated against."""
    return tuple(spec for spec in specs if spec.name in ping_fields)


def pinged_values(data: Mapping[str, Any], sent: Iterable[str]) -> dict[str, Any]:
    """The normalised values of the fields the seller sent in its ping (enrichment left out)."""
    return {name: data[name] for name in sent if name in data}


def changed_fields(pinged: Mapping[str, Any], posted: Mapping[str, Any]) -> Errors:
    """Name every pinged field whose posted value differs from the pinged one."""
    errors: Errors = {}
    for name, value in pinged.items():
        if name not in posted:
            errors[f"fields.{name}"] = [f"Pinged as {_shown(value)}, missing from the post."]
        elif _same_value(posted[name]) != _same_value(value):
            errors[f"fields.{name}"] = [
                f"Pinged as {_shown(value)}, posted as {_shown(posted[name])}."
            ]
    return errors


def _same_value(value: Any) -> str:
    # JSON round trips a stored ping: 2019 and 2019.0, Decimal and float read alike.
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int | float | Decimal):
        return str(Decimal(str(value)).normalize())
    return str(value)


def _shown(value: Any) -> str:
    return json.dumps(value, default=str)


def offered_price(
    chosen: Iterable[Bid], *, payout_model: str, payout_for: Callable[[Decimal], Decimal]
) -> Decimal | None:
    """What the seller is paid if the post sells to the chosen bids (None: no bid): a revenue
    share of each sale, or the fixed price per lead once. Test pings are quoted as real ones:
    a seller testing its integration sees the price it would get."""
    bids = list(chosen)
    if not bids:
        return None
    if payout_model == PayoutModel.REVENUE_SHARE:
        return sum((payout_for(bid.price) for bid in bids), ZERO)
    return payout_for(bids[0].price)


def ping_expiry(held: Iterable[Bid], *, now: datetime, max_seconds: int) -> datetime:
    """The shortest validity among the held bids, never later than max_seconds from now.
    Fixed-price bids (no validity) hold for max_seconds."""
    bound = now + timedelta(seconds=max_seconds)
    ends = [
        datetime.fromtimestamp(bid.expires_at, tz=now.tzinfo)
        for bid in held
        if bid.expires_at is not None
    ]
    return min([bound, *ends])


def held_bid_record(bid: Bid, ping_answer: Mapping[str, Any]) -> dict[str, Any]:
    """A held bid as stored on its ping (JSON)."""
    return {
        "contract_id": bid.contract_id,
        "buyer_id": bid.buyer_id,
        "price": str(bid.price),
        "priority": bid.priority,
        "weight": bid.weight,
        "exclusive": bid.exclusive,
        "expires_at": bid.expires_at,
        "ping_answer": {
            k: (str(v) if isinstance(v, Decimal) else v) for k, v in ping_answer.items()
        },
    }


def held_bid_from_record(record: Mapping[str, Any]) -> HeldBid:
    answer = dict(record.get("ping_answer") or {})
    if answer.get("price") is not None:
        answer["price"] = Decimal(answer["price"])
    return HeldBid(
        bid=Bid(
            contract_id=record["contract_id"],
            buyer_id=record["buyer_id"],
            price=Decimal(record["price"]),
            priority=record["priority"],
            weight=record["weight"],
            exclusive=record["exclusive"],
            expires_at=record["expires_at"],
        ),
        ping_answer=answer,
    )


def storable_ping_body(document: Any, raw_body: str, personal: frozenset[str] | None) -> str:
    """The ping's body as it may be kept: the values of personal fields sent by mistake removed,
    and those of its consent record and of members a ping does not have; `personal` None: the
    values of every field. A body that is no object is not kept (it may be anything)."""
    if not isinstance(document, dict):
        return REMOVED
    sent = document.get("fields", {})
    fields = sent if isinstance(sent, dict) else {}
    leaks = not isinstance(sent, dict) or any(
        personal is None or name in personal for name in fields
    )
    foreign = [k for k in document if k not in PING_KEYS and k != "ping_id"]
    if not leaks and not foreign:
        return raw_body
    cleaned = {k: REMOVED if k in foreign else v for k, v in document.items()}
    if leaks:
        cleaned["fields"] = (
            {n: REMOVED if personal is None or n in personal else v for n, v in fields.items()}
            if isinstance(sent, dict)
            else REMOVED
        )
    return json.dumps(cleaned)
