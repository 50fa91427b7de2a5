"""Notifications sit below the apps that raise events: routing, reporting and teams call it
(through notifications.events, and teams through notifications.channels), never the reverse."""

from __future__ import annotations

import ast
from pathlib import Path

from django.conf import settings

ABOVE = ("routing", "reporting", "teams")
# What the rest of the product may import of notifications: the events it raises, and the
# senders and the webhook's masked form (the teams' messages, config's webhook form field).
FACES = ("notifications.events", "notifications.channels")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.update(
                f"{node.module}.{alias.name}" if node.module == "notifications" else node.module
                for alias in node.names
            )
    return names


def modules_of(app: str) -> list[Path]:
    return sorted((Path(settings.BASE_DIR) / app).rglob("*.py"))


def product_packages() -> list[str]:
    """The project's own packages but notifications (and the tests, which may look inside)."""
    return sorted(
        path.parent.name
        for path in Path(settings.BASE_DIR).glob("*/__init__.py")
        if path.parent.name not in {"notifications", "tests"}
    )


def test_notifications_imports_none_of_the_apps_that_raise_its_events():
    offenders = {
        str(path.relative_to(settings.BASE_DIR)): sorted(
            name for name in imported_modules(path) if name.split(".")[0] in ABOVE
        )
        for path in modules_of("notifications")
    }

    assert {path: names for path, names in offenders.items() if names} == {}


def test_other_apps_import_only_the_events_and_the_channels():
    offenders = {
        str(path.relative_to(settings.BASE_DIR)): sorted(
            name
            for name in imported_modules(path)
            if name.split(".")[0] == "notifications" and name not in FACES
        )
        for app in product_packages()
        for path in modules_of(app)
    }

    assert {path: names for path, names in offenders.items() if names} == {}
