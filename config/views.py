"""Infrastructure endpoints that belong to no app."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.celery import app as celery_app

logger = logging.getLogger(__name__)


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        logger.exception("health check: database unreachable")
        return False
    return True


def _broker_ok() -> bool | None:
    """Return None when no broker is configured (tasks run in-process)."""
    if not settings.CELERY_BROKER_URL:
        return None
    try:
        with celery_app.connection_for_write(url=settings.CELERY_BROKER_URL) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception:
        logger.exception("health check: broker unreachable")
        return False
    return True


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Report whether the database and the broker answer; 503 when either does not."""
    database = _database_ok()
    broker = _broker_ok()
    healthy = database and broker is not False
    return JsonResponse(
        {
            "status": "ok" if healthy else "unavailable",
            "database": "ok" if database else "down",
            "broker": {None: "in-process", True: "ok", False: "down"}[broker],
        },
        status=200 if healthy else 503,
    )
