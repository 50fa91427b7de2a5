"""The run's use of routing/mapping.py and routing/responses.py: a contract's ping or post made
from the lead, and the rule its answers are read by, worked out once per cached contract."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from functools import partial
from typing import Any

from buyers.models import AnswerFormat, Contract, DeliveryMethod, EndpointKind
from leads.models import Lead
from leads.selectors import personal_field_names
from routing.context import PERSONAL_CONTEXT_PATHS, is_context_path, lead_context
from routing.delivery import EMAIL_RULE, WEBHOOK_RULE, email_request
from routing.mapping import (
    MappingSpec,
    OutgoingRequest,
    PreparedEndpoint,
    applicable_mappings,
    endpoint_from_model,
    map_fields,
    mapping_from_model,
    prepare_endpoint,
)
from routing.responses import accept_header, rule_from_model
from routing.team_delivery import TEAM_RULE, team_request


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
    if endpoint is None:
        return None
    rule = next((r for r in contract.response_rules.all() if r.kind == kind), None)
    accept = accept_header(rule.answer_format if rule is not None else AnswerFormat.JSON)
    return prepare_endpoint(endpoint_from_model(endpoint, accept=accept))


def rule_for(contract: Contract, kind: str):
    """The rule the contract's answers to a ping or a post are read by."""
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


def _secrets(contract: Contract) -> dict[str, str]:
    return _memo(contract, "secrets", lambda: {s.name: s.value for s in contract.secrets.all()})


def _personal_fields(contract: Contract) -> frozenset[str]:
    """The names of the contract's vertical's fields that carry personal data."""
    return frozenset(personal_field_names([contract.vertical_id])[contract.vertical_id])


def _personal_paths(contract: Contract) -> frozenset[str]:
    """What a template's query may not show on record: the vertical's personal fields, and the
    consent record's personal parts (the consumer's IP address and browser)."""
    names = _memo(contract, "personal_fields", partial(_personal_fields, contract))
    return names | PERSONAL_CONTEXT_PATHS


def _personal_targets(contract: Contract, kind: str, mappings: list[MappingSpec]) -> frozenset[str]:
    """The names, in the contract's ping or post, of the fields that carry personal data: the
    targets of the mappings for that kind that read one, or without such mappings (the lead's
    fields go as they are) the personal fields' own names."""
    names = _memo(contract, "personal_fields", partial(_personal_fields, contract))
    personal = names | {f"fields.{name}" for name in names} | PERSONAL_CONTEXT_PATHS
    applicable = applicable_mappings(kind, mappings)
    if not applicable:
        return frozenset(personal)
    return frozenset(
        m.target_field for m in applicable if any(name in personal for name in m.source_fields)
    )


LOCAL_DELIVERIES = frozenset({DeliveryMethod.EMAIL, DeliveryMethod.TEAM})


def _mappings_read_context(kind: str, mappings: list[MappingSpec]) -> bool:
    return any(
        is_context_path(name)
        for mapping in applicable_mappings(kind, mappings)
        for name in mapping.source_fields
    )


def request_for(
    contract: Contract,
    kind: str,
    lead: Lead,
    ping_fields: frozenset[str],
    *,
    bid: Decimal | None = None,
    ping: Mapping[str, Any] | None = None,
) -> OutgoingRequest | None:
    """The contract's ping or post of the lead (None without such an endpoint); raise
    MappingError when the lead cannot be mapped to it.

    A post's `bid` is what the contract bid (or its fixed price) and `ping` what its response
    rule captured from the buyer's answer to the ping (routing/context.py).
    """
    mappings = _memo(
        contract, "mappings", lambda: [mapping_from_model(m) for m in contract.mappings.all()]
    )
    local = kind == EndpointKind.POST and contract.delivery_method in LOCAL_DELIVERIES
    prepared = None
    if not local:
        prepared = _memo(contract, ("endpoint", kind), partial(_prepared_endpoint, contract, kind))
        if prepared is None:
            return None
    # The lead's context is built only for a request that reads it: a template, or a mapping
    # of a dotted source (most contracts send the lead's fields and need none).
    reads_context = (prepared is not None and prepared.template is not None) or _memo(
        contract, ("reads_context", kind), partial(_mappings_read_context, kind, mappings)
    )
    context = (
        lead_context(
            lead,
            kind=kind,
            ping_fields=ping_fields,
            bid=bid,
            floor=contract.floor_price,
            ping=ping,
            secrets=_secrets(contract),
        )
        if reads_context
        else None
    )
    fields = map_fields(kind, lead.data, mappings, ping_fields, context)
    if contract.delivery_method == DeliveryMethod.EMAIL and local:
        return email_request(
            recipients=contract.delivery_email_list,
            subject=f"New {lead.vertical.name} lead {lead.pk}",
            fields=fields,
        )
    if local:
        return team_request(contract=contract, lead=lead, fields=fields)
    assert prepared is not None  # noqa: S101 - not local: it was returned above when missing
    if prepared.query_is_templated and not applicable_mappings(kind, mappings):
        # Its template writes the request: without mappings, the lead's own fields would go
        # beside it, every one of them, raw, some under the template's own names.
        fields = {}
    personal = _memo(
        contract, ("personal", kind), partial(_personal_targets, contract, kind, mappings)
    )
    personal_paths = _memo(contract, "personal_paths", partial(_personal_paths, contract))
    return prepared.request(
        fields, personal=personal, context=context, personal_fields=personal_paths
    )
