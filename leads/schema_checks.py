"""What else must hold when a vertical's fields lose a field or a source moves to another version
of them: registered by the apps that name fields (buyers' contracts, buyers/apps.py), so that
leads imports none of them. Each check returns its problems in words for ops ([] when none)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# check(vertical=..., removed=...): the parts that read a field a save of the fields removes.
FieldSetCheck = Callable[..., list[str]]
# check(source=..., version=..., names=...): the parts serving the source that read a field the
# version it is moved to lacks.
PinCheck = Callable[..., list[str]]
_field_set_checks: list[FieldSetCheck] = []
_pin_checks: list[PinCheck] = []


def schema_checks_register(*, field_set: FieldSetCheck, pin: PinCheck) -> None:
    if field_set not in _field_set_checks:
        _field_set_checks.append(field_set)
    if pin not in _pin_checks:
        _pin_checks.append(pin)


def field_set_problems(*, vertical: Any, removed: set[str]) -> list[str]:
    """Why the vertical's fields may not lose these fields ([] when they may)."""
    if not removed or vertical.pk is None:
        return []
    return [p for check in _field_set_checks for p in check(vertical=vertical, removed=removed)]


def pin_problems(*, source: Any, version: Any, names: set[str]) -> list[str]:
    """Why the source may not post in this version (of field names `names`)."""
    return [p for check in _pin_checks for p in check(source=source, version=version, names=names)]
