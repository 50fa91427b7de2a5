from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.django_db


def test_it_reports_a_healthy_database_and_in_process_tasks(client, settings):
    settings.CELERY_BROKER_URL = ""
    response = client.get("/health/", secure=True)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "in-process"}


def test_it_answers_503_when_the_broker_is_unreachable(client, settings):
    # A port nothing listens on, on loopback: the connection is refused at once.
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/health/", secure=True)
    assert response.status_code == 503
    assert response.json()["broker"] == "down"


@pytest.mark.skipif(not os.environ.get("CELERY_BROKER_URL"), reason="needs CELERY_BROKER_URL")
def test_it_reports_a_reachable_broker(client, settings):
    settings.CELERY_BROKER_URL = os.environ["CELERY_BROKER_URL"]
    response = client.get("/health/", secure=True)
    assert response.json()["broker"] == "ok"


def test_it_refuses_anything_but_get(client):
    assert client.post("/health/", secure=True).status_code == 405
