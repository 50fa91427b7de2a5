"""Reads that may come from a streaming replica (DATABASE_REPLICA_URL), and only where asked.

Nothing is routed by model: intake, routing, the admin and everything that reads what it just
wrote stay on the primary. Code that may read a little behind (the dashboards, the reporting API,
the CSV exports) asks for it by name:

    with reading_from_replica():
        rows = report_sources(query)

Inside, every read goes to the replica; writes always go to the primary. A replica that does not
answer (within DATABASE_CONNECT_TIMEOUT) is left alone for DATABASE_REPLICA_RETRY_SECONDS and the
reads go to the primary, with a warning: a report is late rather than failed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

logger = logging.getLogger(__name__)

REPLICA = "replica"
_reads: ContextVar[str | None] = ContextVar("leadswitch_reads_from", default=None)
# time.monotonic() before which this process does not try a replica that failed to answer.
_replica_down_until = 0.0


class ReplicaRouter:
    """Reads go where `reading_from_replica` says (else the primary); everything else, primary."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return _reads.get()

    def db_for_write(self, model: Any, **hints: Any) -> str:
        # Explicitly the primary: an object read from the replica and saved is saved there.
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True  # the replica holds the primary's rows

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return False if db == REPLICA else None


def replica_configured() -> bool:
    """A replica of its own is configured: not an alias of the primary's own database, as it is
    in tests (a test mirror of the default test database, where a second connection would not
    see what a test's open transaction wrote) or with a replica URL set to the primary's."""
    return REPLICA in settings.DATABASES and _where(REPLICA) != _where(DEFAULT_DB_ALIAS)


def _where(alias: str) -> tuple[object, ...]:
    database = connections[alias].settings_dict
    return (database["HOST"], database["PORT"], database["NAME"])


def replica_alias() -> str:
    """The replica's alias if one is configured and answers; else the primary's (with a warning)."""
    global _replica_down_until  # noqa: PLW0603 - one flag per process, set and read whole
    if not replica_configured() or time.monotonic() < _replica_down_until:
        return DEFAULT_DB_ALIAS
    connection = connections[REPLICA]
    try:
        # A kept connection is checked first (CONN_HEALTH_CHECKS), once per request.
        connection.close_if_health_check_failed()
        connection.ensure_connection()
    except DatabaseError as exc:
        _replica_down_until = time.monotonic() + settings.DATABASE_REPLICA_RETRY_SECONDS
        logger.warning(
            "replica does not answer; reading from the primary",
            extra={"error": f"{type(exc).__name__}: {exc}"},
        )
        return DEFAULT_DB_ALIAS
    return REPLICA


@contextmanager
def reading_from(alias: str) -> Iterator[str]:
    """Inside, every read goes to `alias`."""
    token = _reads.set(alias)
    try:
        yield alias
    finally:
        _reads.reset(token)


@contextmanager
def reading_from_replica(*, enabled: bool = True) -> Iterator[str]:
    """Inside, reads go to the replica when one is configured, answers and `enabled`; else to
    the primary. Yields the alias read from."""
    with reading_from(replica_alias() if enabled else DEFAULT_DB_ALIAS) as alias:
        yield alias
