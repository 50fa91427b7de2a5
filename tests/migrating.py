"""Tests that migrate the test database back and forth (data-keeping moves, backfills).

`migrate(targets)` takes the database there and returns the migration state (its `apps` are the
historical models); with no targets, to the latest migrations. The `latest` fixture
(tests/conftest.py) leaves the database there whatever the test did.
"""

from __future__ import annotations

from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.state import ProjectState


def latest_migrations() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def migrate(targets: list[tuple[str, str | None]] | None = None) -> ProjectState:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    state = executor.migrate(targets or executor.loader.graph.leaf_nodes())
    # Content types are cached by id; a move renames them under the cache.
    ContentType.objects.clear_cache()
    return state
