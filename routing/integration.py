"""The save-time checks of a contract's delivery, and the sample lead they render.

Registered with buyers (buyers/delivery_checks.py) when routing loads: an endpoint whose
templates do not render, or render an invalid JSON/XML document, and a response rule whose paths
cannot be read, are refused when saved, saying where (the template's line) and why.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from buyers.readiness import secrets_named
from leads.intake import CONSENT_KEYS
from leads.models import Lead, Source, Vertical, VerticalField
from leads.samples import SAMPLE_CONSENT, sample_value
from routing.context import lead_context
from routing.responses import check_path, parse_namespaces
from routing.selectors import vertical_ping_fields
from routing.templating import TemplateError, check_request

# What the ZIP enrichment adds to every lead's fields.
ENRICHMENT_SAMPLE = {
    "city": "New York",
    "county": "New York",
    "state": "NY",
    "time_zone": "America/New_York",
}
assert set(SAMPLE_CONSENT) == set(CONSENT_KEYS)  # noqa: S101 - kept in step with intake's keys


# {{ ping.bid_id }}, {{ ping["bid_id"] }}: the captures of the ping's answer a post reads.
_PING_NAMED_RE = re.compile(r"""\bping\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*["']([^"']+)["']\s*\])""")


def sample_ping_answer(templates: tuple[str, ...]) -> dict[str, Any]:
    """A ping's answer as a sample: a value for every capture the templates (or a mapping's
    `ping.<name>` source) read, so that a post may read a capture its ping rule is given in
    the same save, and a test post of the sample lead carries one."""
    named = {a or b for text in templates for a, b in _PING_NAMED_RE.findall(text)}
    answer: dict[str, Any] = {name: f"sample-{name}" for name in named}
    answer.update(reference="sample-reference", price=Decimal("12.50"))
    return answer


def sample_lead_data(*, vertical_id: int) -> dict[str, Any]:
    """Return a made-up lead of the vertical: one plausible value for every field of its schema.

    ZIP and state agree (10001 is in NY), so territory rules and mappings see a real place.
    """
    fields = VerticalField.objects.filter(vertical_id=vertical_id).order_by("position", "id")
    return {spec.name: sample_value(spec) for spec in fields}


def sample_lead(vertical: Vertical | None, *, data: Mapping[str, Any] | None = None) -> Lead:
    """Return a made-up lead of the vertical, unsaved, for previews and save-time checks: a
    value for each of its fields (or `data`) and the ZIP's enrichment, a full consent record, a
    sample source, marked as a test."""
    fields = dict(ENRICHMENT_SAMPLE)
    if data is not None:
        fields.update(data)
    elif vertical is not None:
        fields.update(sample_lead_data(vertical_id=vertical.pk))
    return Lead(
        id=uuid.UUID("00000000-0000-4000-8000-000000000000"),
        # Never saved: the check of an endpoint not yet on a contract names no real vertical.
        vertical=vertical if vertical is not None else Vertical(slug="sample", name="Sample"),
        source=Source(id=1, name="Sample source"),
        sub_id="sample-sub",
        is_test=True,
        score=72,
        tier="warm",
        received_at=datetime(2026, 1, 15, 14, 3, tzinfo=UTC),
        data=fields,
        consent=dict(SAMPLE_CONSENT),
    )


def sample_context(
    *,
    vertical: Vertical | None,
    kind: str,
    ping_fields: frozenset[str] = frozenset(),
    templates: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The context (routing/context.py, the one routing builds) of the sample lead's ping or
    post: with a bid, the ping's answer (posts only), and a stand-in for each secret the
    templates name."""
    # Digits: buyers' ids (campaign, supplier) go through |int as often as keys go as text.
    secrets = {name: "1234567890" for text in templates for name in secrets_named(text)}
    return lead_context(
        sample_lead(vertical),
        kind=kind,
        ping_fields=ping_fields,
        bid=Decimal("12.50"),
        floor=Decimal("5.00"),
        ping=sample_ping_answer(templates) if kind == "post" else None,
        secrets=secrets,
    )


def _field_of(where: str) -> str:
    """The endpoint field a template error belongs to: 'body', 'query x', 'header X'."""
    if where.startswith("query"):
        return "query"
    if where.startswith("header"):
        return "headers"
    return "body_template"


def check_endpoint(endpoint: Any) -> dict[str, str]:
    """Whether the endpoint's templates render valid requests for a sample lead of its
    vertical, strictly (an unknown name is an error)."""
    headers = endpoint.headers if isinstance(endpoint.headers, dict) else {}
    query = endpoint.query if isinstance(endpoint.query, dict) else {}
    templated = {n: v for n, v in headers.items() if "{{" in str(v) or "{%" in str(v)}
    if not (endpoint.body_template or "").strip() and not query and not templated:
        return {}
    contract = getattr(endpoint, "contract", None) if endpoint.contract_id else None
    vertical = contract.vertical if contract is not None else None
    texts = (endpoint.body_template or "", *map(str, query.values()), *templated.values())
    ping_fields: frozenset[str] = frozenset()
    if endpoint.kind == "ping" and vertical is not None:
        ping_fields = vertical_ping_fields(vertical.pk)
    sample = sample_context(
        vertical=vertical, kind=endpoint.kind, ping_fields=ping_fields, templates=texts
    )
    try:
        check_request(
            endpoint.body_format, endpoint.body_template or "", query, templated, sample=sample
        )
    except TemplateError as exc:
        return {_field_of(exc.where): str(exc)}
    except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:
        # Outside Jinja, as serialising a dict with tuple keys: refused, not a server error.
        return {"body_template": f"The template cannot be rendered ({type(exc).__name__})."}
    return {}


_RULE_PATHS = ("success_path", "price_path", "reason_path", "reference_path")


def check_rule(rule: Any) -> dict[str, str]:
    """Whether every path of the response rule can be read in its answer format."""
    try:
        namespaces = parse_namespaces(rule.namespaces or "", strict=True)
    except ValueError as exc:
        return {"namespaces": str(exc)}
    problems: dict[str, str] = {}
    # The success path is not read when status codes or a regex say what accepted means.
    decided = bool((rule.success_status_codes or "").strip() or rule.success_regex)
    paths = [
        (name, getattr(rule, name) or "")
        for name in _RULE_PATHS
        if not (name == "success_path" and decided)
    ]
    captures = rule.captures if isinstance(rule.captures, dict) else {}
    paths += [("captures", str(path)) for path in captures.values()]
    for name, path in paths:
        if not path.strip() or name in problems:
            continue
        try:
            check_path(path, answer_format=rule.answer_format, namespaces=namespaces)
        except ValueError as exc:
            problems[name] = f"{path!r}: {exc}"
    return problems
