"""Export a marketplace's configuration to a document, and import one: validated as the admin
validates, applied in one transaction, recorded in the configuration history.

Both walk the table of kinds (marketplace.kinds) generically; the file's own rules (placeholders,
paths, the diff) are in marketplace.document.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import cache
from typing import Any

from django.apps import apps
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import DatabaseError, models, router, transaction
from django.db.models.deletion import Collector, ProtectedError, RestrictedError

from buyers.fields import EncryptedTextField
from leads.models import Lead, Vertical
from marketplace.document import (
    FORMAT_KEY,
    FORMAT_VERSION,
    Change,
    Problem,
    path_join,
    placeholder,
    placeholder_variable,
    secret_variable,
    sort_key,
    sorted_json,
)
from marketplace.kinds import NATURAL_KEYS, SECTIONS, Kind

SCOPE_KEY = "scope"
NUMBER_RE = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
HIDDEN = "••••"


class ConfigRefused(Exception):
    """The configuration cannot be exported or imported; nothing was changed."""

    def __init__(self, problems: list[Problem], changes: list[Change] | None = None) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems
        self.changes = changes or []  # what the import would have done, as far as it read


@dataclass
class ImportResult:
    changes: list[Change]
    applied: bool


# --- The kinds' fields and values, as the file writes them ----------------------------------


@cache
def _fields(kind: Kind) -> tuple[models.Field, ...]:
    """The kind's configuration fields: key first, then in the model's order."""
    fields = [
        f
        for f in kind.model._meta.concrete_fields
        if f.editable
        and not f.primary_key
        and f.name != kind.parent
        and f.name not in kind.exclude
        and not isinstance(f, models.DateTimeField)  # timestamps are history, not configuration
    ]
    first = [*(kind.key or ()), *kind.fallback_key]
    return tuple(sorted(fields, key=lambda f: first.index(f.name) if f.name in first else 99))


def config_fields(kind: Kind) -> tuple[models.Field, ...]:
    """The kind's configuration fields, as the file writes them."""
    return _fields(kind)


def is_secret(f: models.Field) -> bool:
    """Whether the file writes the field as a placeholder, never its value."""
    return _is_secret(f)


def _known_keys(kind: Kind) -> set[str]:
    return {f.name for f in _fields(kind)} | set(kind.m2m) | {c.section for c in kind.children}


def _is_secret(f: models.Field) -> bool:
    return isinstance(f, EncryptedTextField)


def _natural(obj: models.Model) -> Any:
    """Name an object by its natural key: 'auto-insurance', or {buyer, vertical, name}."""
    names = NATURAL_KEYS[type(obj)]
    values = {
        name: _natural(getattr(obj, name))
        if obj._meta.get_field(name).is_relation
        else getattr(obj, name)
        for name in names
    }
    return values[names[0]] if len(names) == 1 else values


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return " / ".join(_describe(v) for v in value.values())
    return str(value)


def _plain(f: models.Field, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(f, models.DecimalField):
        try:
            return str(Decimal(value).quantize(Decimal(1).scaleb(-f.decimal_places)))
        except ArithmeticError:  # too many digits to quantize: full_clean says so
            return str(value)
    if isinstance(f, models.DateField | models.TimeField):
        return value.isoformat()
    if isinstance(f, models.JSONField):
        return sorted_json(value)
    return value


def _row(kind: Kind, obj: models.Model) -> dict[str, Any]:
    """The object's own configuration (no secrets, no children), as the file writes it."""
    row = {}
    for f in _fields(kind):
        if _is_secret(f):
            continue
        if f.is_relation:
            target = getattr(obj, f.name)
            row[f.name] = None if target is None else _natural(target)
        else:
            row[f.name] = _plain(f, getattr(obj, f.attname))
    return row


def _m2m(kind: Kind, obj: models.Model) -> dict[str, list[Any]]:
    return {
        name: sorted((_natural(o) for o in getattr(obj, name).all()), key=lambda v: sort_key((v,)))
        for name in kind.m2m
    }


def _identity(kind: Kind, row: Mapping[str, Any]) -> str:
    if kind.key is None:
        return json.dumps(row, sort_keys=True, default=str)
    names = kind.key
    if kind.fallback_key and all(row.get(k) in (None, "") for k in names):
        names = kind.fallback_key
    return json.dumps([[k, row.get(k)] for k in names], sort_keys=True, default=str)


def _label_names(kind: Kind, row: Mapping[str, Any]) -> tuple[str, ...]:
    names = kind.key or ()
    if kind.fallback_key and all(row.get(k) in (None, "") for k in names):
        names = kind.fallback_key
    return names


def _label(kind: Kind, row: Mapping[str, Any]) -> str:
    if kind.single:
        return kind.section
    return " / ".join(_describe(row.get(k)) for k in _label_names(kind, row)) or kind.noun


def _label_personal(kind: Kind, row: Mapping[str, Any]) -> bool:
    """Whether the label is personal data (a team member without an account, by name)."""
    return not kind.single and bool(kind.personal & set(_label_names(kind, row)))


def _children_of(kind: Kind, parents: list[models.Model]) -> dict[int, list[models.Model]]:
    rows = kind.model.objects.filter(**{f"{kind.parent}__in": parents}).order_by("pk")
    grouped: dict[int, list[models.Model]] = defaultdict(list)
    for row in _related(kind, rows):
        grouped[getattr(row, f"{kind.parent}_id")].append(row)
    return grouped


def _related(kind: Kind, rows: models.QuerySet) -> models.QuerySet:
    paths = []
    for f in _fields(kind):
        if f.is_relation:
            paths.append(f.name)
            paths.extend(
                f"{f.name}__{name}"
                for name in NATURAL_KEYS[f.related_model]
                if f.related_model._meta.get_field(name).is_relation
            )
    rows = rows.select_related(*paths)
    return rows.prefetch_related(*kind.m2m) if kind.m2m else rows


# --- Export ----------------------------------------------------------------------------------


def config_export(*, verticals: list[str] | None = None) -> dict[str, Any]:
    """Return the marketplace's configuration as a document (every vertical, or these only).

    Raise ConfigRefused when objects cannot be told apart by their natural key.
    """
    document: dict[str, Any] = {FORMAT_KEY: FORMAT_VERSION}
    problems: list[Problem] = []
    if verticals:
        slugs = sorted(set(verticals))
        unknown = sorted(
            set(slugs) - set(Vertical.objects.filter(slug__in=slugs).values_list("slug", flat=True))
        )
        if unknown:
            raise ConfigRefused([Problem("", f"No vertical {', '.join(unknown)}.")])
        document[SCOPE_KEY] = {"verticals": slugs}
    for kind in SECTIONS:
        rows = kind.model.objects.order_by("pk")
        if verticals:
            if kind.scope is None:
                continue
            rows = rows.filter(kind.scope(slugs)).distinct()
        items = _export_rows(kind, list(_related(kind, rows)), kind.section, [kind.noun], problems)
        document[kind.section] = items
    if problems:
        raise ConfigRefused(problems)
    used: set[str] = set()
    for kind in SECTIONS:
        _distinct_placeholders(kind, document.get(kind.section), used)
    return document


class ObjectMissing(LookupError):
    """No object of the kind has this natural key."""


def config_kind(section: str) -> Kind:
    """Return the kind written under this section of the file (raise KeyError when none)."""
    for kind in SECTIONS:
        if kind.section == section:
            return kind
    raise KeyError(section)


def config_objects(
    *, section: str, key: Any = None, verticals: list[str] | None = None
) -> list[dict[str, Any]]:
    """Return a section's objects (the one its natural key names, or those of these verticals)
    as the export writes them: children included, secrets as placeholders.

    Raise ConfigRefused when objects cannot be told apart by their natural key.
    """
    kind = config_kind(section)
    rows = kind.model.objects.order_by("pk")
    if key is not None:
        rows = rows.filter(**_natural_filter(kind.model, key, names=kind.key))
    if verticals:
        if kind.scope is None:
            return []
        rows = rows.filter(kind.scope(sorted(set(verticals)))).distinct()
    problems: list[Problem] = []
    items = _export_rows(kind, list(_related(kind, rows)), kind.section, [kind.noun], problems)
    if problems:
        raise ConfigRefused(problems)
    _distinct_placeholders(kind, items, set())
    return list(items)


def _distinct_placeholders(kind: Kind, items: Any, used: set[str]) -> None:
    """Give every secret of the document a variable of its own, in the document's order: names
    that differ only in case or punctuation (secrets api_key and API_KEY, contracts 'Main post'
    and 'Main-post') make the same variable, and an import would give both one value."""
    names = [f.name for f in _fields(kind) if _is_secret(f)]
    for item in ([items] if kind.single else items) if items else []:
        for name in names:
            variable = placeholder_variable(item.get(name))
            if variable is None:
                continue
            unique, count = variable, 1
            while unique in used:
                count += 1
                unique = f"{variable}_{count}"
            used.add(unique)
            item[name] = placeholder(unique)
        for child in kind.children:
            _distinct_placeholders(child, item.get(child.section), used)


def _export_rows(
    kind: Kind, objs: list[models.Model], path: str, trail: list[Any], problems: list[Problem]
) -> Any:
    children = {c.section: _children_of(c, objs) for c in kind.children}
    items = []
    for obj in objs:
        row = _row(kind, obj)
        own_trail = [*trail, *((row.get(k) for k in kind.key) if kind.key else ())]
        for f in _fields(kind):
            if _is_secret(f):
                stored = getattr(obj, f.name)
                row[f.name] = placeholder(secret_variable(*own_trail, f.name)) if stored else ""
        row.update(_m2m(kind, obj))
        for child in kind.children:
            row[child.section] = _export_rows(
                child,
                children[child.section].get(obj.pk, []),
                f"{path}[{_label(kind, row)}].{child.section}",
                own_trail,
                problems,
            )
        items.append(row)
    order = kind.order or kind.key or tuple(f.name for f in _fields(kind))
    items.sort(key=lambda item: sort_key(tuple(item.get(k) for k in order)))
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        identity = _identity(kind, {k: v for k, v in item.items() if k not in kind.m2m})
        if identity in seen and kind.key is not None:
            problems.append(
                Problem(
                    path,
                    f"two {kind.model._meta.verbose_name_plural} are both named "
                    f"{_label(kind, item)!r}: rename one, the file names objects by it.",
                )
            )
        seen[identity] = index
    if kind.single:
        return items[0] if items else None
    return items


# --- Import ----------------------------------------------------------------------------------


def config_import(
    *,
    document: Mapping[str, Any],
    reason: str,
    user: Any = None,
    prune: bool = False,
    dry_run: bool = False,
    environ: Mapping[str, str] | None = None,
    literal_secrets: bool = False,
    replace_parts: bool = False,
) -> ImportResult:
    """Make the configuration what the document says, in one transaction: every object checked
    as the admin checks it, its history recorded with the user and reason, routing's and
    intake's caches told. Raise ConfigRefused (nothing changed) listing every problem.

    `literal_secrets`: a secret written in clear is its value and a placeholder keeps the
    stored one (the API's way: its caller's environment is not the server's). `replace_parts`:
    an object's parts that its lists leave out are deleted, as `prune` does, but the objects
    the document leaves out are left alone (the API's PUT of one object)."""
    reason = reason.strip()
    if not reason:
        raise ValueError("an import needs a reason")
    run = _Import(
        reason=reason,
        user=user,
        prune=prune,
        environ=os.environ if environ is None else environ,
        literal_secrets=literal_secrets,
        replace_parts=replace_parts,
    )
    with transaction.atomic():
        run.document(document)
        if run.problems:
            raise ConfigRefused(run.problems, run.changes)
        if dry_run:
            transaction.set_rollback(True)
    return ImportResult(changes=run.changes, applied=not dry_run)


def config_delete(
    *, section: str, key: Any, reason: str, user: Any = None, dry_run: bool = False
) -> ImportResult:
    """Delete one object of a section (named by its natural key) and the parts it owns, each
    with its history, as an import with --prune deletes it: refused (ConfigRefused, nothing
    changed) when the deletion would take other configuration along (a buyer's contracts) or
    something still refers to it (a vertical that contracts or leads use). Raise ObjectMissing
    when there is no such object."""
    reason = reason.strip()
    if not reason:
        raise ValueError("a deletion needs a reason")
    kind = config_kind(section)
    try:
        lookup = _natural_filter(kind.model, key, names=kind.key)
    except ValueError as exc:
        raise ObjectMissing(str(exc)) from None
    run = _Import(
        reason=reason,
        user=user,
        prune=True,
        environ={},
        cascade_hint="which should stay: delete those first, or keep it.",
    )
    with transaction.atomic():
        found = list(
            kind.model.objects.select_for_update(of=("self",)).filter(**lookup).order_by("pk")[:2]
        )
        if not found:
            raise ObjectMissing(f"No {kind.noun} {_describe(key)!r}.")
        if len(found) > 1:
            raise ConfigRefused(
                [Problem(kind.section, f"more than one {kind.noun} is {_describe(key)!r}.")]
            )
        obj = found[0]
        run.changes.append(Change("deleted", kind.section, _label(kind, _row(kind, obj))))
        run.deletions.append((SECTIONS.index(kind), kind, obj, kind.section))
        run.finish()
        if run.problems:
            raise ConfigRefused(run.problems)
        if dry_run:
            transaction.set_rollback(True)
    return ImportResult(changes=run.changes, applied=not dry_run)


@dataclass(frozen=True)
class _At:
    """Where in the file and the database an import is: the path, the owner of the rows (None
    at the top), whether they may be saved (not under an owner that has errors), and the top
    section with its object, whose caches are told of any change below it."""

    path: str
    parent: models.Model | None = None
    saving: bool = True
    top: tuple[Any, ...] = ()

    def below(self, path: str, obj: models.Model, *, saving: bool, kind: Kind) -> _At:
        top = self.top if self.parent is not None else (kind, obj)
        return _At(path, obj, saving, top)

    @property
    def parent_saved(self) -> bool:
        return self.parent is None or self.parent.pk is not None


@dataclass
class _Import:
    reason: str
    user: Any
    prune: bool
    environ: Mapping[str, str]
    literal_secrets: bool = False
    replace_parts: bool = False
    # How a refused deletion says what to do instead.
    cascade_hint: str = (
        "which this import keeps: delete those too (list their section without them), or keep it."
    )
    changes: list[Change] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    late: list[tuple[Kind, Any, _At]] = field(default_factory=list)
    deletions: list[tuple[int, Kind, models.Model, str]] = field(default_factory=list)
    referenced: dict[tuple[type[models.Model], Any], str] = field(default_factory=dict)
    touched: dict[Kind, set[int]] = field(default_factory=lambda: defaultdict(set))
    saved: dict[Kind, list[models.Model]] = field(default_factory=lambda: defaultdict(list))

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def document(self, document: Mapping[str, Any]) -> None:
        known = {FORMAT_KEY, SCOPE_KEY, *(k.section for k in SECTIONS)}
        for key in document:
            if key not in known:
                self.problem(str(key), f"unknown section (known: {', '.join(sorted(known))})")
        if self.prune and SCOPE_KEY in document:
            self.problem(
                SCOPE_KEY,
                "this file holds only some verticals (exported with --vertical): --prune would "
                "delete everything else; import it without --prune.",
            )
        for kind in SECTIONS:
            if kind.section in document:
                self.rows(kind, document[kind.section], _At(kind.section))
        for kind, items, at in self.late:
            self.rows(kind, items, at)
        if not self.problems:
            self.finish()

    def finish(self) -> None:
        self.check_deletions()
        if self.problems:
            return
        # Whole objects, the later sections (which name the earlier ones) first.
        for _, kind, obj, path in sorted(self.deletions, key=lambda d: d[0], reverse=True):
            self.delete(kind, obj, path)
        for kind, pks in self.touched.items():
            for pk in pks:
                if kind.touch is not None and kind.model.objects.filter(pk=pk).exists():
                    kind.touch(pk, self.user)
        for kind, objs in self.saved.items():
            if kind.saved is not None:
                kind.saved(objs)

    def check_deletions(self) -> None:
        """Refuse to prune an object the file names (a contract's buyer, a source it lists), or
        one whose deletion would take along objects this import keeps (a buyer's contracts,
        when the file has no contracts section): the database would delete them unseen."""
        doomed = {(type(obj), obj.pk) for _, _, obj, _ in self.deletions}
        kept_models = {k.model for k in SECTIONS}
        for _, kind, obj, path in self.deletions:
            where = self.referenced.get((kind.model, obj.pk))
            if where is not None:
                self.problem(
                    where,
                    f"names {kind.noun} {obj!s}, which --prune deletes (the file's "
                    f"{kind.section} leave it out): keep it in {kind.section}, or stop naming it.",
                )
            taken = sorted(
                f"{o._meta.verbose_name} {o!s}"
                for o in _cascaded(obj, kept_models)
                if (type(o), o.pk) not in doomed
            )
            if taken:
                self.problem(
                    path,
                    f"deleting {kind.noun} {obj!s} would delete {', '.join(taken)} with it, "
                    f"{self.cascade_hint}",
                )
            records = _counted(_cascaded(obj, _lead_record_models()))
            if records:
                # As the admin refuses it (those records are read-only there): nothing is lost.
                self.problem(
                    path,
                    f"deleting {kind.noun} {obj!s} would delete {records} with it, the record "
                    "of what became of leads: keep it (pause or deactivate it instead).",
                )

    def rows(self, kind: Kind, items: Any, at: _At) -> None:
        """Import one section, or one owner's rows of a kind."""
        if kind.single:
            items = [] if items is None else [items]
        if not isinstance(items, list):
            self.problem(at.path, f"give a list of {kind.model._meta.verbose_name_plural}.")
            return
        existing = kind.model.objects.order_by("pk")
        if at.parent is None and kind.touch is not None:
            # An owner whose caches are told (a vertical, buyer, contract) is locked before its
            # rows are written, as its admin page and a revert lock it: the same order, so an
            # import and a revert or a part's page wait for each other instead of deadlocking.
            existing = existing.select_for_update(no_key=True, of=("self",))
        if at.parent is not None:
            parent = at.parent
            existing = existing.filter(**{kind.parent: parent}) if parent.pk else existing.none()
        stored = list(_related(kind, existing))
        if kind.key is None:
            self.replace(kind, items, at, stored)
            return
        by_identity: dict[str, list[models.Model]] = defaultdict(list)
        for obj in stored:
            by_identity[_identity(kind, _row(kind, obj))].append(obj)
        seen: dict[str, str] = {}
        for index, item in enumerate(items):
            path = at.path if kind.single else path_join(at.path, index)
            values = self.parse(kind, item, path)
            if values is None:
                continue
            identity = _identity(kind, values.key_row)
            matches = by_identity.get(identity, [])
            if identity in seen:
                self.problem(path, f"the same {kind.noun} as {seen[identity]}.")
            elif len(matches) > 1:
                self.problem(
                    path,
                    f"{len(matches)} stored {kind.model._meta.verbose_name_plural} are named "
                    f"{_label(kind, values.key_row)!r}: rename them in the admin first.",
                )
            else:
                self.one(kind, item, replace(at, path=path), values, next(iter(matches), None))
            seen.setdefault(identity, path)
        absent = [
            obj for identity, objs in by_identity.items() if identity not in seen for obj in objs
        ]
        self.absent(kind, absent, at)

    def absent(self, kind: Kind, objs: list[models.Model], at: _At) -> None:
        """The stored objects the file does not list: deleted with --prune, else left alone."""
        order = SECTIONS.index(kind) if at.parent is None else -1
        for obj in objs:
            row = _row(kind, obj)
            label, personal = _label(kind, row), _label_personal(kind, row)
            if self.prune or (self.replace_parts and at.parent is not None):
                self.changes.append(Change("deleted", at.path, label, personal=personal))
                self.mark(at.top)
                if at.parent is None:
                    self.deletions.append((order, kind, obj, at.path))
                elif at.saving:
                    # A kept owner's row goes now, before the owner's own checks read what is
                    # left (an active contract's endpoints, the fields a vertical's duplicate
                    # rule and scoring rules name), as the admin checks a page with its
                    # deleted rows.
                    self.delete(kind, obj, at.path)
            else:
                self.changes.append(Change("absent", at.path, label, personal=personal))

    def one(
        self,
        kind: Kind,
        item: Mapping[str, Any],
        at: _At,
        values: _Values,
        obj: models.Model | None,
    ) -> None:
        """Import one object of the file (and what it owns), matched with the stored one."""
        before = _row(kind, obj) if obj is not None else None
        before_m2m = _m2m(kind, obj) if obj is not None else {}
        if obj is None:
            obj = kind.model(**({kind.parent: at.parent} if at.parent is not None else {}))
        for name, value in values.fields.items():
            setattr(obj, name, value)
        problems_before = len(self.problems)
        changed = self.secrets(kind, item, at.path, obj, before is None)
        # A secret that could not be read is reported once, not again as missing.
        unread = (
            [f.name for f in _fields(kind) if _is_secret(f)]
            if self.problems[problems_before:]
            else []
        )
        saving = self.valid(kind, obj, at.path, at.saving and at.parent_saved, unread) and at.saving
        after = _row(kind, obj)
        changed += [
            (name, _shown(before[name]), _shown(value))
            for name, value in after.items()
            if before is not None and before[name] != value
        ]
        changed += [
            (name, _shown(before_m2m.get(name, [])), _shown(_naturals(value)))
            for name, value in values.m2m.items()
            if _naturals(value) != before_m2m.get(name, [])
        ]
        self.record(kind, at, after, before is None, changed)
        below = at.below(at.path, obj, saving=saving, kind=kind)
        if saving and (before is None or changed):
            if kind.before_save is not None:
                kind.before_save(obj)
            saving = self.save(obj, at.path)
            if saving:
                for name, targets in values.m2m.items():
                    getattr(obj, name).set(targets)
                self.saved[kind].append(obj)
                self.mark(below.top)
        changes_before = self.counted()
        for child in kind.children:
            if child.section in item:
                job = (
                    child,
                    item[child.section],
                    replace(below, path=path_join(at.path, child.section), saving=saving),
                )
                if child.late:
                    self.late.append(job)
                else:
                    self.rows(*job)
        # The admin's own checks of the whole object, once its parts are right.
        if (
            saving
            and kind.check is not None
            and len(self.problems) == problems_before
            and (before is None or changed or self.counted() > changes_before)
        ):
            for name, message in kind.check(obj):
                self.problem(path_join(at.path, name), message)

    def record(
        self,
        kind: Kind,
        at: _At,
        row: dict[str, Any],
        created: bool,
        changed: list[tuple[str, str, str]],
    ) -> None:
        label, personal = _label(kind, row), _label_personal(kind, row)
        if created:
            self.changes.append(Change("created", at.path, label, personal=personal))
        elif changed:
            self.changes.append(Change("changed", at.path, label, changed, personal=personal))
        elif at.parent is None:
            self.changes.append(Change("unchanged", at.path, label, personal=personal))

    def replace(self, kind: Kind, items: list[Any], at: _At, stored: list[models.Model]) -> None:
        """Rows without identity (schedule windows, territory rules, criteria): the owner's list
        in the file replaces its rows when it differs."""
        problems_before = len(self.problems)
        new = []
        for index, item in enumerate(items):
            path = path_join(at.path, index)
            values = self.parse(kind, item, path)
            if values is None:
                continue
            obj = kind.model(**{kind.parent: at.parent}, **values.fields)
            if self.valid(kind, obj, path, False) and kind.check is not None:
                for name, message in kind.check(obj):
                    self.problem(path_join(path, name), message)
            new.append(obj)
        old_rows = sorted((_row(kind, o) for o in stored), key=_row_order)
        new_rows = sorted((_row(kind, o) for o in new), key=_row_order)
        if old_rows == new_rows:
            return
        noun = kind.model._meta.verbose_name_plural
        if stored:
            fields = [(kind.section, _rows_text(old_rows), _rows_text(new_rows))]
            self.changes.append(Change("changed", at.path, f"{len(new_rows)} {noun}", fields))
        else:
            self.changes.append(Change("created", at.path, f"{len(new_rows)} {noun}"))
        # Not with a row that is not valid: the database would refuse it once more.
        if not (at.saving and at.parent_saved) or len(self.problems) > problems_before:
            return
        for obj in stored:
            self.delete(kind, obj, at.path)
        for obj in new:
            if self.save(obj, at.path):
                self.saved[kind].append(obj)
        self.mark(at.top)

    def parse(self, kind: Kind, item: Any, path: str) -> _Values | None:
        """Read one object of the file: its fields as the model holds them, references looked
        up by natural key. Secrets are read by `secrets`."""
        if not isinstance(item, dict):
            self.problem(path, f"give a {kind.noun} as a mapping of its fields.")
            return None
        known = _known_keys(kind)
        ok = True
        for key in item:
            if key not in known:
                self.problem(
                    path_join(path, str(key)), f"unknown key (known: {', '.join(sorted(known))})"
                )
                ok = False
        missing = [k for k in kind.key or () if k not in item and k not in kind.fallback_key]
        if missing and not (kind.fallback_key and any(k in item for k in kind.fallback_key)):
            self.problem(path, f"give its {' and '.join(missing)}: the file names it by that.")
            ok = False
        values = _Values()
        for f in _fields(kind):
            if f.name not in item or _is_secret(f):
                continue
            raw = item[f.name]
            field_path = path_join(path, f.name)
            if f.is_relation:
                target = self.lookup(f.related_model, raw, field_path) if raw is not None else None
                if raw is not None and target is None:
                    ok = False
                values.fields[f.name] = target
                values.key_row[f.name] = raw
                continue
            value, problem = _read_value(f, raw)
            if problem:
                self.problem(field_path, problem)
                ok = False
                continue
            values.fields[f.attname] = value
            values.key_row[f.name] = _plain(f, value)
        for name in kind.m2m:
            if name not in item:
                continue
            raw = item[name]
            field_path = path_join(path, name)
            if not isinstance(raw, list):
                self.problem(field_path, "give a list.")
                ok = False
                continue
            model = kind.model._meta.get_field(name).related_model
            targets = [self.lookup(model, r, path_join(field_path, i)) for i, r in enumerate(raw)]
            ok = ok and all(t is not None for t in targets)
            values.m2m[name] = [t for t in targets if t is not None]
        return values if ok else None

    def lookup(self, model: type[models.Model], value: Any, path: str) -> models.Model | None:
        """Find the object a natural key names (created earlier in this import, or stored)."""
        try:
            lookup = _natural_filter(model, value)
        except ValueError as exc:
            self.problem(path, str(exc))
            return None
        found = list(model._default_manager.filter(**lookup)[:2])
        if len(found) == 1:
            self.referenced.setdefault((model, found[0].pk), path)
            return found[0]
        noun = model._meta.verbose_name
        if found:
            self.problem(path, f"more than one {noun} is {_describe(value)!r}.")
        else:
            self.problem(path, f"no {noun} {_describe(value)!r}, stored or in the file.")
        return None

    def secrets(
        self, kind: Kind, item: Mapping[str, Any], path: str, obj: models.Model, new: bool
    ) -> list[tuple[str, str, str]]:
        """Fill each secret of the object from the environment variable its placeholder names,
        or keep the stored one; return the (masked) changes."""
        changed = []
        for f in _fields(kind):
            if not _is_secret(f) or f.name not in item:
                continue
            raw, stored = item[f.name], getattr(obj, f.name) or ""
            field_path = path_join(path, f.name)
            variable = placeholder_variable(raw)
            if raw in ("", None):
                value = ""
            elif variable is None and self.literal_secrets:
                if not isinstance(raw, str):
                    self.problem(field_path, "give the secret as text.")
                    continue
                value = raw
            elif variable is None:
                self.problem(
                    field_path,
                    "secrets are never written in the file: give a ${LEADSWITCH_SECRET_<NAME>} "
                    "placeholder and the value in that environment variable.",
                )
                continue
            elif self.environ.get(variable):  # set but empty is unset: "" in the file clears
                value = self.environ[variable]
            elif stored and not new:
                value = stored
            else:
                self.problem(
                    field_path,
                    "give the secret's value: a placeholder keeps the stored secret, and there "
                    "is none."
                    if self.literal_secrets
                    else f"set the environment variable {variable}: there is no stored secret "
                    "to keep.",
                )
                continue
            if value != stored:
                setattr(obj, f.name, value)
                shown = placeholder(variable) if variable else HIDDEN if value else "(none)"
                changed.append((f.name, HIDDEN if stored else "(none)", shown))
        return changed

    def valid(
        self, kind: Kind, obj: models.Model, path: str, saving: bool, unread: Iterable[str] = ()
    ) -> bool:
        """Check the object as the model and the admin do; report each error at its path."""
        # Under an owner that is not saved (it has errors of its own), the rows are still
        # checked, all but the link to it.
        exclude = [*unread, *([] if saving or not kind.parent else [kind.parent])]
        try:
            obj.full_clean(exclude=exclude or None)
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                if name in exclude:
                    continue
                where = path if name == NON_FIELD_ERRORS else path_join(path, name)
                self.problem(where, " ".join(messages))
            return False
        return not unread

    def save(self, obj: models.Model, path: str) -> bool:
        self.history(obj)
        try:
            with transaction.atomic():
                obj.save()
        except DatabaseError as exc:
            self.problem(path, f"the database refused it: {exc}")
            return False
        return True

    def delete(self, kind: Kind, obj: models.Model, path: str) -> None:
        """Delete an object and, first, the rows it owns, each with its history."""
        for child in kind.children:
            for row in child.model.objects.filter(**{child.parent: obj}):
                self.delete(child, row, path)
        self.history(obj)
        try:
            with transaction.atomic():
                obj.delete()
        except (ProtectedError, RestrictedError) as exc:
            blocking = (
                exc.protected_objects if isinstance(exc, ProtectedError) else exc.restricted_objects
            )
            blockers = sorted({str(o._meta.verbose_name_plural) for o in blocking})
            self.problem(
                path,
                f"cannot delete {kind.noun} {obj}: {', '.join(blockers)} still refer to it.",
            )
        except DatabaseError as exc:
            self.problem(path, f"cannot delete {kind.noun} {obj}: {exc}")

    def history(self, obj: models.Model) -> None:
        obj._change_reason = self.reason[:100]  # type: ignore[attr-defined]
        if self.user is not None:
            obj._history_user = self.user  # type: ignore[attr-defined]

    def counted(self) -> int:
        """How many objects this import creates, changes or deletes so far."""
        return sum(c.action in {"created", "changed", "deleted"} for c in self.changes)

    def mark(self, top: tuple[Any, ...]) -> None:
        """Remember that the top object's configuration changed (its caches are to be told)."""
        if top and top[1].pk is not None:
            self.touched[top[0]].add(top[1].pk)


@dataclass
class _Values:
    fields: dict[str, Any] = field(default_factory=dict)
    m2m: dict[str, list[models.Model]] = field(default_factory=dict)
    key_row: dict[str, Any] = field(default_factory=dict)


def _read_value(f: models.Field, raw: Any) -> tuple[Any, str]:
    """Return a value of the file as the field holds it, or why it cannot be one. Checked before
    the field reads it: to_python takes a list for a text as its Python text, and fails with a
    TypeError on a number for a time."""
    if not isinstance(f, models.JSONField) and raw is not None:
        if isinstance(raw, dict | list):
            return None, "give a single value, not a list or a mapping."
        if isinstance(f, models.DateField | models.TimeField) and isinstance(raw, int | float):
            # YAML reads 17:30 unquoted as the number 1050 (minutes, base 60).
            what = (
                "a time as 'HH:MM'" if isinstance(f, models.TimeField) else "a date as 'YYYY-MM-DD'"
            )
            return None, f"give {what}, in quotes: {raw!r} is a number."
        # to_python would cut 1.5 to 1, and fail with an OverflowError on 1e400 (infinity).
        if isinstance(f, models.IntegerField) and isinstance(raw, float) and not raw.is_integer():
            return None, f"give a whole number, not {raw!r}."
    try:
        return f.to_python(raw), ""
    except ValidationError as exc:
        return None, " ".join(exc.messages)
    except (TypeError, ValueError, ArithmeticError):
        return None, f"{raw!r} is not a value of this field."


def _cascaded(obj: models.Model, models_: set[type[models.Model]]) -> list[models.Model]:
    """The objects of these models that deleting this one deletes too (none when something
    protects it: deleting it then fails, and says so)."""
    collector = Collector(using=router.db_for_write(type(obj)))
    try:
        collector.collect([obj])
    except (ProtectedError, RestrictedError):
        return []
    found = [
        o
        for model, objs in collector.data.items()
        if model in models_
        for o in objs
        if o is not obj
    ]
    found.extend(o for qs in collector.fast_deletes if qs.model in models_ for o in qs)
    return found


@cache
def _lead_record_models() -> frozenset[type[models.Model]]:
    """The models whose rows are part of leads' records (attempts, reservations, pings'
    attempts): they point at a lead, or at a row that does."""

    def links(model: type[models.Model]) -> list[Any]:
        return [f.related_model for f in model._meta.concrete_fields if f.is_relation]

    def points_at_lead(model: type[models.Model]) -> bool:
        return Lead in links(model)

    return frozenset(
        model
        for model in apps.get_models()
        if points_at_lead(model)
        or any(target is not model and points_at_lead(target) for target in links(model))
    )


def _counted(objs: list[models.Model]) -> str:
    """Say how many objects of each model: '3 attempts, 1 cap reservation'."""
    counts: dict[type[models.Model], int] = defaultdict(int)
    for obj in objs:
        counts[type(obj)] += 1
    return ", ".join(
        sorted(
            f"{n} {model._meta.verbose_name if n == 1 else model._meta.verbose_name_plural}"
            for model, n in counts.items()
        )
    )


def _natural_filter(
    model: type[models.Model],
    value: Any,
    prefix: str = "",
    names: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    names = names or NATURAL_KEYS[model]
    if len(names) == 1:
        value = {names[0]: value}
    if not isinstance(value, dict) or set(value) != set(names):
        raise ValueError(f"name a {model._meta.verbose_name} by {', '.join(names)}.")
    lookup: dict[str, Any] = {}
    for name in names:
        f = model._meta.get_field(name)
        if f.is_relation:
            lookup.update(_natural_filter(f.related_model, value[name], f"{prefix}{name}__"))
        elif isinstance(value[name], dict | list):
            raise ValueError(f"name a {model._meta.verbose_name} by {', '.join(names)}.")
        else:
            lookup[f"{prefix}{name}"] = value[name]
    return lookup


def _naturals(objs: Iterable[models.Model]) -> list[Any]:
    return sorted((_natural(o) for o in objs), key=lambda v: sort_key((v,)))


def _shown(value: Any) -> str:
    """A value as the diff prints it: text quoted (so that '' shows), numbers bare."""
    if isinstance(value, list):
        return "[" + ", ".join(_describe(v) for v in value) + "]"
    if isinstance(value, str) and NUMBER_RE.match(value):
        return value
    if isinstance(value, str | dict | bool) or value is None:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _row_order(row: dict[str, Any]) -> tuple[Any, ...]:
    return sort_key(tuple(row.values()))


def _rows_text(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "none"
    return "; ".join(" ".join(f"{k}={_shown(v)}" for k, v in row.items()) for row in rows)
