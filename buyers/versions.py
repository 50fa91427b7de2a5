"""A contract's versions: what it and every part of it were at a moment of their history, and
what reverting to that moment would change (`buyers.services.contract_revert` makes the change).

History is django-simple-history's (one row per save or delete of the contract and of each part).
A version of the contract picked on its history page is the contract as it stood until its next
recorded change: an admin save writes the contract's row first and its parts' rows just after,
so "until the next change" holds the whole save, and the parts edited on their own pages since.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import Model, Q, UniqueConstraint
from django.utils import timezone
from django.utils.text import capfirst

from buyers.forms import score_criterion_problem, source_filter_problem
from buyers.models import (
    AuthType,
    Contract,
    ContractSecret,
    ContractStatus,
    DeliveryEndpoint,
    FieldCriterion,
    FieldMapping,
)
from buyers.readiness import EndpointSketch, delivery_problems
from buyers.selectors import CONTRACT_PARTS, fields_unknown_to, mapped_fields
from leads.models import Source

# Not configuration: a revert leaves them as they are. Status is operations (a contract paused
# this morning for an overdue invoice, or by ops after its breaker opened, must not resume because
# its price is put back to last week's; nor a live one pause); pause or resume it on its page.
KEPT_FIELDS = frozenset({"id", "status", "paused_reason", "paused_at", "created_at", "updated_at"})

ADDED, CHANGED, REMOVED = "Added back", "Changed", "Removed"

# A row's state at a moment, from its history: as a record says, absent (not created yet, or
# deleted), as it is now (no history at all: it predates history and never changed since), or
# unknown (it predates history and changed since).
_THEN, _ABSENT, _AS_NOW, _UNKNOWN = "then", "absent", "as now", "unknown"

# An admin save (or a configuration import) writes the contract's row, then sets its sources:
# each change of the list is a history row of its own, with the same fields. The rows that follow
# one this closely, by the same user, with the same fields, are the rest of its save and belong to
# its version: else the version picked would be the half-saved contract, with the list before.
SAME_SAVE = timedelta(seconds=5)


class ContractRevertRefused(Exception):
    """The contract cannot be made what it was then; `problems` says why, in words for ops."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(" ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class FieldChange:
    label: str
    now: str
    then: str


@dataclass(frozen=True)
class PartRevert:
    """One part of the contract: what a revert does to it (`action`, '' for nothing)."""

    kind: str
    label: str
    action: str
    changes: list[FieldChange]
    current: Any
    target: Any


@dataclass
class ContractVersion:
    """The contract as it was at `moment`, beside what it is now: `contract` is the contract to
    save (its own fields as then, but KEPT_FIELDS), `source_ids` the sources it listed then
    (None: the same as now, or `sources_unknown`: its history does not say), `parts` every part
    then or now."""

    moment: datetime
    contract: Contract
    changes: list[FieldChange]
    source_ids: list[int] | None
    sources_change: FieldChange | None
    parts: list[PartRevert]
    problems: list[str] = field(default_factory=list)
    sources_unknown: bool = False

    @property
    def part_changes(self) -> list[PartRevert]:
        return [part for part in self.parts if part.action]

    @property
    def unchanged(self) -> bool:
        return not self.changes and self.source_ids is None and not self.part_changes

    @property
    def digest(self) -> str:
        """A digest of what reverting would change, as the confirmation page lists it: the page
        posts it back, and a revert whose list has changed since is refused."""
        listed = [
            [(c.label, c.now, c.then) for c in self.changes],
            [(c.label, c.now, c.then) for c in [self.sources_change] if c],
            [
                (p.action, p.kind, p.label, [(c.label, c.now, c.then) for c in p.changes])
                for p in self.part_changes
            ],
        ]
        return hashlib.sha256(json.dumps(listed, default=str).encode()).hexdigest()[:32]


def contract_version(*, contract: Contract, to: datetime | int) -> ContractVersion:
    """Return the contract as it was at `to` (a moment, or the history id of one of its versions:
    until its next change), with what reverting to it would change and what forbids it now.

    Raise ContractRevertRefused when the contract did not exist then, or `to` is not one of its
    versions.
    """
    history = Contract.history.model
    moment = to if isinstance(to, datetime) else _version_end(contract, to)
    records = list(history.objects.filter(id=contract.pk))
    state, record = _state_at(records, moment)
    if state == _ABSENT:
        raise ContractRevertRefused(["The contract did not exist then."])
    if state == _UNKNOWN:
        raise ContractRevertRefused(["The contract's state then was not recorded."])
    current = Contract.objects.select_related("buyer", "vertical").get(pk=contract.pk)
    target = copy.copy(current)
    if record is not None:
        _restore(target, record, exclude=KEPT_FIELDS)
    problems = _validation_problems("", target)
    changes = _changes(current, target, exclude=KEPT_FIELDS)
    then = contract_recorded_sources(records).get(record.history_id) if record else None
    source_ids, sources_change = _sources(current, record, then, problems)
    listed = source_ids if source_ids is not None else [s.pk for s in current.sources.all()]
    problems += _source_list_problems(target.source_filter, listed)
    parts: list[PartRevert] = []
    for relation in CONTRACT_PARTS:
        parts += _parts(current, target, relation, moment, problems)
    problems += _mapping_problems(target, parts)
    problems += _readiness_problems(target, parts)
    return ContractVersion(
        moment=moment,
        contract=target,
        changes=changes,
        source_ids=source_ids if sources_change is not None else None,
        sources_change=sources_change,
        parts=parts,
        problems=problems,
        sources_unknown=record is not None and then is None,
    )


def _version_end(contract: Contract, history_id: int) -> datetime:
    """The last instant of the contract's version `history_id`: just before its next record."""
    records = Contract.history.model.objects.filter(id=contract.pk)
    record = records.filter(history_id=history_id).first()
    if record is None:
        raise ContractRevertRefused([f"The contract has no version {history_id}."])
    following = records.filter(
        Q(history_date__gt=record.history_date)
        | Q(history_date=record.history_date, history_id__gt=record.history_id)
    ).order_by("history_date", "history_id")
    for later in following.iterator():
        if not _same_save(record, later):
            return max(later.history_date - timedelta(microseconds=1), record.history_date)
        record = later
    return timezone.now()


def _fields(record: Any) -> tuple[Any, ...]:
    return tuple(getattr(record, f.attname) for f in _tracked(Contract))


def _same_save(record: Any, later: Any) -> bool:
    """Whether the later row is the rest of the record's save: a change of its sources."""
    return (
        later.history_type == "~"
        and later.history_user_id == record.history_user_id
        and later.history_date - record.history_date <= SAME_SAVE
        and _fields(later) == _fields(record)
    )


def contract_recorded_sources(records: list[Any]) -> dict[int, list[int] | None]:
    """Return the sources the contract listed at each of its history rows (history id -> source
    ids, None when its history does not say).

    A row holds the list, but for rows that services wrote in bulk before such rows recorded it
    (a pause). Those never change the list, so theirs is the row's before, when known. An empty
    list is the truth when nothing was listed before, or when the row changed nothing else (the
    list's last source removed); a first row without a list is the contract's creation (listed
    nothing yet) or, when its history began later, unknown.
    """
    recorded = defaultdict(list)
    rows_model = Contract.history.model.sources.model
    for history_id, source_id in rows_model.objects.filter(
        history_id__in=[r.history_id for r in records]
    ).values_list("history_id", "source_id"):
        recorded[history_id].append(source_id)
    listed: dict[int, list[int] | None] = {}
    known: list[int] | None = None
    previous = None
    for record in sorted(records, key=lambda r: (r.history_date, r.history_id)):
        rows = sorted(recorded[record.history_id])
        if rows:
            known = rows
        elif previous is None:
            known = [] if record.history_type == "+" else None
        elif _fields(record) == _fields(previous):
            known = []
        listed[record.history_id] = known
        previous = record
    return listed


def _state_at(records: list[Any], moment: datetime) -> tuple[str, Any]:
    """Return the state of one row at the moment from its history records (any order)."""
    records = sorted(records, key=lambda r: (r.history_date, r.history_id))
    if not records:
        return _AS_NOW, None
    before = [r for r in records if r.history_date <= moment]
    if before:
        latest = before[-1]
        return (_ABSENT, None) if latest.history_type == "-" else (_THEN, latest)
    # Recorded only after the moment: created after it, or older than history.
    return (_ABSENT, None) if records[0].history_type == "+" else (_UNKNOWN, None)


def _tracked(model: type[Model]) -> list[Any]:
    return list(model.history.model.tracked_fields)


def _restore(instance: Model, record: Any, *, exclude: frozenset[str]) -> None:
    """Set the instance's recorded fields to the record's values (secrets are never recorded)."""
    for model_field in _tracked(type(instance)):
        if model_field.name not in exclude:
            setattr(instance, model_field.attname, getattr(record, model_field.attname))


def _shown(instance: Model, model_field: Any) -> str:
    value = getattr(instance, model_field.attname)
    if value is None or value == "":
        return "-"
    if model_field.is_relation:
        related = model_field.related_model._default_manager.filter(pk=value).first()
        return str(related) if related is not None else f"#{value} (deleted since)"
    if model_field.choices:
        return str(dict(model_field.flatchoices).get(value, value))
    return str(value)


def _changes(current: Model, target: Model, *, exclude: frozenset[str]) -> list[FieldChange]:
    return [
        FieldChange(
            str(capfirst(model_field.verbose_name)),
            _shown(current, model_field),
            _shown(target, model_field),
        )
        for model_field in _tracked(type(current))
        if model_field.name not in exclude
        and getattr(current, model_field.attname) != getattr(target, model_field.attname)
    ]


def _validation_problems(what: str, instance: Model, **options: Any) -> list[str]:
    """Validate the instance as an admin save does; return its errors, each saying where."""
    try:
        instance.full_clean(**options)
    except ValidationError as exc:
        if not hasattr(exc, "error_dict"):
            return [f"{what}{message}" for message in exc.messages]
        problems = []
        for name, messages in exc.message_dict.items():
            label = (
                ""
                if name == NON_FIELD_ERRORS
                else f"{capfirst(instance._meta.get_field(name).verbose_name)}: "
            )
            problems += [f"{what}{label}{message}" for message in messages]
        return problems
    return []


def _sources(
    current: Contract, record: Any, then: list[int] | None, problems: list[str]
) -> tuple[list[int] | None, FieldChange | None]:
    """The sources the contract listed then, and the change from now (None: the same, or not
    known)."""
    if record is None or then is None:
        return None, None
    now = sorted(source.pk for source in current.sources.all())
    if then == now:
        return then, None
    names = dict(Source.objects.filter(pk__in={*then, *now}).values_list("pk", "name"))
    gone = [pk for pk in then if pk not in names]
    if gone:
        listed = ", ".join(f"#{pk}" for pk in gone)
        problems.append(f"Sources: the sources {listed} it listed were deleted since.")
    return then, FieldChange(
        "Sources",
        ", ".join(names.get(pk, f"#{pk}") for pk in now) or "-",
        ", ".join(names.get(pk, f"#{pk}") for pk in then) or "-",
    )


def _source_list_problems(source_filter: str, listed: list[int]) -> list[str]:
    problem = source_filter_problem(source_filter, listed=bool(listed))
    if problem is None:
        return []
    name, message = problem
    return [f"{capfirst(Contract._meta.get_field(name).verbose_name)}: {message}"]


def _natural_key(model: type[Model]) -> list[str]:
    """The fields besides the contract that tell a part from its siblings (a cap's period), if
    any: a part deleted and added again is the same part."""
    for constraint in model._meta.constraints:
        if (
            isinstance(constraint, UniqueConstraint)
            and constraint.condition is None
            and "contract" in constraint.fields
        ):
            return [model._meta.get_field(f).attname for f in constraint.fields if f != "contract"]
    return []


def unique_key(row: Model) -> tuple[Any, ...] | None:
    """The key a part holds among its contract's parts of its kind (its kind and, say, a cap's
    period), or None when its kind has no such key."""
    key = _natural_key(type(row))
    if not key:
        return None
    return (type(row), row.contract_id, *(getattr(row, name) for name in key))


def save_order(parts: list[PartRevert]) -> list[tuple[PartRevert, bool]]:
    """The parts to add back or change, each after those that free the key it takes (a week cap
    going back to a week before a day cap comes back): (part, True) for a part to delete and add
    again, the way out of a cycle (two closed dates that swapped days)."""
    pending = [part for part in parts if part.action in (ADDED, CHANGED)]
    ordered: list[tuple[PartRevert, bool]] = []
    reinserted: set[int] = set()

    def moving(part: PartRevert) -> bool:
        return (
            part.action == CHANGED
            and id(part) not in reinserted
            and unique_key(part.current) != unique_key(part.target)
        )

    while pending:
        held = {unique_key(part.current) for part in pending if moving(part)}
        ready = [
            part
            for part in pending
            if unique_key(part.target) is None
            or unique_key(part.target) not in held
            or (part.action == CHANGED and unique_key(part.current) == unique_key(part.target))
        ]
        if not ready:
            # Every part left waits for another: delete one, freeing its key, and add it again.
            part = next(part for part in pending if moving(part))
            reinserted.add(id(part))
            continue
        for part in ready:
            ordered.append((part, id(part) in reinserted))
            pending.remove(part)
    return ordered


def _kind(model: type[Model]) -> str:
    return str(capfirst(model._meta.verbose_name))


def _parts(
    current: Contract, target: Contract, relation: str, moment: datetime, problems: list[str]
) -> list[PartRevert]:
    """Every part of one kind as it was then beside as it is now, validated."""
    model = Contract._meta.get_field(relation).related_model
    history = model.history.model
    kind = _kind(model)
    rows = {row.pk: row for row in model.objects.filter(contract_id=current.pk)}
    ids = set(history.objects.filter(contract_id=current.pk).values_list("id", flat=True))
    records = defaultdict(list)
    for record in history.objects.filter(id__in=ids | set(rows)):
        records[record.id].append(record)
    then: list[Any] = []
    kept: list[Model] = []
    for pk in sorted(ids | set(rows)):
        state, record = _state_at(records[pk], moment)
        if state == _UNKNOWN:
            row = rows.get(pk)
            label = str(row) if row is not None else f"#{pk}"
            problems.append(
                f"{kind} {label}: its state then was not recorded (older than history)."
            )
        elif state == _THEN and record.contract_id == current.pk:
            then.append(record)
        elif state == _AS_NOW:
            kept.append(rows[pk])
    # Each part then is a part now of the same id or else of the same natural key.
    key = _natural_key(model)
    kept_ids = {row.pk for row in kept}
    unmatched = {pk: row for pk, row in rows.items() if pk not in kept_ids}
    pairs: list[tuple[Any, Model | None]] = []
    for record in then:
        row = unmatched.pop(record.id, None)
        pairs.append((record, row))
    for index, (record, row) in enumerate(pairs):
        if row is None and key:
            values = [getattr(record, name) for name in key]
            match = next(
                (pk for pk, r in unmatched.items() if [getattr(r, n) for n in key] == values), None
            )
            if match is not None:
                pairs[index] = (record, unmatched.pop(match))
    parts = [PartRevert(kind, str(row), "", [], row, row) for row in kept]
    for record, row in pairs:
        parts.append(_part_then(model, record, row, target=target, problems=problems))
    parts += [PartRevert(kind, str(row), REMOVED, [], row, None) for row in unmatched.values()]
    return parts


def _part_then(
    model: type[Model], record: Any, row: Model | None, *, target: Contract, problems: list[str]
) -> PartRevert:
    """The part as the record says, in place of the row now of the same id or key (if any)."""
    kind = _kind(model)
    if row is not None:
        part = copy.copy(row)
        _restore(part, record, exclude=frozenset({"id", "contract"}))
    else:
        part = model(**{f.attname: getattr(record, f.attname) for f in _tracked(model)})
        if model.objects.filter(pk=record.id).exists():  # moved to another contract since
            part.pk = None
    part.contract = target
    found = _validation_problems(
        f"{kind} {part}: ", part, validate_unique=False, validate_constraints=False
    )
    if found and row is None and model.history.model._history_excluded_fields:
        found.append(
            f"{kind} {part}: secrets and credentials are not kept in history; add it again on "
            "the contract's page first."
        )
    if (
        isinstance(part, DeliveryEndpoint)
        and isinstance(row, DeliveryEndpoint)
        and part.auth_type not in {row.auth_type, AuthType.NONE}
    ):
        # Its credential is today's (credentials are not kept in history): a token sent as a
        # basic-auth password, or a password as a bearer token, would be wrong or leak.
        found.append(
            f"{kind} {part}: its authentication would go back from {row.get_auth_type_display()} "
            f"to {part.get_auth_type_display()} with today's credential (credentials are not "
            "kept in history); change the authentication on the contract's page instead."
        )
    if isinstance(part, FieldCriterion):
        # As the admin's criterion form checks the lead's score and tier.
        problem = score_criterion_problem(part.field.strip(), part.operator, part.value)
        if problem is not None:
            found.append(f"{kind} {part}: {capfirst(problem[0])}: {problem[1]}")
    problems += found
    if row is None:
        return PartRevert(kind, str(part), ADDED, [], None, part)
    changes = _changes(row, part, exclude=frozenset({"id", "contract"}))
    return PartRevert(kind, str(part), CHANGED if changes else "", changes, row, part)


def _targets(parts: list[PartRevert], model: type[Model]) -> list[Any]:
    return [part.target for part in parts if isinstance(part.target, model)]


def _mapping_problems(target: Contract, parts: list[PartRevert]) -> list[str]:
    """A mapping then must read fields the contract's vertical has now."""
    mappings = _targets(parts, FieldMapping)
    unknown = set(
        fields_unknown_to(target.vertical, mapped_fields(m.source_field for m in mappings))
    )
    problems = []
    for mapping in mappings:
        missing = sorted(mapped_fields([mapping.source_field]) & unknown)
        if missing:
            problems.append(
                f"Field mapping {mapping}: {target.vertical} has no field {', '.join(missing)} "
                "any more."
            )
    return problems


def _readiness_problems(target: Contract, parts: list[PartRevert]) -> list[str]:
    """A live contract must be able to deliver, as its admin page refuses to save it otherwise."""
    if target.status != ContractStatus.ACTIVE:
        return []
    problems = delivery_problems(
        price_model=target.price_model,
        delivery_method=target.delivery_method,
        endpoints=[
            EndpointSketch(
                kind=e.kind, body_template=e.body_template, query=e.query, headers=e.headers
            )
            for e in _targets(parts, DeliveryEndpoint)
        ],
        secret_names=[s.name for s in _targets(parts, ContractSecret)],
    )
    return [
        f"An active contract must be able to deliver. {p} Pause it first to revert to this version."
        for p in problems
    ]
