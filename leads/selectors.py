"""Reads for verticals, sources and leads."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import OuterRef, Prefetch, Q, QuerySet, Subquery

from leads import intake_cache
from leads.intake import NAME_FIELDS, FieldSpec, specs_from_models
from leads.models import (
    FieldType,
    KeyLocation,
    Lead,
    PostingProfile,
    SchemaPin,
    SchemaVersion,
    ScoringRule,
    Source,
    UnknownFieldPolicy,
    Vertical,
    VerticalField,
)
from leads.profiles import DEFAULT_PROFILE, Profile
from leads.schema_versions import fields_from_snapshot, specs_from_snapshot
from leads.scoring import Scorecard, compile_rule

# A vertical's schema is read on every submission: keep it per process, keyed by the vertical's
# updated_at, which every admin save of the vertical (and so of its fields inline) changes.
_specs: dict[int, tuple[Any, tuple[FieldSpec, ...]]] = {}
_specs_lock = threading.Lock()
# A vertical's compiled scoring rules, kept the same way: every change of a rule touches its
# vertical (leads.signals), and the tier bounds are the vertical's own columns.
_scorecards: dict[int, tuple[Any, Scorecard | None]] = {}


# A version's field schema, compiled once: versions are frozen. Keyed by the version's id and
# checked against its creation time (a test database may give a rolled-back id again).
_version_specs: dict[int, tuple[Any, tuple[FieldSpec, ...]]] = {}


def with_schema_versions(verticals: QuerySet[Vertical], *, source: Source) -> QuerySet[Vertical]:
    """Annotate each vertical with the version the source posts in (`pinned_version_id`,
    `pinned_number`, `pinned_created_at`) and its newest version's number (`newest_number`)."""
    pin = SchemaPin.objects.filter(source=source, vertical=OuterRef("pk"))
    newest = SchemaVersion.objects.filter(vertical=OuterRef("pk")).order_by("-number")
    return verticals.annotate(
        pinned_version_id=Subquery(pin.values("schema_version_id")[:1]),
        pinned_number=Subquery(pin.values("schema_version__number")[:1]),
        pinned_created_at=Subquery(pin.values("schema_version__created_at")[:1]),
        newest_number=Subquery(newest.values("number")[:1]),
    )


def vertical_for_source(*, source: Source, slug: str) -> Vertical | None:
    """Return the active vertical `slug` if this source may submit to it, with the version it
    posts in (with_schema_versions); cached per process."""
    return intake_cache.cached(
        ("vertical", source.pk, slug),
        intake_cache.generation(),
        lambda: (
            with_schema_versions(
                Vertical.objects.filter(slug=slug, active=True, sources=source), source=source
            )
            .order_by()
            .first()
        ),
    )


def posts_in_newest(vertical: Vertical) -> bool:
    """Whether the source a vertical was read for (with_schema_versions) posts in its newest
    version: the vertical's own fields. A source without a pin follows the newest."""
    pinned = getattr(vertical, "pinned_number", None)
    return pinned is None or pinned == getattr(vertical, "newest_number", None)


def source_field_specs(vertical: Vertical) -> tuple[FieldSpec, ...]:
    """The field schema a source's lead is validated by: the version it is pinned to, read for
    it by vertical_for_source. The newest is the vertical's own fields (vertical_field_specs);
    an older one is compiled once per process from its frozen definitions."""
    if posts_in_newest(vertical):
        return vertical_field_specs(vertical)
    version_id = vertical.pinned_version_id  # type: ignore[attr-defined]
    created = vertical.pinned_created_at  # type: ignore[attr-defined]
    with _specs_lock:
        cached = _version_specs.get(version_id)
    if cached is not None and cached[0] == created:
        return cached[1]
    snapshot = SchemaVersion.objects.filter(pk=version_id).values_list("fields", flat=True)
    specs = specs_from_snapshot(snapshot[0] if snapshot else [])
    with _specs_lock:
        _version_specs[version_id] = (created, specs)
    return specs


def source_schema_fields(vertical: Vertical) -> list[VerticalField]:
    """The fields of the version a source posts in, for a vertical read for it by
    with_schema_versions (with its fields prefetched): the newest is the vertical's own."""
    if posts_in_newest(vertical):
        return list(vertical.fields.all())
    version = SchemaVersion.objects.filter(pk=vertical.pinned_version_id).first()  # type: ignore[attr-defined]
    return fields_from_snapshot(vertical, version.fields if version is not None else [])


def posting_profile(*, source: Source) -> Profile:
    """Return how the source posts (the JSON envelope when it has no profile), cached per
    process like its keys."""

    def load() -> Profile:
        row = (
            PostingProfile.objects.filter(source=source)
            .select_related("default_vertical")
            .order_by()
            .first()
        )
        if row is None:
            return DEFAULT_PROFILE
        return Profile(
            format=row.format,
            key_location=row.key_location,
            key_name=row.key_name,
            aliases=dict(row.aliases or {}),
            value_maps=dict(row.value_maps or {}),
            keep_unknown=row.unknown_fields == UnknownFieldPolicy.KEEP,
            answer_format=row.answer_format,
            default_vertical=row.default_vertical.slug if row.default_vertical else "",
        )

    return intake_cache.cached(("profile", source.pk), intake_cache.generation(), load)


def key_places() -> tuple[frozenset[str], frozenset[str]]:
    """Return the header names and the parameter names that some active source's profile
    carries its key in (lower-cased), cached per process like the keys."""

    def load() -> tuple[frozenset[str], frozenset[str]]:
        rows = (
            PostingProfile.objects.filter(source__active=True)
            .exclude(key_location=KeyLocation.BEARER)
            .values_list("key_location", "key_name")
        )
        headers = {name.lower() for where, name in rows if where == KeyLocation.HEADER}
        parameters = {name.lower() for where, name in rows if where == KeyLocation.PARAMETER}
        return frozenset(headers), frozenset(parameters)

    return intake_cache.cached(("key_places",), intake_cache.generation(), load)


def allowed_vertical_slugs(*, source: Source) -> list[str]:
    return list(
        source.verticals.filter(active=True).order_by("slug").values_list("slug", flat=True)
    )


def vertical_field_specs(vertical: Vertical) -> tuple[FieldSpec, ...]:
    """Return the vertical's field schema, from the process cache while it is unchanged."""
    with _specs_lock:
        cached = _specs.get(vertical.pk)
    if cached is not None and cached[0] == vertical.updated_at:
        return cached[1]
    specs = specs_from_models(
        VerticalField.objects.filter(vertical=vertical).order_by("position", "id")
    )
    with _specs_lock:
        _specs[vertical.pk] = (vertical.updated_at, specs)
    return specs


# Fields holding a person's name are personal even where the vertical forgot to flag them.
PERSON_NAME_FIELDS = NAME_FIELDS - {"city"}


def personal_field_names(vertical_ids: Iterable[int | None]) -> dict[int | None, set[str]]:
    """Per vertical, the names of its fields that hold personal data: those flagged personal,
    every e-mail and phone field, and the usual name fields. One definition for what Sales may
    not see, what erasure erases and what a score's breakdown never quotes."""
    names: dict[int | None, set[str]] = {vid: set(PERSON_NAME_FIELDS) for vid in vertical_ids}
    rows = VerticalField.objects.filter(vertical_id__in=[v for v in names if v is not None])
    for vertical_id, name, is_pii, field_type in rows.values_list(
        "vertical_id", "name", "is_pii", "field_type"
    ):
        if is_pii or field_type in (FieldType.EMAIL, FieldType.PHONE):
            names[vertical_id].add(name)
    return names


def vertical_scorecard(vertical: Vertical) -> Scorecard | None:
    """Return the vertical's compiled scoring rules and tier bounds, None when it has no active
    rule; from the process cache while the vertical is unchanged (no query per lead)."""
    with _specs_lock:
        cached = _scorecards.get(vertical.pk)
    if cached is not None and cached[0] == vertical.updated_at:
        return cached[1]
    private = personal_field_names([vertical.pk])[vertical.pk]
    rules = tuple(
        compile_rule(
            name=rule.name,
            kind=rule.kind,
            field_name=rule.field,
            min_value=rule.min_value,
            max_value=rule.max_value,
            values=rule.values,
            points=rule.points,
            multiplier=rule.multiplier,
            source_id=rule.source_id,
            source_name=rule.source.name if rule.source is not None else "",
            rule_id=rule.pk,
            private=rule.field in private,
        )
        for rule in ScoringRule.objects.filter(vertical=vertical, active=True)
        .select_related("source")
        .order_by("position", "id")
    )
    card = Scorecard(rules=rules, bounds=vertical.tier_bounds) if rules else None
    with _specs_lock:
        _scorecards[vertical.pk] = (vertical.updated_at, card)
    return card


_personal: dict[int, tuple[Any, frozenset[str]]] = {}


def vertical_personal_fields(vertical: Vertical) -> frozenset[str]:
    """personal_field_names of one vertical, kept per process like its schema."""
    with _specs_lock:
        cached = _personal.get(vertical.pk)
    if cached is not None and cached[0] == vertical.updated_at:
        return cached[1]
    names = frozenset(personal_field_names([vertical.pk])[vertical.pk])
    with _specs_lock:
        _personal[vertical.pk] = (vertical.updated_at, names)
    return names


def clear_field_specs_cache() -> None:
    """Forget every vertical's cached schema, personal fields and scoring rules."""
    with _specs_lock:
        _specs.clear()
        _scorecards.clear()
        _personal.clear()
        _version_specs.clear()


def verticals_for_source(*, source: Source) -> QuerySet[Vertical]:
    """The active verticals a source may submit to, with their fields and the version it posts
    in (with_schema_versions)."""
    return with_schema_versions(
        source.verticals.filter(active=True)
        .order_by("slug")
        .prefetch_related(
            Prefetch("fields", queryset=VerticalField.objects.order_by("position", "id"))
        ),
        source=source,
    )


def vertical_versions(vertical: Vertical) -> QuerySet[SchemaVersion]:
    """The vertical's versions, oldest first."""
    return SchemaVersion.objects.filter(vertical=vertical).order_by("number")


def same_consumer(lead: Lead, *, via: str = "") -> Q | None:
    """Match the leads of the lead's consumer (the same e-mail or phone), or the rows of those
    leads through the relation `via` ("lead"); None when the lead has neither.

    An inbound ping's lead (exchange/) knows its consumer only by the seller's hashes of the
    e-mail and phone: it matches by the hashes intake stored with every lead.
    """
    prefix = f"{via}__" if via else ""
    condition = Q()
    for column, hashed in (("email", "email_sha256"), ("phone", "phone_sha256")):
        if getattr(lead, column):
            condition |= Q(**{f"{prefix}{column}": getattr(lead, column)})
        elif getattr(lead, hashed):
            condition |= Q(**{f"{prefix}{hashed}": getattr(lead, hashed)})
    return condition or None


def leads_of_source(*, source: Source) -> QuerySet[Lead]:
    """Every lead a source submitted; never another source's."""
    return Lead.objects.filter(source=source).select_related("source", "vertical", "duplicate_of")


@dataclass(frozen=True)
class ServedVersion:
    """A version of a vertical's fields that some part of the platform serves: its number (None
    for a vertical with no version yet), its field names, and who posts in it."""

    number: int | None
    names: frozenset[str]
    sources: tuple[str, ...] = ()
    newest: bool = False

    def describe(self) -> str:
        who = f" (sources on it: {', '.join(self.sources)})" if self.sources else ""
        if self.newest:
            what = "the newest version" if self.number is None else f"version {self.number}"
            return f"{what}, the newest, which a source given the vertical posts in{who}"
        return f"version {self.number}{who}"


def served_versions(
    *,
    vertical_id: int,
    only: Iterable[int] | None = None,
    excluding: Iterable[int] = (),
    newest_names: Iterable[str] | None = None,
) -> list[ServedVersion]:
    """The versions of a vertical a contract serves: those of the sources it may receive from
    (`only` these, if given, none of `excluding`), and always the newest, which any source given
    the vertical posts in. The newest is the vertical's own fields (`newest_names`, when a page
    is about to change them)."""
    newest = SchemaVersion.objects.filter(vertical_id=vertical_id).order_by("-number").first()
    if newest_names is None:
        newest_names = VerticalField.objects.filter(vertical_id=vertical_id).values_list(
            "name", flat=True
        )
    pins = SchemaPin.objects.filter(vertical_id=vertical_id).exclude(source_id__in=list(excluding))
    if only is not None:
        pins = pins.filter(source_id__in=list(only))
    by_number: dict[int, list[str]] = {}
    versions: dict[int, Any] = {}
    for number, fields, source in pins.values_list(
        "schema_version__number", "schema_version__fields", "source__name"
    ).order_by("schema_version__number", "source__name"):
        by_number.setdefault(number, []).append(source)
        versions[number] = fields
    newest_number = newest.number if newest is not None else None
    served = [
        ServedVersion(
            number=number,
            names=frozenset(f.get("name") for f in versions[number] if isinstance(f, dict)),
            sources=tuple(sources),
        )
        for number, sources in by_number.items()
        if number != newest_number
    ]
    served.append(
        ServedVersion(
            number=newest_number,
            names=frozenset(newest_names),
            sources=tuple(by_number.get(newest_number, ())) if newest_number else (),
            newest=True,
        )
    )
    return served
