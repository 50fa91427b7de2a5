"""Privacy's one backend-specific step: its long reads run without the statement timeout.

Finding a consumer's leads by their raw bodies and walking the purged history read big tables
for longer than the bound a connection carries for web requests and tasks. `_on_postgres()` is
the one place privacy asks which database it is on.
"""

from __future__ import annotations

from django.db import connection


def _on_postgres() -> bool:
    return connection.vendor == "postgresql"


def statement_timeout_off() -> None:
    """Inside a transaction: let its statements run as long as they need (PostgreSQL; SQLite
    has no statement timeout)."""
    if _on_postgres():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL statement_timeout = 0")
