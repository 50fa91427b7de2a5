"""Read a buyer's answer to a ping or post by its contract's response rule (pure, no database)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

MISSING = object()


@dataclass(frozen=True)
class ParseRule:
    """The parts of a ResponseRule the parser needs; defaults read the buyer simulator."""

    success_path: str = "status"
    success_values: tuple[str, ...] = ("accepted", "bid", "success", "ok")
    success_regex: str = ""
    success_status_codes: tuple[int, ...] = ()
    price_path: str = "price"
    price_regex: str = ""
    reason_path: str = "reason"
    reference_path: str = "lead_id|bid_id"


DEFAULT_RULE = ParseRule()


@dataclass(frozen=True)
class ParsedResponse:
    accepted: bool
    price: Decimal | None = None
    reason: str = ""
    reference: str = ""
    captures: dict[str, str] = field(default_factory=dict)


def json_path(document: Any, path: str) -> Any:
    """Return the value at a dotted path (`result.bids.0.amount`); a|b takes the first present."""
    for alternative in path.split("|"):
        value = document
        for part in alternative.strip().split("."):
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                value = MISSING
                break
        if value is not MISSING and value is not None:
            return value
    return MISSING


def _as_price(value: Any) -> Decimal | None:
    if value is MISSING or isinstance(value, bool | dict | list):
        return None
    try:
        price = Decimal(str(value).strip().lstrip("$").replace(",", ""))
    except InvalidOperation:
        return None
    if not price.is_finite() or price < 0:
        return None
    return price.quantize(Decimal("0.01"))


def _as_text(value: Any) -> str:
    if value is MISSING:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)[:500]
    return str(value)[:500]


def parse_response(rule: ParseRule, status_code: int, body: str) -> ParsedResponse:
    """Decide whether the buyer accepted (or bid), and read price, reason and reference."""
    try:
        document = json.loads(body) if body else MISSING
    except ValueError:
        document = MISSING

    if rule.success_status_codes:
        accepted = status_code in rule.success_status_codes
    elif rule.success_regex:
        accepted = 200 <= status_code < 300 and re.search(rule.success_regex, body) is not None
    else:
        value = json_path(document, rule.success_path) if document is not MISSING else MISSING
        wanted = {v.lower() for v in rule.success_values}
        accepted = (
            200 <= status_code < 300
            and value is not MISSING
            and (value is True if isinstance(value, bool) else str(value).lower() in wanted)
        )

    price: Decimal | None = None
    if rule.price_regex:
        match = re.search(rule.price_regex, body)
        price = _as_price(match.group(1)) if match else None
    elif rule.price_path and document is not MISSING:
        price = _as_price(json_path(document, rule.price_path))

    reason = reference = ""
    if document is not MISSING:
        if rule.reason_path:
            reason = _as_text(json_path(document, rule.reason_path))
        if rule.reference_path:
            reference = _as_text(json_path(document, rule.reference_path))
    if not accepted and not reason:
        reason = f"HTTP {status_code}" if not 200 <= status_code < 300 else "not accepted"
    return ParsedResponse(accepted=accepted, price=price, reason=reason, reference=reference)


def rule_from_model(model: Any) -> ParseRule:
    """Build a ParseRule from a buyers.ResponseRule row (or the defaults for None)."""
    if model is None:
        return DEFAULT_RULE
    return ParseRule(
        success_path=model.success_path,
        success_values=tuple(v.strip() for v in model.success_values.split(",") if v.strip()),
        success_regex=model.success_regex,
        success_status_codes=tuple(
            int(c) for c in re.split(r"[\s,;]+", model.success_status_codes) if c
        ),
        price_path=model.price_path,
        price_regex=model.price_regex,
        reason_path=model.reason_path,
        reference_path=model.reference_path,
    )
