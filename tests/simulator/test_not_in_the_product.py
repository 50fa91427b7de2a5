"""The simulator is a development tool: the product reaches it over HTTP, never by import."""

from __future__ import annotations

import ast
from pathlib import Path

from django.conf import settings

PRODUCT_APPS = (
    "config",
    "leads",
    "buyers",
    "notifications",
    "routing",
    "teams",
    "reporting",
    "outbound",
)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_no_product_module_imports_the_simulator():
    base = Path(settings.BASE_DIR)
    offenders = [
        str(path.relative_to(base))
        for app in PRODUCT_APPS
        for path in sorted((base / app).rglob("*.py"))
        if any(
            name == "simulator" or name.startswith("simulator.") for name in imported_modules(path)
        )
    ]

    assert offenders == []
