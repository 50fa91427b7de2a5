"""POST /reference/: one INSERT, one Celery publish on commit, 202. GET /reference/up/: 200."""

from __future__ import annotations

from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from config.celery import app

TABLE = "bench_reference_request"
QUEUE = "bench-reference"
# bench/intake.py creates the table (and empties it) before each run.
CREATE_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} "
    "(id bigserial PRIMARY KEY, body jsonb NOT NULL, received_at timestamptz NOT NULL)"
)


@csrf_exempt  # as DRF's views are: the caller sends a key, not a session cookie
@require_POST
def reference(request: HttpRequest) -> HttpResponse:
    """Store the body and queue a task for it, as intake does a lead, and nothing else."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} (body, received_at) VALUES (%s::jsonb, now()) RETURNING id",  # noqa: S608 - a constant
            [request.body.decode()],
        )
        (row_id,) = cursor.fetchone()
    # Autocommit: the INSERT has committed, so this publishes at once, as intake's does after
    # its transaction. Its own queue: no worker reads it, and it is counted apart.
    transaction.on_commit(lambda: app.send_task("bench.reference", args=[row_id], queue=QUEUE))
    return JsonResponse({"id": row_id}, status=202)


def up(request: HttpRequest) -> HttpResponse:
    """Say the server is up (the benchmark waits for it)."""
    return HttpResponse("up")


urlpatterns = [path("reference/", reference), path("reference/up/", up)]
