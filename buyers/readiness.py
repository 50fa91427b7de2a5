"""Whether a contract can deliver a lead: what it must have before it may go live (pure).

A ping/post contract without a ping endpoint, a buyer-API contract without a post endpoint, or a
template naming a secret the contract does not hold would fail on every lead at run time; they
are refused instead when ops save an active contract or resume a paused one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from buyers.delivery_checks import delivery_check
from buyers.models import DeliveryMethod, EndpointKind, PriceModel

# {{ secrets.api_key }}, {{ secrets["api_key"] }}, {{ secrets['api_key'] }}.
_SECRET_NAMED_RE = re.compile(r"""\bsecrets\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*["']([^"']+)["']\s*\])""")


@dataclass(frozen=True)
class EndpointSketch:
    """What readiness needs of an endpoint, saved or still on a form."""

    kind: str
    body_template: str = ""
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)

    def templates(self) -> Iterable[str]:
        yield self.body_template
        for mapping in (self.query, self.headers):
            if isinstance(mapping, Mapping):
                yield from (str(value) for value in mapping.values())


def secrets_named(text: str) -> set[str]:
    """The names of the secrets a template reads."""
    return {dotted or quoted for dotted, quoted in _SECRET_NAMED_RE.findall(text)}


def delivery_problems(
    *,
    price_model: str,
    delivery_method: str,
    endpoints: Iterable[EndpointSketch],
    secret_names: Iterable[str],
) -> list[str]:
    """Return why a contract so configured cannot deliver a lead, in words for ops; [] if it can."""
    endpoints = list(endpoints)
    kinds = {e.kind for e in endpoints}
    problems = []
    if delivery_method in (DeliveryMethod.HTTP, DeliveryMethod.WEBHOOK):
        if EndpointKind.POST not in kinds:
            problems.append("It has no post endpoint: add one, or choose another delivery.")
        if price_model == PriceModel.PING_POST and EndpointKind.PING not in kinds:
            problems.append("It pings for a bid but has no ping endpoint: add one, or fix a price.")
    known = set(secret_names)
    for endpoint in endpoints:
        missing = set().union(*(secrets_named(t) for t in endpoint.templates())) - known
        if missing:
            problems.append(
                f"Its {endpoint.kind} endpoint reads the secret"
                f"{'s' if len(missing) > 1 else ''} {', '.join(sorted(missing))}, which the "
                "contract does not hold: add it under Secrets."
            )
    return problems


def contract_delivery_problems(contract: Any) -> list[str]:
    """The delivery problems of a saved contract, read from its saved parts: those above, and
    templates or answer paths that do not check out (buyers/delivery_checks.py)."""
    endpoints = list(contract.endpoints.all())
    rules = list(contract.response_rules.all())
    return delivery_problems(
        price_model=contract.price_model,
        delivery_method=contract.delivery_method,
        endpoints=[
            EndpointSketch(
                kind=e.kind, body_template=e.body_template, query=e.query, headers=e.headers
            )
            for e in endpoints
        ],
        secret_names=[s.name for s in contract.secrets.all()],
    ) + [
        part_problem(row, problems)
        for kind, rows in (("endpoint", endpoints), ("rule", rules))
        for row in rows
        if (problems := delivery_check(kind, row))
    ]


def part_problem(row: Any, problems: dict[str, str]) -> str:
    """One line for ops: which endpoint or rule, and what is wrong with it."""
    what = f"Its {row.kind} {'endpoint' if hasattr(row, 'body_template') else 'response rule'}"
    return f"{what}: " + "; ".join(f"{name}: {text}" for name, text in problems.items())


class ContractCannotDeliver(ValueError):
    """A contract was to go live while it cannot deliver a lead; the problems say why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(" ".join(problems))
        self.problems = problems
