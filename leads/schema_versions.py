"""Versions of a vertical's field set (pure, no database): a field's frozen definition, what
makes two field sets different versions, and what changed between them, in words for ops.

A version's `fields` is a list of definitions in the order partners see them, each a mapping of
SNAPSHOT_KEYS. A change of what a partner may or must send (a field added, removed or renamed,
its type, whether it is required, its choices or limits) is a new version; a label, a help text,
the order, or how the platform treats a field (pinged, personal) is not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from leads.intake import FieldSpec
from leads.models import FIELD_NAME_RE, FieldType, Vertical, VerticalField

Snapshot = list[dict[str, Any]]

SNAPSHOT_KEYS = (
    "name",
    "label",
    "field_type",
    "required",
    "choices",
    "min_value",
    "max_value",
    "max_length",
    "in_ping",
    "is_pii",
    "help_text",
)
VERSIONED_KEYS = ("field_type", "required", "choices", "min_value", "max_value", "max_length")
_CENT = Decimal("0.01")


def _decimal_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    # As the column holds it (two places): 10 and 10.00 are one limit.
    return str(Decimal(value).quantize(_CENT))


def field_snapshot(field: Any) -> dict[str, Any]:
    """One field's definition as a version keeps it (JSON: limits as text)."""
    return {
        "name": field.name,
        "label": field.label or "",
        "field_type": field.field_type,
        "required": bool(field.required),
        "choices": [str(c) for c in (field.choices or [])],
        "min_value": _decimal_text(field.min_value),
        "max_value": _decimal_text(field.max_value),
        "max_length": field.max_length,
        "in_ping": bool(field.in_ping),
        "is_pii": bool(field.is_pii),
        "help_text": field.help_text or "",
    }


def snapshot_of(fields: Iterable[Any]) -> Snapshot:
    """The definitions of these fields (VerticalField rows, in order) as a version keeps them."""
    return [field_snapshot(f) for f in fields]


def _versioned(snapshot: Sequence[Mapping[str, Any]]) -> dict[str, tuple[Any, ...]]:
    return {
        str(f.get("name")): tuple(
            _decimal_text(f.get(k)) if k in ("min_value", "max_value") else f.get(k)
            for k in VERSIONED_KEYS
        )
        for f in snapshot
    }


def same_schema(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a partner may send the same leads under both field sets."""
    return _versioned(a) == _versioned(b)


def _shown(key: str, value: Any) -> str:
    if key == "required":
        return "yes" if value else "no"
    if key == "choices":
        return ", ".join(value) if value else "none"
    return "none" if value in (None, "") else str(value)


_WORDS = {
    "field_type": "type",
    "required": "required",
    "choices": "choices",
    "min_value": "minimum",
    "max_value": "maximum",
    "max_length": "max length",
}


def schema_summary(
    old: Sequence[Mapping[str, Any]] | None, new: Sequence[Mapping[str, Any]]
) -> str:
    """What changed from `old` to `new` for a partner, one line a change (None: the first)."""
    if old is None:
        required = sum(1 for f in new if f.get("required"))
        return f"First version: {len(new)} fields, {required} required."
    before = {str(f.get("name")): f for f in old}
    after = {str(f.get("name")): f for f in new}
    lines = []
    for name, f in after.items():
        if name not in before:
            what = "required field" if f.get("required") else "optional field"
            lines.append(f"Added {what} {name} ({f.get('field_type')}).")
    lines.extend(f"Removed field {name}." for name in before if name not in after)
    for name, f in after.items():
        if name not in before:
            continue
        was, now = _versioned([before[name]])[name], _versioned([f])[name]
        changes = [
            f"{_WORDS[k]} {_shown(k, a)} -> {_shown(k, b)}"
            for k, a, b in zip(VERSIONED_KEYS, was, now, strict=True)
            if a != b
        ]
        if changes:
            lines.append(f"Changed field {name}: {'; '.join(changes)}.")
    return "\n".join(lines) or "No change a partner sees."


def snapshot_errors(snapshot: Any) -> list[str]:
    """Why a value cannot be a version's fields ([] when it can): a list of definitions, each
    with a field name and a known type, no name twice."""
    if not isinstance(snapshot, list):
        return ["Give a list of field definitions."]
    errors: list[str] = []
    seen: set[str] = set()
    for index, f in enumerate(snapshot):
        if not isinstance(f, dict):
            errors.append(f"Field {index + 1}: give a mapping of its definition.")
            continue
        unknown = sorted(set(f) - set(SNAPSHOT_KEYS))
        name = f.get("name")
        if unknown:
            errors.append(f"Field {index + 1}: unknown keys {', '.join(map(str, unknown))}.")
        if not isinstance(name, str) or not FIELD_NAME_RE.match(name):
            errors.append(f"Field {index + 1}: give its name (lower-case letters, digits, _).")
        elif name in seen:
            errors.append(f"Field {name} is given twice.")
        else:
            seen.add(name)
        if f.get("field_type") not in FieldType.values:
            errors.append(f"Field {name}: unknown type {f.get('field_type')!r}.")
        for key in ("min_value", "max_value"):
            try:
                _decimal_text(f.get(key))
            except (InvalidOperation, TypeError, ValueError):
                errors.append(f"Field {name}: {key} is not a number.")
    return errors


def specs_from_snapshot(snapshot: Sequence[Mapping[str, Any]]) -> tuple[FieldSpec, ...]:
    """The FieldSpecs intake validates a lead by, from a version's definitions."""
    return tuple(
        FieldSpec(
            name=f["name"],
            field_type=f.get("field_type") or FieldType.STRING,
            required=bool(f.get("required")),
            choices=tuple(f.get("choices") or ()),
            min_value=None if f.get("min_value") is None else Decimal(f["min_value"]),
            max_value=None if f.get("max_value") is None else Decimal(f["max_value"]),
            max_length=f.get("max_length"),
        )
        for f in snapshot
    )


def fields_from_snapshot(
    vertical: Vertical, snapshot: Sequence[Mapping[str, Any]]
) -> list[VerticalField]:
    """A version's fields as (unsaved) VerticalField rows, for pages and serializers that read
    the vertical's own."""
    return [
        VerticalField(
            vertical=vertical,
            position=position,
            name=f["name"],
            label=f.get("label") or "",
            field_type=f.get("field_type") or FieldType.STRING,
            required=bool(f.get("required")),
            choices=list(f.get("choices") or []),
            min_value=None if f.get("min_value") is None else Decimal(f["min_value"]),
            max_value=None if f.get("max_value") is None else Decimal(f["max_value"]),
            max_length=f.get("max_length"),
            in_ping=bool(f.get("in_ping")),
            is_pii=bool(f.get("is_pii")),
            help_text=f.get("help_text") or "",
        )
        for position, f in enumerate(snapshot)
    ]
