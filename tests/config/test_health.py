"""Liveness and readiness through the URL router (the readiness of real processes, with real
dependencies down, is in tests/faults/test_nodes.py)."""

from __future__ import annotations

import logging
import os

import pytest
from django.db import connection

from config.lifecycle import _shutting_down
from tests.faults.harness import free_port

pytestmark = pytest.mark.django_db


def checks(response) -> dict[str, str]:
    return {name: check["status"] for name, check in response.json()["checks"].items()}


@pytest.mark.parametrize("path", ["/health/", "/health/live", "/health/live/"])
def test_liveness_answers_without_asking_any_dependency(client, settings, path):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens
    response = client.get(path, secure=True)
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert "no-cache" in response["Cache-Control"]


def test_readiness_reports_each_check_with_its_time(client, settings):
    settings.CELERY_BROKER_URL = ""
    response = client.get("/health/ready", secure=True)
    assert response.status_code == 200
    assert response.json()["status"] == "ready"
    assert checks(response) == {
        "database": "ok",
        "migrations": "ok",
        "broker": "skipped",
        "cache": "ok" if "redis" in settings.CACHES["default"]["BACKEND"].lower() else "skipped",
        "replica": "skipped",
    }
    assert all(check["ms"] >= 0 for check in response.json()["checks"].values())
    assert response.json()["checks"]["broker"]["detail"] == "no broker: tasks run in-process"


def test_a_load_balancers_probe_over_plain_http_by_the_nodes_address_is_answered(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["leads.example.com"]
    settings.CELERY_BROKER_URL = ""
    for path in ("/health/live", "/health/ready"):
        assert client.get(path, HTTP_HOST="10.0.0.7:8000").status_code == 200
    # Everything else still refuses the host.
    assert client.get("/admin/", HTTP_HOST="10.0.0.7:8000").status_code == 400


def test_readiness_fails_naming_the_migrations_this_database_lacks(client, settings):
    settings.CELERY_BROKER_URL = ""
    with connection.cursor() as cursor:  # rolled back with the test
        cursor.execute("DELETE FROM django_migrations WHERE app = 'leads'")
    response = client.get("/health/ready", secure=True)
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["type"], body["failed"]) == ("/api/problems/not-ready", ["migrations"])
    assert body["checks"]["migrations"]["detail"].split(": ")[1].startswith("leads.0001_initial")


def test_readiness_fails_at_once_naming_a_broker_nothing_listens_for(client, settings):
    port = free_port()
    settings.CELERY_BROKER_URL = f"redis://:hunter2@127.0.0.1:{port}/0"
    response = client.get("/health/ready", secure=True)
    assert response.status_code == 503
    assert response.json()["failed"] == ["broker"]
    assert response.json()["checks"]["broker"]["ms"] < 1000  # refused, not retried
    assert "hunter2" not in response.text
    assert str(port) not in response.text


def test_a_failed_readiness_logs_the_failed_check_as_a_warning_not_an_error(
    client, settings, caplog
):
    settings.CELERY_BROKER_URL = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    with caplog.at_level(logging.INFO):
        assert client.get("/health/ready", secure=True).status_code == 503
    logged = [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]
    assert [level for level, _ in logged] == ["WARNING"]
    assert logged[0][1].startswith("readiness check broker failed")
    assert "hunter2" not in caplog.text


@pytest.mark.skipif(not os.environ.get("CELERY_BROKER_URL"), reason="needs CELERY_BROKER_URL")
def test_readiness_reports_a_reachable_broker(client, settings):
    settings.CELERY_BROKER_URL = os.environ["CELERY_BROKER_URL"]
    assert checks(client.get("/health/ready", secure=True))["broker"] == "ok"


def test_a_process_shutting_down_is_not_ready_but_alive(client):
    _shutting_down.set()
    try:
        ready = client.get("/health/ready", secure=True)
        live = client.get("/health/live", secure=True)
    finally:
        _shutting_down.clear()
    assert (ready.status_code, ready.json()["failed"]) == (503, ["shutdown"])
    assert live.status_code == 200


def test_the_health_endpoints_refuse_anything_but_get(client):
    for path in ("/health/", "/health/ready"):
        response = client.post(path, secure=True)
        assert (response.status_code, response["Allow"]) == (405, "GET, HEAD")
