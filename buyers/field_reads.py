"""Which lead fields a contract's parts read, by name, and which versions of its vertical's
fields lack them. The checks are pure; the two readers below them read a saved contract.

Mappings, criteria and request templates name the vertical's fields; sources post in different
versions of them (leads.schema_versions), and a contract serves every version of the sources it
may receive from, and the newest. A part that reads a field some served version lacks would get
nothing for those leads: refused when the contract or the fields are saved, naming the versions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from buyers.models import SourceFilter
from buyers.selectors import mapped_fields
from leads.scoring import SCORE_FIELD, TIER_FIELD
from leads.selectors import ServedVersion, served_versions

# What intake adds to every lead from its ZIP code, and the lead's own score and tier: no
# version need list them.
EVERY_LEAD = frozenset({"city", "county", "state", "time_zone", SCORE_FIELD, TIER_FIELD})
# {{ fields.roof_age }}, {{ fields["roof_age"] }}; not extra.fields or lead.fields.
_TEMPLATE_FIELD_RE = re.compile(
    r"""(?<![\w.])fields\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*["']([^"']+)["']\s*\])"""
)

Reads = list[tuple[str, set[str]]]  # (the part, in words; the field names it reads)


def template_fields(text: str) -> set[str]:
    """The names of the lead fields a request template reads."""
    return {dotted or quoted for dotted, quoted in _TEMPLATE_FIELD_RE.findall(text or "")}


def mapping_reads(source_field: str, default_value: str = "") -> set[str]:
    """The fields a mapping needs: none when it has a default, which is sent for a lead
    without the field."""
    return set() if default_value else mapped_fields([source_field or ""])


def criterion_reads(field: str, operator: str) -> set[str]:
    """The field a criterion needs; a criterion that the field be missing needs none."""
    return set() if operator == "missing" or not field else {field.strip()}


def endpoint_reads(body_template: str, query: Any, headers: Any) -> set[str]:
    texts = [body_template or ""]
    for values in (query, headers):
        if isinstance(values, Mapping):
            texts.extend(str(v) for v in values.values())
    return set().union(*(template_fields(t) for t in texts))


def version_problems(
    reads: Reads, versions: Iterable[ServedVersion], *, vertical: str
) -> list[str]:
    """One line for ops per part that reads a field some served version lacks, listing those
    versions."""
    versions = list(versions)
    problems = []
    for part, names in reads:
        lacking = []
        for version in versions:
            missing = sorted(set(names) - version.names - EVERY_LEAD)
            if missing:
                lacking.append(f"{', '.join(missing)} in {version.describe()}")
        if lacking:
            problems.append(
                f"{part} reads a field that {vertical} lacks in a version this contract serves: "
                f"{'; '.join(lacking)}. Change the part, add the field, or move those sources to a "
                "version that has it."
            )
    return problems


def contract_reads(contract: Any) -> Reads:
    """What a saved contract's mappings, criteria and endpoints read."""
    reads: Reads = [
        (f"Field mapping {m}", mapping_reads(m.source_field, m.default_value))
        for m in contract.mappings.all()
    ]
    reads += [
        (f"Criterion {c}", criterion_reads(c.field, c.operator)) for c in contract.criteria.all()
    ]
    reads += [
        (f"The {e.kind} endpoint's template", endpoint_reads(e.body_template, e.query, e.headers))
        for e in contract.endpoints.all()
    ]
    return [(part, names) for part, names in reads if names]


def contract_served_versions(
    contract: Any,
    *,
    source_filter: str | None = None,
    source_ids: Iterable[int] | None = None,
    newest_names: Iterable[str] | None = None,
) -> list[ServedVersion]:
    """The versions of its vertical's fields a contract serves (leads.selectors.served_versions),
    by its source filter and listed sources, or those about to be saved."""
    source_filter = source_filter or contract.source_filter
    if source_ids is None:
        source_ids = contract.sources.values_list("pk", flat=True) if contract.pk else []
    listed = list(source_ids)
    return served_versions(
        vertical_id=contract.vertical_id,
        only=listed if source_filter == SourceFilter.ALLOW else None,
        excluding=listed if source_filter == SourceFilter.BLOCK else (),
        newest_names=newest_names,
    )


def _contracts(vertical_id: int) -> Any:
    from buyers.models import Contract

    return (
        Contract.objects.filter(vertical_id=vertical_id)
        .select_related("buyer")
        .prefetch_related("mappings", "criteria", "endpoints", "sources")
        .order_by("buyer__company", "name")
    )


def fields_removed_problems(*, vertical: Any, removed: set[str]) -> list[str]:
    """The contracts of the vertical with a part reading a field its fields are to lose: the
    newest version, which every contract serves, would lack it."""
    problems = []
    for contract in _contracts(vertical.pk):
        for part, names in contract_reads(contract):
            lost = sorted((names & removed) - EVERY_LEAD)
            if lost:
                problems.append(
                    f"Contract {contract}: {part} reads {', '.join(lost)}, which the newest "
                    "version would lose (every contract serves the newest): change the contract "
                    "first, or keep the field."
                )
    return problems


def source_moved_problems(*, source: Any, version: Any, names: set[str]) -> list[str]:
    """The contracts that may receive from the source with a part reading a field the version
    it is to post in lacks."""
    problems = []
    for contract in _contracts(version.vertical_id):
        listed = source.pk in {s.pk for s in contract.sources.all()}
        if (contract.source_filter == SourceFilter.ALLOW and not listed) or (
            contract.source_filter == SourceFilter.BLOCK and listed
        ):
            continue
        for part, reads in contract_reads(contract):
            missing = sorted(reads - names - EVERY_LEAD)
            if missing:
                problems.append(
                    f"Contract {contract}: {part} reads {', '.join(missing)}, which version "
                    f"{version.number} lacks: change the contract first, or choose a version "
                    "that has it."
                )
    return problems
