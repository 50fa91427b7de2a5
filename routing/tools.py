"""Ops tools for one contract: preview its requests and send test pings and posts.

A test goes through the same mapping, the same HTTP seam (outbound.http.send_all) and the same
response rules as a routing run, so what ops see is what a buyer would get. Nothing else happens:
no attempt, auction or sale is recorded, no cap is reserved or charged, no lead changes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from buyers.models import Contract, DeliveryMethod, EndpointKind
from leads.models import FieldType, Lead, VerticalField
from outbound.http import send_all
from outbound.rules import Outcome
from routing.delivery import EMAIL_METHOD, WEBHOOK_RULE, email_request
from routing.mapping import (
    MappingError,
    OutgoingRequest,
    build_request,
    endpoint_from_model,
    map_fields,
    mapping_from_model,
)
from routing.responses import ParsedResponse, ParseRule, parse_response, rule_from_model

logger = logging.getLogger(__name__)

# Plausible values for the usual field names; anything else gets a value of its field's type.
_SAMPLE_BY_NAME: dict[str, Any] = {
    "first_name": "Jane",
    "last_name": "Sample",
    "full_name": "Jane Sample",
    "name": "Jane Sample",
    "street_address": "1 Test Street",
    "address": "1 Test Street",
    "city": "New York",
    "county": "New York",
    "date_of_birth": "1980-04-02",
    "vehicle_year": 2019,
    "vehicle_make": "Toyota",
    "vehicle_model": "Camry",
}
_SAMPLE_BY_TYPE: dict[str, Any] = {
    FieldType.STRING: "sample",
    FieldType.EMAIL: "jane.sample@example.com",
    FieldType.PHONE: "+12025550143",
    FieldType.ZIP: "10001",
    FieldType.STATE: "NY",
    FieldType.INTEGER: 1,
    FieldType.DECIMAL: "100.00",
    FieldType.BOOLEAN: True,
    FieldType.DATE: "1980-04-02",
}


def _sample_value(spec: VerticalField) -> Any:
    if spec.field_type == FieldType.CHOICE:
        return spec.choices[0] if spec.choices else ""
    if spec.field_type in (FieldType.INTEGER, FieldType.DECIMAL):
        number = _SAMPLE_BY_NAME.get(spec.name, _SAMPLE_BY_TYPE[spec.field_type])
        low, high = spec.min_value, spec.max_value
        value = Decimal(str(number))
        if low is not None and value < low:
            value = low
        if high is not None and value > high:
            value = high
        # As intake stores it: a JSON number, whole values as integers.
        if spec.field_type == FieldType.INTEGER or value == value.to_integral_value():
            return int(value)
        return float(value)
    if spec.field_type == FieldType.STRING and spec.name in _SAMPLE_BY_NAME:
        value = str(_SAMPLE_BY_NAME[spec.name])
    else:
        value = _SAMPLE_BY_TYPE.get(spec.field_type, "sample")
    if spec.field_type == FieldType.DATE and spec.name not in _SAMPLE_BY_NAME:
        value = date(1980, 4, 2).isoformat()
    if isinstance(value, str) and spec.max_length:
        value = value[: spec.max_length]
    return value


def sample_lead_data(*, vertical_id: int) -> dict[str, Any]:
    """Return a made-up lead of the vertical: one plausible value for every field of its schema.

    ZIP and state agree (10001 is in NY), so territory rules and mappings see a real place.
    """
    fields = VerticalField.objects.filter(vertical_id=vertical_id).order_by("position", "id")
    return {spec.name: _sample_value(spec) for spec in fields}


@dataclass(frozen=True)
class RequestPreview:
    """A ping or post as it would be sent: the mapped fields and the request, or why not."""

    kind: str
    lead_label: str
    fields: dict[str, Any]
    request: OutgoingRequest | None = None
    error: str = ""

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


def _ping_fields(vertical_id: int) -> frozenset[str]:
    return frozenset(
        VerticalField.objects.filter(vertical_id=vertical_id, in_ping=True).values_list(
            "name", flat=True
        )
    )


def contract_request_preview(
    *, contract: Contract, kind: str, lead: Lead | None = None
) -> RequestPreview:
    """Build the contract's ping or post for a lead (or the vertical's sample lead); send nothing.

    Raise ValueError for a lead of another vertical: its fields mean nothing to this contract.
    """
    if kind not in (EndpointKind.PING, EndpointKind.POST):
        raise ValueError(f"kind must be 'ping' or 'post', not {kind!r}")
    if lead is not None and lead.vertical_id != contract.vertical_id:
        raise ValueError("The lead is of another vertical than the contract.")
    data = lead.data if lead is not None else sample_lead_data(vertical_id=contract.vertical_id)
    label = f"lead {lead.pk}" if lead is not None else "the vertical's sample lead"
    mappings = [mapping_from_model(m) for m in contract.mappings.order_by("position", "id")]
    try:
        fields = map_fields(kind, data, mappings, _ping_fields(contract.vertical_id))
    except MappingError as exc:
        return RequestPreview(kind=kind, lead_label=label, fields={}, error=str(exc))
    if kind == EndpointKind.POST and contract.delivery_method == DeliveryMethod.EMAIL:
        request = email_request(
            recipients=contract.delivery_email_list,
            subject=f"New {contract.vertical.name} lead (test)",
            fields=fields,
        )
        return RequestPreview(kind=kind, lead_label=label, fields=fields, request=request)
    if kind == EndpointKind.POST and contract.delivery_method == DeliveryMethod.TEAM:
        # A test must not assign a real member a lead (nor count against their quota).
        missing = (
            f"Team delivery: routing assigns the lead to a member of {contract.team}; nothing "
            "is posted, so there is nothing to send as a test."
        )
        return RequestPreview(kind=kind, lead_label=label, fields=fields, error=missing)
    endpoint = contract.endpoints.filter(kind=kind).first()
    if endpoint is None:
        missing = (
            "This contract has no ping endpoint: it is not pinged (fixed price or direct post)."
            if kind == EndpointKind.PING
            else "This contract has no post endpoint."
        )
        return RequestPreview(kind=kind, lead_label=label, fields=fields, error=missing)
    try:
        request = build_request(endpoint_from_model(endpoint), fields)
    except MappingError as exc:
        return RequestPreview(kind=kind, lead_label=label, fields=fields, error=str(exc))
    return RequestPreview(kind=kind, lead_label=label, fields=fields, request=request)


def _rule(contract: Contract, kind: str) -> ParseRule:
    if kind == EndpointKind.POST and contract.delivery_method == DeliveryMethod.WEBHOOK:
        return WEBHOOK_RULE
    return rule_from_model(contract.response_rules.filter(kind=kind).first())


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
        parse_response(_rule(contract, kind), result.status, result.body)
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
