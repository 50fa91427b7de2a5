"""Who may read and write configuration through the API, and what Sales see of it.

Reads need an active staff user with the view permission of the kinds they show. Writes need a
read-write token or a session (reporting's TokenScopeAllows) and the user's own add, change or
delete permission on each object the write creates, changes or deletes, found from the import's
diff; an object's parts (a contract's caps, endpoints, secrets) are changes of the object.

Personal fields (Kind.personal: people's names, e-mail addresses, phones) are masked for whoever
sees personal data masked (Sales), and such a user may not write them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_permission_codename
from django.db import models
from rest_framework.permissions import BasePermission

from config.admin_pii import mask_text, mask_value
from marketplace.document import Change, path_join
from marketplace.kinds import SECTIONS, Kind


class IsActiveStaff(BasePermission):
    message = "The configuration API is for active staff."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)


def permission(model: type[models.Model], action: str) -> str:
    opts = model._meta
    return f"{opts.app_label}.{get_permission_codename(action, opts)}"


def view_permissions(kinds: Iterable[Kind]) -> list[str]:
    """The view permissions reading these kinds takes (an object's parts are its own: a
    contract's caps are read with the contract)."""
    return sorted({permission(kind.model, "view") for kind in kinds})


def missing(user: Any, permissions: Iterable[str]) -> list[str]:
    return sorted(p for p in set(permissions) if not user.has_perm(p))


# --- What a write does, by kind -----------------------------------------------------------

_INDEX = re.compile(r"\[\d+\]")


def section_at(path: str) -> tuple[Kind | None, bool]:
    """The section of the object at a path of the import's diff, and whether the object is a
    part of one of its objects (contracts[0].caps[1] is a part of a contract)."""
    parts = _INDEX.sub("", path).split(".")
    kind = next((k for k in SECTIONS if k.section == parts[0]), None)
    return kind, len(parts) > 1


def change_permissions(changes: Iterable[Change]) -> list[str]:
    """The permissions the diff's changes take: add what it creates, change what it changes
    (and the object whose parts it creates, changes or deletes), delete what it deletes."""
    needed: set[str] = set()
    for change in changes:
        kind, part = section_at(change.path)
        if kind is None or change.action in {"unchanged", "absent"}:
            continue
        action = (
            "change"
            if part
            else {"created": "add", "deleted": "delete"}.get(change.action, "change")
        )
        needed.add(permission(kind.model, action))
    return sorted(needed)


# --- Personal data --------------------------------------------------------------------------


def _mask(value: Any) -> Any:
    if not isinstance(value, str) or not value:
        return value
    # A list of addresses (a contract's delivery e-mails) is masked address by address.
    return mask_text(value) if "@" in value else mask_value(value)


def mask_personal(kind: Kind, items: Any) -> Any:
    """Return the objects (as the file writes them) with their personal fields masked."""
    if items is None:
        return None
    if isinstance(items, dict):
        return _masked_one(kind, items)
    return [_masked_one(kind, item) for item in items]


def _masked_one(kind: Kind, item: dict[str, Any]) -> dict[str, Any]:
    masked = dict(item)
    for name in kind.personal & set(item):
        masked[name] = _mask(item[name])
    for child in kind.children:
        if child.section in item:
            masked[child.section] = mask_personal(child, item[child.section])
    return masked


def mask_document(document: dict[str, Any]) -> dict[str, Any]:
    masked = dict(document)
    for kind in SECTIONS:
        if kind.section in document:
            masked[kind.section] = mask_personal(kind, document[kind.section])
    return masked


def personal_paths(kind: Kind, item: Any, path: str = "") -> list[str]:
    """The places in one written object (its parts included) that hold personal fields."""
    if not isinstance(item, dict):
        return []
    found = [path_join(path, name) for name in sorted(kind.personal & set(item))]
    for child in kind.children:
        rows = item.get(child.section)
        where = path_join(path, child.section)
        if child.single:
            found.extend(personal_paths(child, rows, where))
        elif isinstance(rows, list):
            for index, row in enumerate(rows):
                found.extend(personal_paths(child, row, path_join(where, index)))
    return found


def document_personal_paths(document: dict[str, Any]) -> list[str]:
    found = []
    for kind in SECTIONS:
        items = document.get(kind.section)
        if isinstance(items, list):
            for index, item in enumerate(items):
                found.extend(personal_paths(kind, item, path_join(kind.section, index)))
    return found
