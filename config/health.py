"""Readiness: may this web process be sent requests? (`/health/ready`, see config/views.py)

Each check is bounded in time and says only its outcome: an answer never carries a connection
URL, a host name or an exception's message (which may name either); those go to the log.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import connection, connections
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from config.celery import app as celery_app
from config.db_router import REPLICA, replica_configured
from config.lifecycle import shutting_down

logger = logging.getLogger(__name__)

# Seconds a broker or cache check may take to connect; PostgreSQL's connect bound is
# DATABASE_CONNECT_TIMEOUT (config/settings.py), its statements are bounded there too.
CHECK_TIMEOUT_S = 1
# How many unapplied migrations an answer names.
MIGRATIONS_NAMED = 5

OK, FAILED, SKIPPED = "ok", "failed", "skipped"
# A check whose failure leaves the process able to serve: it does not fail readiness.
DEGRADED = "degraded"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str
    ms: float
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        shown: dict[str, object] = {"status": self.status, "ms": self.ms}
        if self.detail:
            shown["detail"] = self.detail
        return shown


class NotConfigured(Exception):
    """The dependency is not used by this installation: nothing to check."""


class CheckFailed(Exception):
    """A check's own verdict; its message is safe to show."""


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _replica() -> None:
    if not replica_configured():
        raise NotConfigured("no replica of its own: reports read the primary")
    with connections[REPLICA].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


@functools.cache
def _migrations_in_code() -> frozenset[tuple[str, str]]:
    """The migrations this process's code has (read from disk once: code does not change under
    a running process)."""
    return frozenset(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)


def _migrations() -> None:
    applied = MigrationRecorder(connection).applied_migrations()
    missing = sorted(_migrations_in_code() - applied.keys())
    if missing:
        named = ", ".join(f"{app}.{name}" for app, name in missing[:MIGRATIONS_NAMED])
        more = (
            f" and {len(missing) - MIGRATIONS_NAMED} more"
            if len(missing) > MIGRATIONS_NAMED
            else ""
        )
        raise CheckFailed(f"{len(missing)} not applied: {named}{more}")


def _broker() -> None:
    if not settings.CELERY_BROKER_URL:
        raise NotConfigured("no broker: tasks run in-process")
    with celery_app.connection_for_write(
        url=settings.CELERY_BROKER_URL, connect_timeout=CHECK_TIMEOUT_S
    ) as conn:
        # No retry: a refused connection is an answer, not a reason to wait.
        conn.ensure_connection(max_retries=0, timeout=CHECK_TIMEOUT_S)


def _cache() -> None:
    if "redis" not in settings.CACHES["default"]["BACKEND"].lower():
        raise NotConfigured("no shared cache: each process keeps its own in memory")
    # A write as well as a read: a Redis that answers reads only (a replica) cannot serve locks.
    token = f"{time.monotonic_ns()}"
    cache.set("health:ready", token, timeout=60)
    if cache.get("health:ready") != token:
        raise CheckFailed("the cache did not keep a value")


def _run(name: str, check: Callable[[], None]) -> CheckResult:
    started = time.perf_counter()
    status, detail = OK, ""
    try:
        check()
    except NotConfigured as reason:
        status, detail = SKIPPED, str(reason)
    except CheckFailed as failure:
        status, detail = FAILED, str(failure)
    except Exception as exc:
        # The exception's message may name a host or carry a URL: the log has it, masked.
        logger.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
        status, detail = FAILED, f"unreachable ({type(exc).__name__})"
    return CheckResult(name, status, round((time.perf_counter() - started) * 1000, 1), detail)


def readiness() -> list[CheckResult]:
    """Run every readiness check; a process shutting down fails at once, checking nothing."""
    if shutting_down():
        return [CheckResult("shutdown", FAILED, 0.0, "this process is shutting down")]
    database = _run("database", _database)
    if database.status == OK:
        migrations = _run("migrations", _migrations)
    else:
        migrations = CheckResult("migrations", SKIPPED, 0.0, "the database is unreachable")
    replica = _run("replica", _replica)
    if replica.status == FAILED:  # not fatal: the reports read the primary meanwhile
        replica = CheckResult(
            replica.name, DEGRADED, replica.ms, f"{replica.detail}; reports read the primary"
        )
    return [database, migrations, _run("broker", _broker), _run("cache", _cache), replica]
