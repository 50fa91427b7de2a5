"""Rules of the code's shape that no single app's tests would notice being broken."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Where a flow's hand-written SQL lives beside its ORM twin, and the one other module that may
# read the backend's name: config/rows.py keys its per-backend value converters by it.
MAY_ASK_THE_DATABASE = {"store.py"}
ALSO_ALLOWED = {
    Path("config/rows.py"),
    # The consumer-hash backfill: a statement and its ORM twin like a store's, but migration
    # leads 0011 runs it, and a migration may not import a store (it imports the app's models).
    Path("leads/consumer_hashes.py"),
}


def product_packages() -> list[Path]:
    """The top-level packages the project ships (pyproject's setuptools include)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    names = sorted({pattern.rstrip("*").rstrip(".") for pattern in patterns})
    return [ROOT / name for name in names if (ROOT / name / "__init__.py").exists()]


def _asks_the_backend(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute) and node.attr == "vendor":
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "getattr"
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
        and node.args[1].value == "vendor"
    )


def backend_checks(path: Path) -> list[int]:
    """The lines of a module that read which database backend it runs on."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return sorted({node.lineno for node in ast.walk(tree) if _asks_the_backend(node)})


def test_the_product_packages_are_found():
    names = {package.name for package in product_packages()}
    assert {"config", "leads", "buyers", "routing", "reporting"} <= names


def test_only_a_store_module_asks_which_database_it_is_on():
    # A flow that needs hand-written SQL keeps it in its app's store.py, beside the ORM twin,
    # and chooses between them there (STYLE.md). Migrations are history, written once for the
    # schema of their day, and may not import the app code a store is.
    offenders = []
    for package in product_packages():
        for path in sorted(package.rglob("*.py")):
            relative = path.relative_to(ROOT)
            if "migrations" in relative.parts or relative in ALSO_ALLOWED:
                continue
            if path.name in MAY_ASK_THE_DATABASE:
                continue
            offenders += [f"{relative}:{line}" for line in backend_checks(path)]
    assert offenders == [], "ask the app's store.py instead: " + ", ".join(offenders)


def test_the_check_finds_a_backend_check(tmp_path):
    module = tmp_path / "sample.py"
    module.write_text(
        "from django.db import connection\n"
        "\n"
        "def fast():\n"
        '    return connection.vendor == "postgresql"\n'
        "\n"
        "def also():\n"
        '    return getattr(connection, "vendor", "") != "sqlite"\n'
    )
    assert backend_checks(module) == [4, 7]


def test_each_app_imports_only_the_apps_below_it():
    # The contracts are in pyproject.toml ([tool.importlinter]); ./dev lint runs them too.
    import importlinter.cli

    assert importlinter.cli.lint_imports(config_filename=str(ROOT / "pyproject.toml")) == 0
